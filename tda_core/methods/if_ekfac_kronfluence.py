"""Reference row: EK-FAC influence computed by kronfluence 1.0.x on the same model (optional extra).

    pip install 'tda-bench[reference]'

kronfluence fits EK-FAC factors over the training set (true Fisher: labels sampled from the model)
for every nn.Linear / nn.Conv2d it tracks, then scores s[q, i] = v_q^T (G + d)^{-1} g_i with
d = `damping` (absolute) or, by default, its heuristic 0.1 x the mean eigenvalue of each module, like
if_ekfac's damping_rel = 0.1. Converted to this suite's convention (methods/base.py): tau = -s / N.

Same inputs as if_ekfac so that the two are comparable: kronfluence samples the Fisher labels
inside the user's Task; ours hands it the labels if_ekfac samples (same generator seed,
tda_core.curvature.sample_targets), and its loss is the task's own per-example loss summed over the
batch, so the rows differ only by implementation. Differences that remain by design: kronfluence
covers only Linear/Conv2d layers (LayerNorm, embeddings, pos_embed / cls_token gradients are left
out; if_ekfac keeps them with diagonal curvature), and it knows nothing of the optimiser's weight
decay (if_ekfac adds it to the curvature).

Language models (LanguageModelTask, transformers GPT-2): kronfluence has no Conv1D, so it runs on a
copy of the model whose Conv1D modules are the equal nn.Linear modules (weight transposed; as
kronfluence's own WikiText example does). It tracks exactly the modules if_ekfac Kronecker-factors
(tda_core.curvature.kron_specs): the attention and MLP projections, and the output head only when it
is not tied to the token embedding (a tied head's hooks would see only the head's share of the shared
weight's gradient). The per-example loss is the sequence's mean token loss over its real positions
(IGNORE_INDEX targets excluded), the Fisher labels are if_ekfac's next tokens per position (padding
stays IGNORE_INDEX), and kronfluence's attention mask (target not IGNORE_INDEX) keeps padded positions
out of its activation covariance, as if_ekfac's factors do.
"""
from __future__ import annotations

import copy
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from ..curvature import kron_specs, sample_targets
from ..curvature.kfac import conv1d_type
from ..errors import TdaError
from ..tasks import IGNORE_INDEX, ClassificationTask, LanguageModelTask
from .base import Method


def import_kronfluence():
    try:
        import kronfluence  # noqa: F401
        from kronfluence.analyzer import Analyzer, prepare_model
        from kronfluence.arguments import FactorArguments, ScoreArguments
        from kronfluence.task import Task
    except ImportError as e:
        raise TdaError("if_ekfac_kronfluence needs the optional extra: pip install 'tda-bench[reference]' "
                       f"(kronfluence 1.0.x): {e}") from None
    return Analyzer, prepare_model, FactorArguments, ScoreArguments, Task


def conv1d_as_linear(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in which every transformers Conv1D (out = a W + b, W [in, out]) is the
    nn.Linear computing the same function (weight W^T), under the same module name."""
    model = copy.deepcopy(model)
    conv1d = conv1d_type()
    if conv1d is None:
        return model
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, conv1d):
                w = child.weight
                linear = nn.Linear(w.shape[0], w.shape[1], bias=child.bias is not None, dtype=w.dtype, device=w.device)
                with torch.no_grad():
                    linear.weight.copy_(w.T)
                    if child.bias is not None:
                        linear.bias.copy_(child.bias)
                setattr(parent, name, linear)
    return model


def kronfluence_scores(model: torch.nn.Module, task, train_x, train_y, fisher_y, query_x, query_y,
                       damping: float | None = None, batch_size: int = 256, device="cpu") -> np.ndarray:
    """Raw kronfluence pairwise scores [Q, N] = v_q^T (EK-FAC + damping)^{-1} g_i."""
    Analyzer, prepare_model, FactorArguments, ScoreArguments, Task = import_kronfluence()
    language_model = isinstance(task, LanguageModelTask)
    if language_model:
        tracked = [s.module for s in kron_specs(model, dict(model.named_parameters()))]
        model = conv1d_as_linear(model)
    else:
        tracked = None  # every Linear / Conv2d

    class _Task(Task):
        def compute_train_loss(self, batch, model, sample=False):
            x, y, y_fisher = batch
            return task.loss(model, x, y_fisher if sample else y).sum()

        def compute_measurement(self, batch, model):
            return task.measure(model, batch[0], batch[1]).sum()

        def get_influence_tracked_modules(self):
            return tracked

        def get_attention_mask(self, batch):
            # positions that carry loss; an integer mask (kronfluence adds its sum to an int64 count)
            return (batch[1] != IGNORE_INDEX).long() if language_model else None

    kf_task = _Task()
    model = prepare_model(model.to(device).eval(), kf_task)
    train = torch.utils.data.TensorDataset(train_x, train_y, fisher_y)
    query = torch.utils.data.TensorDataset(query_x, query_y, query_y)
    with tempfile.TemporaryDirectory(prefix="kronfluence_") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.cuda.amp.GradScaler deprecation inside kronfluence
        analyzer = Analyzer("tda", model, kf_task, cpu=torch.device(device).type == "cpu", disable_tqdm=True,
                            output_dir=out)
        factor_args = FactorArguments(strategy="ekfac", covariance_max_examples=None, lambda_max_examples=None)
        analyzer.fit_all_factors("ekfac", dataset=train, per_device_batch_size=batch_size, factor_args=factor_args,
                                 overwrite_output_dir=True)
        analyzer.compute_pairwise_scores("scores", "ekfac", query_dataset=query, train_dataset=train,
                                         per_device_query_batch_size=len(query), per_device_train_batch_size=batch_size,
                                         score_args=ScoreArguments(damping_factor=damping), overwrite_output_dir=True)
        return analyzer.load_pairwise_scores("scores")["all_modules"].double().cpu().numpy()


class IfEkfacKronfluence(Method):
    """Options: damping (absolute; default None = kronfluence's 0.1 x mean eigenvalue per module),
    fisher_seed (as if_ekfac), batch_size."""

    name = "if_ekfac_kronfluence"

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        if not isinstance(ctx.task, (ClassificationTask, LanguageModelTask)):
            raise TdaError(f"{self.name} supports classification and language-model experiments only")
        import_kronfluence()
        model, params = ctx.model(seed), ctx.params(seed)
        model.load_state_dict(params, strict=False)
        # the Fisher labels if_ekfac draws for this seed (methods/influence.py: seed_curvature)
        gen = torch.Generator().manual_seed(1000 * int(self.opts["fisher_seed"]) + seed)
        fisher_y = sample_targets(ctx.task, model, params, ctx.train_x.to(ctx.device), gen, ctx.chunk_size,
                                  y=ctx.train_y.to(ctx.device)).cpu()
        raw = kronfluence_scores(model, ctx.task, ctx.train_x, ctx.train_y, fisher_y, ctx.query_x, ctx.query_y,
                                 self.opts["damping"], int(self.opts["batch_size"]), ctx.device)
        return (-raw / ctx.n_train).astype(np.float32)
