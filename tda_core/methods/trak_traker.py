"""Reference row: TRAK computed by MadryLab's traker on the same models (optional extra).

    pip install 'tda-bench[reference]'

traker's "image_classification" output function is the margin log p/(1-p) (the same as `trak`'s
and as the default measurement), its reweighting Q = 1 - p, and its ensemble the mean over models of
Phi (Phi^T Phi)^{-1} x_q times the mean Q (TRAK Algorithm 1), so the signs follow this suite's
convention as they come (tau > 0: z_i raises f(z_q)). Two differences from `trak`: traker draws a
random projection per model, and it divides each model's (Phi^T Phi)^{-1} by its mean absolute entry
(a float16 safeguard in its BasicScoreComputer), so the absolute scale of this row is arbitrary and
the models of the ensemble are weighted by that factor: compare it by rank-based metrics (LDS), not
by scale-sensitive ones. Runs on any device: the projection is traker's pure-torch
BasicProjector (its CUDA-only fast_jl projector is not needed), features kept in float32.
Classification with measurement "margin", and language models (LanguageModelTask) with measurement
"loss": traker scores its targets with the model output function it featurizes the training set with,
so the two must be one function. For language models this row hands traker a small model-output
adapter (_LanguageModelOutput) that is `trak`'s choice for non-classification tasks: output = the
sequence's mean token loss (the training loss), out-to-loss weight Q = -1; with the same projection it
equals `trak` up to float round-off (tests/test_reference.py). Diffusion is not supported (its loss
draws timesteps and noise, which traker's deterministic output function has no place for).
"""
from __future__ import annotations

import logging
import tempfile

import numpy as np
import torch

from ..errors import TdaError
from ..tasks import ClassificationTask, LanguageModelTask
from .base import Method


def import_traker():
    try:
        from trak import TRAKer
        from trak.projectors import BasicProjector, ProjectionType
    except ImportError as e:
        raise TdaError(f"trak_traker needs the optional extra: pip install 'tda-bench[reference]' (traker): {e}") from None
    return TRAKer, BasicProjector, ProjectionType


def _language_model_output(task):
    """traker model output for a LanguageModelTask: f = the sequence's mean token loss (task.attribution_loss)
    for training and target sequences alike, Q = -1 (as `trak` on a non-classification task)."""
    from trak.modelout_functions import AbstractModelOutput

    class _LanguageModelOutput(AbstractModelOutput):
        def __init__(self):  # abstract in traker
            super().__init__()

        def get_output(self, model, weights, buffers, x, y):  # one sequence (vmapped by traker)
            call = lambda inp: torch.func.functional_call(model, (weights, buffers), (inp,))  # noqa: E731
            return task.attribution_loss(call, x[None], y[None]).sum()

        def get_out_to_loss_grad(self, model, weights, buffers, batch):
            return -torch.ones(len(batch[-1]), 1, device=batch[-1].device)

    return _LanguageModelOutput()


def _kept_matrix(BasicProjector):
    """BasicProjector that keeps its matrix: traker 0.3.2 frees it between featurizing and scoring and
    regenerates it only when the model id changes or proj_dim > its block size (100), so one model with
    proj_dim <= 100 crashed (AttributeError: no proj_matrix). The projection is unchanged."""

    class _Kept(BasicProjector):
        def free_memory(self):
            pass

    return _Kept


def our_projection(n_params: int, proj_dim: int, seed: int = 0):
    """A traker projector that applies tda_core's RandomProjector (the R `trak` draws), so that traker and
    `trak` can be compared at equal inputs (tests/test_reference.py, bench/bench_reference.py)."""
    from trak.projectors import AbstractProjector

    from ..projection import RandomProjector

    class _Ours(AbstractProjector):
        def __init__(self):
            super().__init__(n_params, proj_dim, seed, "rademacher", "cpu")
            self.ours = RandomProjector(n_params, proj_dim, seed=seed)

        def project(self, grads, model_id):
            if isinstance(grads, dict):
                grads = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], 1)
            return self.ours(grads)

        def free_memory(self):
            pass

    return _Ours()


def traker_scores(models_params: list[tuple[torch.nn.Module, dict]], train_x, train_y, query_x, query_y,
                  proj_dim: int = 256, proj_seed: int = 0, batch_size: int = 256, device="cpu",
                  projector=None, task=None) -> np.ndarray:
    """[Q, N] TRAK scores from traker, ensembled over the (model, params) pairs (one model id each).

    `projector`: a traker AbstractProjector to use instead of its BasicProjector (tests).
    `task`: None or a ClassificationTask (traker's "image_classification" margin output) or a
    LanguageModelTask (mean token loss, _language_model_output).
    """
    TRAKer, BasicProjector, ProjectionType = import_traker()
    device = str(device)
    model = models_params[0][0].to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    if projector is None:
        projector = _kept_matrix(BasicProjector)(grad_dim=n_params, proj_dim=proj_dim, seed=proj_seed,
                                                 proj_type=ProjectionType.rademacher, device=device,
                                                 dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="traker_") as out:
        modelout = _language_model_output(task) if isinstance(task, LanguageModelTask) else "image_classification"
        traker = TRAKer(model=model, task=modelout, train_set_size=len(train_y), save_dir=out,
                        device=device, projector=projector, use_half_precision=False,
                        logging_level=logging.WARNING)
        batches = lambda x, y: [(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))  # noqa: E731
                                for i in range(0, len(y), batch_size)]
        states = []
        for _, params in models_params:  # full state dicts: traker loads them strictly (a tied head has two keys)
            model.load_state_dict({k: v.to(device) for k, v in params.items()}, strict=False)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        for model_id, state in enumerate(states):
            traker.load_checkpoint(state, model_id=model_id)
            for batch in batches(train_x, train_y):
                traker.featurize(batch=batch, num_samples=len(batch[1]))
        traker.finalize_features()
        for model_id, state in enumerate(states):
            traker.start_scoring_checkpoint(exp_name="queries", checkpoint=state, model_id=model_id,
                                            num_targets=len(query_y))
            for batch in batches(query_x, query_y):
                traker.score(batch=batch, num_samples=len(batch[1]))
        scores = np.array(traker.finalize_scores(exp_name="queries"), dtype=np.float64)  # [N, Q]
    return scores.T


class TrakTraker(Method):
    """Options: proj_dim, proj_seed, batch_size (methods/options.py TRAK_TRAKER)."""

    name = "trak_traker"  # registry row seed_usage="pooled"


    def score(self, ctx) -> np.ndarray:
        classification = isinstance(ctx.task, ClassificationTask) and ctx.task.measurement == "margin"
        language_model = isinstance(ctx.task, LanguageModelTask) and ctx.task.measurement == "loss"
        if not (classification or language_model):
            raise TdaError(f"{self.name} supports classification with measurement 'margin' and language models "
                           "with measurement 'loss' only")
        import_traker()
        models = [(ctx.model(seed), ctx.params(seed)) for seed in ctx.seeds]
        out = traker_scores(models, ctx.train_x, ctx.train_y, ctx.query_x, ctx.query_y, int(self.opts["proj_dim"]),
                            int(self.opts["proj_seed"]), int(self.opts["batch_size"]), ctx.device, task=ctx.task)
        return out.astype(np.float32)
