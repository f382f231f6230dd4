"""Statistics shared by the metrics: per-query Spearman over subsets, bootstrap CIs, noise ceiling."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def per_query_spearman(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman over subsets j, separately for each query: pred, target [M, Q] -> [Q] (nan if constant)."""
    out = np.full(pred.shape[1], np.nan)
    for q in range(pred.shape[1]):
        a, b = pred[:, q], target[:, q]
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            out[q] = spearmanr(a, b).statistic
    return out


def bootstrap_ci(per_query: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """Mean over queries and its percentile bootstrap CI (queries resampled with replacement)."""
    vals = per_query[np.isfinite(per_query)]
    if len(vals) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = vals[rng.integers(0, len(vals), size=(n_boot, len(vals)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(vals.mean()), float(lo), float(hi)


def noise_ceiling(subset_measurements: np.ndarray) -> float:
    """Mean over queries of the Spearman between the seed-means of two disjoint halves of the seeds.

    subset_measurements: [M, R, Q]. Needs R >= 2; with R seeds the halves are seeds[::2], seeds[1::2].
    """
    if subset_measurements.shape[1] < 2:
        return float("nan")
    a = subset_measurements[:, ::2].mean(axis=1)
    b = subset_measurements[:, 1::2].mean(axis=1)
    return float(np.nanmean(per_query_spearman(a, b)))
