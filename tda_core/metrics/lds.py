"""Linear datamodeling score (DESIGN.md section 3).

LDS(q) = Spearman over subsets j of (sum_{i in S_j} tau[q, i], mean over seeds of f(z_q; A(S_j, seed))).
Reported: mean over queries, 95% bootstrap CI over queries, and the seed-split noise ceiling.
For a per-seed method (one score file per full-data seed), the per-query LDS is averaged over seeds.
A per-seed-samples file [R, Q, N] (d-TDA estimators) is scored by the mean over its seed axis.
"""
from __future__ import annotations

import numpy as np

from .stats import bootstrap_ci, noise_ceiling, per_query_spearman


def group_predictions(scores: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[M, Q]: the additive prediction sum_{i in S_j} tau[q, i] for every subset j."""
    return masks.astype(np.float64) @ scores.astype(np.float64).T


def lds_per_query(scores: np.ndarray, masks: np.ndarray, subset_measurements: np.ndarray) -> np.ndarray:
    return per_query_spearman(group_predictions(scores, masks), subset_measurements.mean(axis=1))


def evaluate_lds(scores_by_seed: list[np.ndarray], groundtruth: dict) -> dict:
    masks, measured = groundtruth["masks"], groundtruth["subset"]
    scores_by_seed = [np.mean(s, axis=0) if np.ndim(s) == 3 else s for s in scores_by_seed]
    per_seed = np.stack([lds_per_query(s, masks, measured) for s in scores_by_seed])
    per_query = np.nanmean(per_seed, axis=0) if np.isfinite(per_seed).any() else per_seed[0]
    value, lo, hi = bootstrap_ci(per_query)
    return {
        "value": value,
        "ci_low": lo,
        "ci_high": hi,
        "ceiling": noise_ceiling(measured),
        "per_seed": [float(np.nanmean(p)) for p in per_seed],
        "n_queries": int(np.isfinite(per_query).sum()),
    }
