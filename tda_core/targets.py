"""Attribution targets: which examples a method explains, without the method knowing.

    query       the query split, measurement f as configured (the LDS path; scores/{m}/seed{r}.npy)
    val         the validation split, measurement = loss (pruning: effect of removal on the
                validation loss; scores/{m}/val_seed{r}.npy)
    train_self  (a seeded sample of) the training examples themselves, measurement = loss; the
                diagonal tau[k, index[k]] is self-influence (mislabel detection;
                scores/{m}/train_self_seed{r}.npy)
    randomized  the query split and measurement, but the model re-initialised: every checkpoint of
                seed r (so trajectory methods - TracIn, SOURCE, unrolled - see random weights too)
                has its params replaced by those of a fresh model built from seed
                r + RANDOMIZED_SEED_OFFSET; step, lr and optimizer-state metadata are left as trained
                (zeroed Adam moments would make SOURCE's preconditioner 1/eps). The model-randomization
                sanity check (metric randomization; scores/{m}/randomized_seed{r}.npy). Methods that
                replay training from the step-0 checkpoint (unrolled, dtda_unrolled) fail this target:
                their replay check sees that the checkpoints are no training run (a failed row, no verdict).

A target is the method's AttributionContext (tda_core/methods/context.py) with its query set and
measurement (randomized: its trajectories' params) swapped, so every method runs unchanged.
This module imports no torch at load time (score_stem serves the workflow).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np

from .config import block_defaults
from .layout import TARGETS, check_target, score_stem  # noqa: F401 (re-exported: the layout names the score files)

LOSS_TARGETS = ("val", "train_self")
DEFAULT_SELF_EXAMPLES = block_defaults("mislabel")["max_examples"]  # train_self: K x N scores, cap K (schema)
RANDOMIZED_SEED_OFFSET = 10_000  # randomized: seed r's checkpoints become build_model(r + offset)'s init


def self_index(n_train: int, max_examples: int | None = DEFAULT_SELF_EXAMPLES, seed: int = 0) -> np.ndarray:
    """Sorted indices of the training examples that attribute themselves (all of them if few)."""
    if max_examples is None or max_examples >= n_train:
        return np.arange(n_train)
    return np.sort(np.random.default_rng([seed, 1009]).choice(n_train, size=max_examples, replace=False))


def target_context(ctx, target: str, val: tuple[Any, Any] | None = None,
                   max_self: int | None = DEFAULT_SELF_EXAMPLES) -> tuple[Any, np.ndarray | None]:
    """The AttributionContext whose queries are the target's examples, and the training indices of
    those queries (train_self; else None). `val`: the validation (x, y), needed by target "val"."""
    check_target(target)
    if target == "query":
        return ctx, None
    if target == "randomized":
        load = ctx.load_trajectory

        def load_randomized(seed: int):
            return randomized_trajectory(load(seed), ctx.build_model(seed + RANDOMIZED_SEED_OFFSET))

        # other parameters than the trained model's: never the experiment's shared curvature fit
        cache = ctx.cache.without_shared() if hasattr(ctx.cache, "without_shared") else ctx.cache
        return dataclasses.replace(ctx, load_trajectory=load_randomized, _trajectories={}, cache=cache), None
    index = None
    if target == "val":
        if val is None:
            raise ValueError("target 'val' needs the validation examples")
        qx, qy = val
    else:
        index = self_index(ctx.n_train, max_self)
        qx, qy = ctx.train_x[index], ctx.train_y[index]  # the labels the model was trained on (noisy ones too)
    return dataclasses.replace(ctx, query_x=qx, query_y=qy, task=loss_measured(ctx.task)), index


def loss_measured(task):
    """`task` with measurement f = its loss (diffusion's measurement already is its denoising loss)."""
    if getattr(task, "measurement", "loss") in ("loss", "denoising_loss"):
        return task
    out = copy.copy(task)
    out.measurement = "loss"
    return out


def randomized_trajectory(trajectory, fresh_model):
    """`trajectory` with every checkpoint's params replaced by those of `fresh_model` (a new
    initialisation); step, opt_state and the intervals are kept."""
    fresh = {k: v.detach().clone() for k, v in fresh_model.named_parameters()}

    def params_of(c):
        if set(c.params) != set(fresh):
            raise ValueError(f"checkpoint parameters {sorted(c.params)} differ from the model's {sorted(fresh)}")
        return {k: fresh[k].to(v.dtype, copy=True) for k, v in c.params.items()}

    return trajectory.with_params(params_of)
