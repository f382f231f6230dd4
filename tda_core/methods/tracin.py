"""TracIn (Pruthi et al. 2020): tau[q, i] = -sum_c eta_c v_q(theta_c) . g_i(theta_c).

eta_c is the summed learning rate of the interval ending at checkpoint c (times the momentum
scale 1/(1-beta)), divided by the number of examples the run visits per step, so each checkpoint
counts as much as the training it stands for.
"""
import numpy as np

from ..training import build_optimizer
from .base import Method


class TracIn(Method):
    name = "tracin"

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        meta = ctx.exp.load_model_meta(seed)
        scale = build_optimizer(ctx.exp.cfg["train"]).effective_lr_scale
        ckpts = ctx.checkpoints(seed)
        total = None
        for c, seg in enumerate(meta["segments"], start=1):
            eta = seg["mean_lr"] * seg["steps"] * scale
            params = {k: v.to(ctx.device) for k, v in ckpts[c]["params"].items()}
            part = -(ctx.query_grads(seed, params) @ ctx.train_grads(seed, params).T) * eta
            total = part if total is None else total + part
        return (total / ctx.exp.splits.n_train).cpu().numpy().astype(np.float32)
