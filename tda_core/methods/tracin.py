"""TracIn (Pruthi et al. 2020): tau[q, i] = -sum_c eta_c v_q(theta_c) . g_i(theta_c) / N_c.

eta_c is the summed learning rate of the interval ending at checkpoint c (times the momentum
scale 1/(1-beta)), divided by the number of examples N_c the interval trained on, so each
checkpoint counts as much as the training it stands for. Multi-stage runs: N_c is the size of the
interval's training pool (Interval.pool), and examples outside that pool get 0 from it.
Option last_checkpoints k sums over the last k saved checkpoints only (how many are saved is
train.n_checkpoints, which retrains every model; this varies the sum without retraining).
"""
import numpy as np
import torch

from ..errors import ConfigError
from .base import Method


class TracIn(Method):
    name = "tracin"
    stage_aware = True

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        traj = ctx.trajectory(seed)
        scale = traj.optimizer.effective_lr_scale
        n = ctx.n_train
        sums: dict = {}  # stage -> (pool indices or None = all, sum over its intervals)
        n_saved = len(traj.checkpoints) - 1
        last = self.opts["last_checkpoints"]
        if last is not None and not 1 <= last <= n_saved:
            raise ConfigError(f"tracin: last_checkpoints {last} is not in 1..{n_saved} (the saved checkpoints)")
        first = n_saved - last + 1 if last is not None else 1
        for c in range(first, n_saved + 1):
            seg = traj.checkpoints[c].interval
            pool = seg.pool
            eta = seg.mean_lr * seg.steps * scale
            params = ctx.params(seed, c)
            rows = None if pool is None else torch.as_tensor(pool)
            xy = {} if pool is None else {"x": ctx.train_x[rows], "y": ctx.train_y[rows]}
            part = -(ctx.query_grads(seed, params) @ ctx.train_grads(seed, params, **xy).T) * eta
            key = None if pool is None else seg.stage
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
