"""Pruning by attribution (the d-TDA ViT experiment; DESIGN.md section 3).

With validation-target scores tau[v, i] (predicted change of loss(z_v) from training on z_i; see
tda_core.targets), removing z_i changes the mean validation loss by -mean_v tau[v, i]. The p% of
training examples with the largest mean_v tau[v, i] are those whose removal is predicted to lower the
validation loss most; they are removed and the model retrained.

Variants:
    fixed  seed r picks its set from its own model's scores and retrains with seed r
    dtda   the scores averaged over the R seeds' models pick one set, retrained with every seed
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


def percent_tag(percent: float) -> str:
    """p as it appears in file names: 10 -> '10', 12.5 -> '12.5'."""
    return f"{percent:g}"
