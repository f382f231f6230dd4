"""Pruning by attribution (the d-TDA ViT experiment; docs/design.md, section Evaluation).

With validation-target scores tau[v, i] (predicted change of loss(z_v) from training on z_i; see
tda_core.targets), removing z_i changes the mean validation loss by -mean_v tau[v, i]. The p% of
training examples with the largest mean_v tau[v, i] are those whose removal is predicted to lower the
validation loss most; they are removed and the model retrained.

Out-of-sample protocol. The R scoring models (full-data seeds 0..R-1) produce the scores; every
retrain uses fresh seeds (`pruning.retrain_seeds`, disjoint from 0..R-1), so no retrained model
shares an initialisation or batch order with a model that picked its removals. The full-data
baseline is retrained on the same fresh seeds (not the scoring models), and every pruned model
trains for the full-data run's step count (step-matched: the same number of optimiser steps and the
same lr schedule over fewer examples, i.e. more epochs), so the comparison isolates which examples
were removed rather than how long the model trained.

Variants (S retrain seeds s_0..s_{S-1}):
    fixed  scoring seed r picks a set from its own model's scores; retrain seed s_k trains on the set
           of scoring seed k mod R, so every run is one (set, fresh seed) pair and, with S >= R,
           every scoring seed's set is retrained (S = R: each set exactly once)
    dtda   the scores averaged over the R scoring models pick one set, retrained with every s_k
    random removal (baseline) the set of (s_k, p) drawn independently of every method
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

VARIANTS = ("fixed", "dtda")


def removal_benefit(val_scores: np.ndarray) -> np.ndarray:
    """[N]: predicted decrease of the mean validation loss when each training example is removed."""
    return np.asarray(val_scores, dtype=np.float64).mean(axis=0)


def n_removed(percent: float, n_train: int) -> int:
    return int(round(percent / 100.0 * n_train))


def select_removals(benefit: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the k examples with the largest benefit (ties: lower index first)."""
    order = np.argsort(-benefit, kind="stable")
    return np.sort(order[:k])


def variant_scores(per_seed: list[np.ndarray], variant: str, seed: int) -> np.ndarray:
    """The [V, N] scores a variant ranks with: seed r's own, or the mean over seeds (d-TDA)."""
    if variant == "fixed":
        return per_seed[seed] if len(per_seed) > 1 else per_seed[0]
    if variant == "dtda":
        return np.mean(per_seed, axis=0)
    raise ConfigError(f"unknown pruning variant '{variant}'; known: {', '.join(VARIANTS)}")


def random_removals(n_train: int, k: int, seed: int, percent: float) -> np.ndarray:
    """The random-removal baseline's set for (seed, p): seeded, independent of every method."""
    rng = np.random.default_rng([seed, int(round(percent * 1000)), 4242])
    return np.sort(rng.choice(n_train, size=k, replace=False))


def retrain_seeds(n_scoring: int, spec) -> list[int]:
    """The retrain seeds of `pruning.retrain_seeds`: a count S means R..R+S-1, a list is taken as is."""
    if isinstance(spec, int):
        return list(range(n_scoring, n_scoring + spec))
    seeds = [int(s) for s in spec]
    if set(seeds) & set(range(n_scoring)):
        raise ConfigError(f"retrain seeds {seeds} overlap the scoring seeds 0..{n_scoring - 1}")
    return seeds


def fixed_scoring_seed(k: int, n_scoring: int) -> int:
    """The scoring seed whose set the k-th retrain seed trains on in the fixed variant."""
    return k % n_scoring


def percent_tag(percent: float) -> str:
    """p as it appears in file names: 10 -> '10', 12.5 -> '12.5'."""
    return f"{percent:g}"
