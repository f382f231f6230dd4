"""Reference row: EK-FAC influence computed by kronfluence 1.0.x on the same model (optional extra).

    pip install 'tda-bench[reference]'

kronfluence fits EK-FAC factors over the training set (true Fisher: labels sampled from the model)
for every nn.Linear / nn.Conv2d, then scores s[q, i] = v_q^T (G + d)^{-1} g_i with d = `damping`
(absolute) or, by default, its heuristic 0.1 x the mean eigenvalue of each module, like if_ekfac's
damping_rel = 0.1. Converted to this suite's convention (methods/base.py): tau = -s / N.

Same inputs as if_ekfac so that the two are comparable: kronfluence samples the Fisher labels
inside the user's Task; ours hands it the labels if_ekfac samples (same generator seed,
tda_core.curvature.sample_targets), so the rows differ only by implementation. Differences that
remain by design: kronfluence covers only Linear/Conv2d layers (LayerNorm, embeddings, pos_embed /
cls_token gradients are left out; if_ekfac keeps them with diagonal curvature), and it knows nothing
of the optimiser's weight decay (if_ekfac adds it to the curvature). Classification only.
"""
from __future__ import annotations

import tempfile
import warnings

import numpy as np
import torch

from ..curvature import sample_targets
from ..errors import TdaError
from ..tasks import ClassificationTask
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


def kronfluence_scores(model: torch.nn.Module, task, train_x, train_y, fisher_y, query_x, query_y,
                       damping: float | None = None, batch_size: int = 256, device="cpu") -> np.ndarray:
    """Raw kronfluence pairwise scores [Q, N] = v_q^T (EK-FAC + damping)^{-1} g_i."""
    Analyzer, prepare_model, FactorArguments, ScoreArguments, Task = import_kronfluence()
    import torch.nn.functional as F

    class _Task(Task):
        def compute_train_loss(self, batch, model, sample=False):
            x, y, y_fisher = batch
            return F.cross_entropy(model(x), y_fisher if sample else y, reduction="sum")

        def compute_measurement(self, batch, model):
            return task.measure(model, batch[0], batch[1]).sum()

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
        if not isinstance(ctx.task, ClassificationTask):
            raise TdaError(f"{self.name} supports classification experiments only")
        import_kronfluence()
        model, params = ctx.model(seed), ctx.params(seed)
        model.load_state_dict(params, strict=False)
        # the Fisher labels if_ekfac draws for this seed (methods/influence.py: seed_curvature)
        gen = torch.Generator().manual_seed(1000 * int(self.opts["fisher_seed"]) + seed)
        fisher_y = sample_targets(ctx.task, model, params, ctx.train_x.to(ctx.device), gen, ctx.chunk_size).cpu()
        raw = kronfluence_scores(model, ctx.task, ctx.train_x, ctx.train_y, fisher_y, ctx.query_x, ctx.query_y,
                                 self.opts["damping"], int(self.opts["batch_size"]), ctx.device)
        return (-raw / ctx.n_train).astype(np.float32)
