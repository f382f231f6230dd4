"""TracIn (Pruthi et al. 2020): tau[q, i] = -sum_c eta_c v_q(theta_c) . g_i(theta_c) / N_c.

eta_c is the summed learning rate of the interval ending at checkpoint c (times the momentum
scale 1/(1-beta)), divided by the number of examples N_c the interval trained on, so each
checkpoint counts as much as the training it stands for. Multi-stage runs: N_c is the size of the
interval's training pool (meta["pools"]), and examples outside that pool get 0 from it.
Option last_checkpoints k sums over the last k saved checkpoints only (how many are saved is
train.n_checkpoints, which retrains every model; this varies the sum without retraining).
"""
import numpy as np
import torch

from ..errors import ConfigError
from ..training import build_optimizer
from .base import Method, interval_pool


class TracIn(Method):
    name = "tracin"
    stage_aware = True

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        meta = ctx.exp.load_model_meta(seed)
        scale = build_optimizer(ctx.exp.cfg["train"]).effective_lr_scale
        ckpts = ctx.checkpoints(seed)
        s = ctx.exp.splits
        n = s.n_train
        sums: dict = {}  # pool id -> (pool indices or None = all, sum over its intervals)
        last = self.opts["last_checkpoints"]
        if last is not None and not 1 <= last <= len(meta["segments"]):
            raise ConfigError(f"tracin: last_checkpoints {last} is not in 1..{len(meta['segments'])} (the saved checkpoints)")
        first = len(meta["segments"]) - last + 1 if last is not None else 1
        for c, seg in enumerate(meta["segments"], start=1):
            if c < first:
                continue
            pool = interval_pool(meta, seg, n)
            eta = seg["mean_lr"] * seg["steps"] * scale
            params = {k: v.to(ctx.device) for k, v in ckpts[c]["params"].items()}
            xy = {} if pool is None else {"x": s.train_x[torch.as_tensor(pool)], "y": s.train_y[torch.as_tensor(pool)]}
            part = -(ctx.query_grads(seed, params) @ ctx.train_grads(seed, params, **xy).T) * eta
            key = None if pool is None else seg["pool"]
            prev = sums.get(key, (pool, None))[1]
            sums[key] = (pool, part if prev is None else prev + part)
        total = None
        for pool, part in sums.values():
            if pool is None:
                scaled = part / n
                total = scaled if total is None else total + scaled
            else:
                if total is None:
                    total = part.new_zeros(part.shape[0], n)
                total[:, torch.as_tensor(pool, device=total.device)] += part / len(pool)
        return total.cpu().numpy().astype(np.float32)
