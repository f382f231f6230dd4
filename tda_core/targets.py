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

A target is an Experiment view whose splits.query_* and task.measure (randomized: load_checkpoints)
are swapped, so every method (whether it calls ctx.query_grads or reads exp.splits.query_x itself)
runs unchanged.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np

from .config import block_defaults
from .errors import ConfigError
from .layout import TARGETS, score_stem  # noqa: F401 (re-exported: the layout names the score files)

LOSS_TARGETS = ("val", "train_self")
DEFAULT_SELF_EXAMPLES = block_defaults("mislabel")["max_examples"]  # train_self: K x N scores, cap K (schema)
RANDOMIZED_SEED_OFFSET = 10_000  # randomized: seed r's checkpoints become build_model(r + offset)'s init


def self_index(n_train: int, max_examples: int | None = DEFAULT_SELF_EXAMPLES, seed: int = 0) -> np.ndarray:
    """Sorted indices of the training examples that attribute themselves (all of them if few)."""
    if max_examples is None or max_examples >= n_train:
        return np.arange(n_train)
    return np.sort(np.random.default_rng([seed, 1009]).choice(n_train, size=max_examples, replace=False))


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ConfigError(f"unknown attribution target '{target}'; known: {', '.join(TARGETS)}")


def target_view(exp, target: str, max_self: int | None = DEFAULT_SELF_EXAMPLES):
    """An Experiment whose queries are the target's examples (the same models, config hash and paths)."""
    from .api import Experiment

    check_target(target)
    if target == "query":
        return exp
    if target == "randomized":
        view = Experiment(copy.deepcopy(exp.cfg))
        view.__dict__["splits"] = exp.splits
        view.load_checkpoints = lambda seed: randomized_checkpoints(exp, seed)  # the hook every method reads
        view.target = target
        return view
    cfg = copy.deepcopy(exp.cfg)
    if cfg.get("kind", "classification") != "diffusion":
        cfg["measurement"] = "loss"  # diffusion's measurement is already its (denoising) loss
    view = Experiment(cfg)
    s = exp.splits
    if target == "val":
        index = None
        qx, qy = s.val_x, s.val_y
    else:
        index = self_index(s.n_train, max_self)
        qx, qy = s.train_x[index], s.train_y[index]  # the labels the model was trained on (noisy ones too)
    view.__dict__["splits"] = dataclasses.replace(s, query_x=qx, query_y=qy)  # overrides the cached_property
    view.target = target
    view.query_index = index
    return view


def randomized_checkpoints(exp, seed: int) -> list[dict]:
    """Seed `seed`'s checkpoints with every checkpoint's params replaced by a fresh initialisation
    (exp.build_model(seed + RANDOMIZED_SEED_OFFSET)); the other keys (step, opt_state) are kept."""
    fresh = {k: v.detach().clone() for k, v in exp.build_model(seed + RANDOMIZED_SEED_OFFSET).named_parameters()}
    out = []
    for c in exp.load_checkpoints(seed):
        if set(c["params"]) != set(fresh):
            raise ValueError(f"checkpoint parameters {sorted(c['params'])} differ from the model's {sorted(fresh)}")
        out.append({**c, "params": {k: fresh[k].to(v.dtype, copy=True) for k, v in c["params"].items()}})
    return out
