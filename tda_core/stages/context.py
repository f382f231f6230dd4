"""Build the records a method sees (tda_core/methods/context.py) from an Experiment.

The one place where the experiment's config, splits and model files turn into an
AttributionContext and per-seed Trajectories; methods never see the Experiment or its config.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..curvature.store import CurvatureCache
from ..errors import ArtifactError
from ..methods.context import AttributionContext, Checkpoint, Interval, Schedule, Trajectory
from ..methods.registry import curvature_fit
from ..training import Run, build_optimizer
from ..training.trainer import run_schedule, task_generator


def build_context(exp, seeds, cache_dir: str | Path | None = None, chunk_size: int | None = None,
                  shared_dir: str | Path | None = None) -> AttributionContext:
    """The context of `exp` for `seeds` (the query target). `cache_dir`: where fitted curvature is
    cached (the attribute stage: inside the method's own score directory); None = no caching.
    `shared_dir`: the experiment's shared curvature fit, read first (shared_curvature_dir); None = none.
    `chunk_size`: examples per gradient batch (default: the config's chunk_size, else 256)."""
    s = exp.splits
    optimizer = build_optimizer(exp.cfg["train"])

    def load_trajectory(seed: int) -> Trajectory:
        checkpoints, meta = exp.load_model_file(seed)  # one read of the model file
        return trajectory_of(seed, checkpoints, meta, s.n_train, optimizer,
                             replay=lambda: recorded_schedule(exp.cfg, seed, s.n_train))

    return AttributionContext(
        task=exp.task, train_x=s.train_x, train_y=s.train_y, query_x=s.query_x, query_y=s.query_y,
        seeds=tuple(int(r) for r in seeds), build_model=exp.build_model, load_trajectory=load_trajectory,
        device=exp.device, chunk_size=chunk_size or exp.spec.chunk_size, cache=CurvatureCache(
            None if cache_dir is None else Path(cache_dir), exp.hash, None if shared_dir is None else Path(shared_dir)))


def method_cache_dir(exp, method: str, target: str) -> Path:
    """A method's curvature cache: inside its score directory (tda_core/layout.py)."""
    return Path(exp.layout.curvature_cache(method, target))


def shared_curvature_dir(exp, method: str, options: dict, target: str) -> Path | None:
    """The experiment's shared curvature fit the method reads with these options (the fit_curvature job's
    folder, tda_core/layout.py), or None: it fits no curvature, its cache is off, or the target's
    parameters are not the trained model's (randomized: tda_core/targets.py)."""
    fit = curvature_fit(method, options)
    if fit is None or target == "randomized":
        return None
    return Path(exp.layout.curvature_dir(fit["key"]))


def intervals_of(meta: dict, n_train: int) -> list[Interval]:
    """The checkpoint intervals of a model file's meta ("segments", "pools"; train stage)."""
    pools = meta.get("pools")
    out = []
    for iv in meta["segments"]:
        stage = iv.get("pool")
        pool = None
        if stage is not None and pools is not None and len(pools[stage]) != n_train:
            pool = np.asarray(pools[stage], dtype=np.int64)  # a training stage on part of the examples
        out.append(Interval(int(iv["steps"]), float(iv["mean_lr"]), stage, pool))
    return out


def trajectory_of(seed: int, checkpoints: list[dict], meta: dict, n_train: int, optimizer, replay=None) -> Trajectory:
    """A Trajectory from a model file's checkpoints [{step, params, opt_state}] and meta."""
    intervals = [None] * len(checkpoints)
    if "segments" in meta:
        if len(meta["segments"]) != len(checkpoints) - 1:
            raise ArtifactError(f"seed {seed}: {len(checkpoints)} checkpoints but {len(meta['segments'])} "
                                f"checkpoint intervals recorded")
        intervals = [None, *intervals_of(meta, n_train)]
    ckpts = tuple(Checkpoint(int(c["step"]), c["params"], c.get("opt_state"), iv)
                  for c, iv in zip(checkpoints, intervals))
    return Trajectory(seed, ckpts, optimizer, replay)


def recorded_schedule(cfg: dict, seed: int, n_train: int) -> Schedule:
    """The full-data run of `seed` step by step, exactly as the trainer ran it."""
    plan, batches = run_schedule(cfg, Run(seed), n_train)
    return Schedule(np.asarray(plan.lrs)[: plan.total_steps], tuple(batches), lambda: task_generator(seed))
