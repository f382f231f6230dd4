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
Classification with measurement "margin" only (traker's targets are always margins).
"""
from __future__ import annotations

import logging
import tempfile

import numpy as np
import torch

from ..errors import TdaError
from ..tasks import ClassificationTask
from .base import Method


def import_traker():
    try:
        from trak import TRAKer
        from trak.projectors import BasicProjector, ProjectionType
    except ImportError as e:
        raise TdaError(f"trak_traker needs the optional extra: pip install 'tda-bench[reference]' (traker): {e}") from None
    return TRAKer, BasicProjector, ProjectionType


def traker_scores(models_params: list[tuple[torch.nn.Module, dict]], train_x, train_y, query_x, query_y,
                  proj_dim: int = 256, proj_seed: int = 0, batch_size: int = 256, device="cpu",
                  projector=None) -> np.ndarray:
    """[Q, N] TRAK scores from traker, ensembled over the (model, params) pairs (one model id each).

    `projector`: a traker AbstractProjector to use instead of its BasicProjector (tests).
    """
    TRAKer, BasicProjector, ProjectionType = import_traker()
    device = str(device)
    model = models_params[0][0].to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    if projector is None:
        projector = BasicProjector(grad_dim=n_params, proj_dim=proj_dim, seed=proj_seed,
                                   proj_type=ProjectionType.rademacher, device=device, dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="traker_") as out:
        traker = TRAKer(model=model, task="image_classification", train_set_size=len(train_y), save_dir=out,
                        device=device, projector=projector, use_half_precision=False,
                        logging_level=logging.WARNING)
        batches = lambda x, y: [(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))  # noqa: E731
                                for i in range(0, len(y), batch_size)]
        states = [{k: v.to(device) for k, v in params.items()} for _, params in models_params]
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

    name = "trak_traker"  # registry row seeds="pooled"


    def score(self, ctx) -> np.ndarray:
        if not isinstance(ctx.task, ClassificationTask) or ctx.task.measurement != "margin":
            raise TdaError(f"{self.name} supports classification with measurement 'margin' only")
        import_traker()
        models = [(ctx.model(seed), ctx.params(seed)) for seed in ctx.seeds]
        out = traker_scores(models, ctx.train_x, ctx.train_y, ctx.query_x, ctx.query_y, int(self.opts["proj_dim"]),
                            int(self.opts["proj_seed"]), int(self.opts["batch_size"]), ctx.device)
        return out.astype(np.float32)
