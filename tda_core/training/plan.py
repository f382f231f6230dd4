"""The training schedule: steps, learning rates, checkpoint steps, training stages and seeded batch order.

Stages (scenario multi_stage): stage s runs steps [stage_starts[s], stage_starts[s+1]) on the
training pool pools[s] (indices into the full training set). A checkpoint is always saved at a
stage switch, so no checkpoint interval straddles one: each interval has one pool (segments()).
A single-stage run has one stage, starting at 0, whose pool is every example of the run's mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrainPlan:
    total_steps: int
    lrs: np.ndarray  # [T] learning rate used at step t (t = 0..T-1)
    checkpoint_steps: list[int]  # steps after which a checkpoint is saved, 0 = initialisation
    stage_starts: list[int] = field(default_factory=lambda: [0])  # first step of each stage (stage 0 at 0)
    pools: list[np.ndarray] | None = None  # per stage: int indices into the full training set

    def stage_of(self, step: int) -> int:
        """The stage that runs step `step` (0-based)."""
        return int(np.searchsorted(self.stage_starts, step, side="right")) - 1

    def segments(self) -> list[dict]:
        """Per interval between consecutive checkpoints: its step count K, mean lr and training pool
        (index into `pools`; the interval's steps all belong to that one stage)."""
        out = []
        for a, b in zip(self.checkpoint_steps[:-1], self.checkpoint_steps[1:]):
            pool = self.stage_of(a)
            assert b <= a or self.stage_of(b - 1) == pool, "a checkpoint interval straddles a stage switch"
            out.append({"start": a, "end": b, "steps": b - a, "mean_lr": float(self.lrs[a:b].mean()) if b > a else 0.0,
                        "pool": pool})
        return out


def make_plan(train_cfg: dict, n_examples: int, total_steps: int | None = None,
              stage_starts: list[int] | None = None) -> TrainPlan:
    """`epochs` over `n_examples`, or exactly `total_steps` steps when given (step-matched runs:
    pruned and `groundtruth.steps: same_steps` subset models train as long as the full-data run);
    `stage_starts` (first step of each stage, 0 first) adds a checkpoint at every stage switch."""
    steps_per_epoch = math.ceil(n_examples / train_cfg["batch_size"])
    total = max(1, int(round(train_cfg["epochs"] * steps_per_epoch))) if total_steps is None else int(total_steps)
    lrs = lr_schedule(train_cfg["schedule"], train_cfg["lr"], total)
    c = train_cfg["n_checkpoints"]
    starts = list(stage_starts) if stage_starts is not None else [0]
    if starts[0] != 0 or any(b <= a for a, b in zip(starts[:-1], starts[1:])) or starts[-1] >= total:
        raise ValueError(f"stage starts {starts} must rise from 0 and lie below the {total} steps")
    ckpts = sorted({0, *(int(round(total * i / c)) for i in range(1, c + 1)), *starts})
    return TrainPlan(total, lrs, ckpts, starts)


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
