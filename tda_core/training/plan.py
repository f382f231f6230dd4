"""The training schedule: steps, learning rates, checkpoint steps and seeded batch order."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class TrainPlan:
    total_steps: int
    lrs: np.ndarray  # [T] learning rate used at step t (t = 0..T-1)
    checkpoint_steps: list[int]  # steps after which a checkpoint is saved, 0 = initialisation

    def segments(self) -> list[dict]:
        """Per interval between consecutive checkpoints: its step count K and mean lr."""
        out = []
        for a, b in zip(self.checkpoint_steps[:-1], self.checkpoint_steps[1:]):
            out.append({"start": a, "end": b, "steps": b - a, "mean_lr": float(self.lrs[a:b].mean()) if b > a else 0.0})
        return out


def make_plan(train_cfg: dict, n_examples: int, total_steps: int | None = None) -> TrainPlan:
    """`epochs` over `n_examples`, or exactly `total_steps` steps when given (step-matched runs:
    pruned and `groundtruth.steps: same_steps` subset models train as long as the full-data run)."""
    steps_per_epoch = math.ceil(n_examples / train_cfg["batch_size"])
    total = max(1, int(round(train_cfg["epochs"] * steps_per_epoch))) if total_steps is None else int(total_steps)
    lrs = lr_schedule(train_cfg["schedule"], train_cfg["lr"], total)
    c = train_cfg["n_checkpoints"]
    ckpts = sorted({0, *(int(round(total * i / c)) for i in range(1, c + 1))})
    return TrainPlan(total, lrs, ckpts)


def lr_schedule(kind: str, lr: float, total: int) -> np.ndarray:
    t = np.arange(total, dtype=np.float64)
    if kind == "constant":
        return np.full(total, lr)
    if kind == "cosine":
        return lr * 0.5 * (1 + np.cos(np.pi * t / total))
    if kind == "linear":
        return lr * (1 - t / total)
    if kind == "onecycle":  # linear warm-up to the peak over 30% of training, then linear decay to 0
        peak = max(1, int(0.3 * total))
        return np.where(t < peak, lr * (t + 1) / peak, lr * (total - t) / max(1, total - peak))
    raise ValueError(kind)


def batch_schedule(n_steps: int, pool: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n_steps` batches of indices into the training set, epoch by epoch over `pool` (reshuffled each epoch)."""
    batches: list[np.ndarray] = []
    while len(batches) < n_steps:
        perm = pool[rng.permutation(len(pool))]
        batches.extend(perm[i : i + batch_size] for i in range(0, len(perm), batch_size))
    return batches[:n_steps]
