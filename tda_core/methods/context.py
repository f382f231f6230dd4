"""The narrow interface every attribution method sees (like dattri's AttributionTask or kronfluence's Task).

A method's `score(ctx)` gets one `AttributionContext`: the training and query examples, the task's loss
and measurement (`ctx.task`, tda_core.tasks), the architecture (`build_model(seed)`), the seeds to use,
each seed's training `Trajectory` (checkpoints with step, params, learning rate, optimizer state and the
training pool of the interval that led to them; the optimizer; the schedule to replay) and a curvature
`cache`. It never sees the experiment object or its config: the attribute stage builds these records
(tda_core/stages/context.py), and an attribution target (tda_core/targets.py) is the same record with
other queries / measurement / parameters swapped in.

Sign convention (docs/design.md, section Notation): tau[q, i] > 0 means training on z_i raises f(z_q). A
gradient step on z_i moves theta by -eta * g_i, so first-order scores carry a minus sign.

Score shapes (what score(ctx) returns; saved as results/{exp}/scores/{method}/seed{r|all}.npy, float32):
  [Q, N]     per-seed methods (ctx.seeds = [r]; one file per full-data seed r) and ensemble methods
             (ctx.seeds = every full-data seed; one "seedall" file).
  [R, Q, N]  methods with `per_seed_samples = True` (the d-TDA estimators dtda_*; ensemble, so one
             "seedall" file): axis 0 is the full-data seed r = 0..R-1 (the order of ctx.seeds) and
             [r] holds seed r's scores computed from seed r's own model. The d-TDA predicted sample of
             seed r after removing the set T is  m(theta_r) - sum_{i in T} tau[r, q, i], with
             m(theta_r) = groundtruth["full"][r, q]. The classic LDS uses the mean over axis 0.
Q = len(ctx.query_y), N = ctx.n_train.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..curvature.store import CurvatureCache
from ..gradients import per_example_grads


@dataclass(frozen=True)
class Interval:
    """The training between two consecutive checkpoints (its steps all belong to one training stage)."""

    steps: int  # K: number of optimizer steps
    mean_lr: float  # mean learning rate over those steps
    stage: int | None = None  # the training stage they belong to (None: not recorded)
    pool: np.ndarray | None = None  # int indices of the examples that stage trained on; None = all N


@dataclass(frozen=True)
class Checkpoint:
    """Saved state of a training run after `step` steps (step 0 = the initialisation)."""

    step: int
    params: dict[str, torch.Tensor]  # on the CPU, as saved
    opt_state: dict | None = None  # the optimizer's state (SGD momentum buffers, Adam moments and step)
    interval: Interval | None = None  # the training that led here (None for the first checkpoint)

    @property
    def lr(self) -> float | None:
        """Mean learning rate of the interval that led to this checkpoint."""
        return None if self.interval is None else self.interval.mean_lr


@dataclass(frozen=True)
class Schedule:
    """The recorded run step by step, for replaying it (the `unrolled` method)."""

    lrs: np.ndarray  # [T] learning rate of step t
    batches: tuple[np.ndarray, ...]  # [T] indices into the training set of step t's mini-batch
    aux_generator: Callable[[], torch.Generator]  # a fresh generator of the task's random draws, as in training


@dataclass(frozen=True)
class Trajectory:
    """One full-data seed's training run: checkpoints[0] is the initialisation when saved (step 0),
    checkpoints[c].interval the training between checkpoints c - 1 and c."""

    seed: int
    checkpoints: tuple[Checkpoint, ...]
    optimizer: Any  # tda_core.training.optim SGD | Adam: init/step, effective_lr_scale, weight_decay, betas, eps
    replay: Callable[[], Schedule] | None = None  # the exact batches and learning rates, built on demand

    @property
    def weight_decay(self) -> float:
        """The optimizer's coupled L2 weight decay: part of the trained objective's Hessian."""
        return float(self.optimizer.weight_decay)

    @property
    def intervals(self) -> tuple[Interval, ...]:
        return tuple(c.interval for c in self.checkpoints[1:])

    def with_params(self, params_of: Callable[[Checkpoint], dict]) -> "Trajectory":
        """The same run with every checkpoint's params replaced by params_of(checkpoint)."""
        return dataclasses.replace(
            self, checkpoints=tuple(dataclasses.replace(c, params=params_of(c)) for c in self.checkpoints))


@dataclass(frozen=True)
class AttributionContext:
    """What a method sees (module docstring). Build it with tda_core.stages.context.build_context."""

    task: Any  # tda_core.tasks: loss / attribution_loss (g_i), measure (f), network_inputs, sample_fisher_targets
    train_x: torch.Tensor
    train_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    seeds: tuple[int, ...]  # (r,) for per-seed methods, every full-data seed for ensembles
    build_model: Callable[[int], torch.nn.Module]  # the architecture, initialised from a seed (on the CPU)
    load_trajectory: Callable[[int], Trajectory]  # seed -> its training run (ctx.trajectory memoises it)
    device: torch.device = torch.device("cpu")
    chunk_size: int = 256
    cache: CurvatureCache = CurvatureCache(None)  # fitted curvature; root None = no caching
    _trajectories: dict = field(default_factory=dict, repr=False, compare=False)  # shared by for_seeds views

    @property
    def seed(self) -> int:
        return self.seeds[0]

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    @property
    def n_query(self) -> int:
        return len(self.query_y)

    def rng(self, salt: str) -> np.random.Generator:
        return np.random.default_rng([int.from_bytes(salt.encode(), "little") % (2**32), *self.seeds])

    def for_seeds(self, seeds) -> "AttributionContext":
        """The same context restricted to `seeds` (d-TDA: one seed at a time); trajectories stay shared."""
        return dataclasses.replace(self, seeds=tuple(int(s) for s in seeds))

    def trajectory(self, seed: int) -> Trajectory:
        if seed not in self._trajectories:
            self._trajectories[seed] = self.load_trajectory(seed)
        return self._trajectories[seed]

    def release(self, seed: int) -> None:
        """Drop a seed's trajectory from memory (it is re-loaded on the next use)."""
        self._trajectories.pop(seed, None)

    def checkpoints(self, seed: int) -> tuple[Checkpoint, ...]:
        return self.trajectory(seed).checkpoints

    def model(self, seed: int) -> torch.nn.Module:
        return self.build_model(seed).to(self.device)

    def params(self, seed: int, index: int = -1) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in self.checkpoints(seed)[index].params.items()}

    def train_grads(self, seed: int, params=None, projector=None, x=None, y=None) -> torch.Tensor:
        """[N, P] per-example gradients g_i of the attribution loss on the training set (or on x, y)."""
        return per_example_grads(
            self.model(seed), params if params is not None else self.params(seed), self.task.attribution_loss,
            self.train_x if x is None else x, self.train_y if y is None else y, self.chunk_size, projector,
            desc="train gradients",
        )

    def query_grads(self, seed: int, params=None, projector=None) -> torch.Tensor:
        """[Q, P] gradients v_q of the measurement f at the query examples."""
        return per_example_grads(
            self.model(seed), params if params is not None else self.params(seed), self.task.measure,
            self.query_x, self.query_y, self.chunk_size, projector,
        )
