"""Distributional LDS (d-TDA, Mlodozeniec et al. 2025; docs/design.md, section Evaluation).

The trained model is a random variable over seeds. For subset j (training set S_j, the complement
removed) the attribution's predicted retrained sample of seed r is, per query q,

    pred[j, r, q] = full[r, q] - sum_{i not in S_j} tau_r[q, i]

(GroundTruth.full = [R, Q] full-data measurements, tau_r = seed r's scores); the actual retrained
distribution is GroundTruth.subset[j, :, q] over the subset seeds. Each distributional influence
Delta compares the full-data distribution X with the retrained one Y:

    mean       E[X] - E[Y]          (LDS_mean ranks like the classic LDS)
    variance   Var(Y) - Var(X)
    w2         W2(X, Y)             (Wasserstein-2 of the two empirical sample sets)

LDS_Delta(q) = Spearman over j of (predicted Delta, actual Delta); reported as the mean over queries
with a 95% CI from the joint query x subset bootstrap (tda_core.metrics.stats.spearman_bootstrap; the
predicted Delta combines all scoring seeds, so there is no scoring-seed axis to resample) and its
replicates, paired across methods, and (for per-seed methods) the fixed-seed variant, where seed 0's
scores stand in for every seed's model (the classical practice), bootstrapped with the same draws.
Target noise: for Delta = mean the target is the seed mean, as for the LDS, so the single-seed
reliability and noise ceiling of stats.reliability are reported; for variance and W2 the
Spearman-Brown step-up does not apply, and the split-half reliability (the Spearman over subsets of
the actual Delta measured on two disjoint halves of the subset seeds, mean over queries) is reported
as `split_half_reliability` instead, with no `ceiling`.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArtifactError
from ..scores import Scores
from .groundtruth import GroundTruth
from .stats import estimate, reliability, spearman_bootstrap, spearman_columns, target_fields

DELTAS = ("mean", "variance", "w2")


def predicted_samples(scores: list[np.ndarray], masks: np.ndarray, full: np.ndarray) -> np.ndarray:
    """[M, R, Q]: full[r, q] - sum_{i not in S_j} tau_r[q, i]; one score array is used for every seed."""
    n_seeds = full.shape[0]
    if len(scores) not in (1, n_seeds):
        raise ArtifactError(f"{len(scores)} per-seed score arrays for {n_seeds} full-data models")
    removed = (~masks).astype(np.float64)  # [M, N]
    shifts = np.stack([removed @ s.T for s in scores], axis=1)  # [M, R or 1, Q]
    return full[None, :, :] - shifts


# -- distributional influences ---------------------------------------------------------------------
def w2_distance(a: np.ndarray, b: np.ndarray, axis: int = 0) -> np.ndarray:
    """Wasserstein-2 between the empirical distributions of `a` and `b` along `axis` (1-D samples).

    In 1-D the optimal coupling is monotone: W2^2 = int_0^1 (F_a^-1(u) - F_b^-1(u))^2 du. With equal
    sample sizes this is the mean squared difference of the sorted samples; otherwise the quantile
    functions are step functions, integrated exactly over the merged breakpoints k/n and k/m.
    """
    a = np.sort(np.moveaxis(np.asarray(a, dtype=np.float64), axis, 0), axis=0)
    b = np.sort(np.moveaxis(np.asarray(b, dtype=np.float64), axis, 0), axis=0)
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return np.sqrt(np.mean((a - b) ** 2, axis=0))
    edges = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
    widths = np.diff(edges)
    mid = (edges[:-1] + edges[1:]) / 2
    ia = np.minimum((mid * n).astype(int), n - 1)
    ib = np.minimum((mid * m).astype(int), m - 1)
    sq = (a[ia] - b[ib]) ** 2
    return np.sqrt(np.tensordot(widths, sq, axes=(0, 0)))


def _var(x: np.ndarray, axis: int) -> np.ndarray:
    return np.var(x, axis=axis, ddof=1) if x.shape[axis] > 1 else np.full(np.delete(x.shape, axis), np.nan)


def influence(delta: str, full: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """Delta(X || Y) per subset and query. full: [R, Q] samples of X; retrained: [M, R', Q] samples of Y."""
    if delta == "mean":
        return full.mean(axis=0)[None] - retrained.mean(axis=1)
    if delta == "variance":
        return _var(retrained, axis=1) - _var(full, axis=0)[None]
    if delta == "w2":
        return w2_distance(np.broadcast_to(full[None], (retrained.shape[0], *full.shape)), retrained, axis=1)
    raise ValueError(f"unknown distributional influence '{delta}'; known: {', '.join(DELTAS)}")


def predicted_influence(delta: str, scores: list[np.ndarray], masks: np.ndarray, full: np.ndarray) -> np.ndarray:
    if delta == "variance" and len(scores) == 1:
        # One score array shifts every seed's sample by the same amount: no variance change, exactly
        # (computed, it would be round-off that Spearman would rank as if it were signal).
        return np.zeros((masks.shape[0], full.shape[1]))
    return influence(delta, full, predicted_samples(scores, masks, full))


def delta_pair(delta: str, scores: list[np.ndarray], groundtruth: GroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """(predicted Delta, actual Delta), both [M, Q]; `scores`: one [Q, N] per seed (or one for all)."""
    metric = f"dlds_{delta}"
    masks, full = groundtruth.need("masks", metric), groundtruth.need("full", metric)
    subset = groundtruth.need("subset", metric)
    return predicted_influence(delta, scores, masks, full), influence(delta, full, subset)


def lds_delta_per_query(delta: str, scores: list[np.ndarray], groundtruth: GroundTruth) -> np.ndarray:
    return spearman_columns(*delta_pair(delta, scores, groundtruth))


def split_half_reliability(delta: str, groundtruth: GroundTruth) -> float:
    """Spearman over subsets between the actual Delta measured on two disjoint halves of the subset
    seeds (seeds[::2], seeds[1::2]), mean over queries: the reliability of a half-size target."""
    subset, full = groundtruth.subset, groundtruth.full
    halves = subset[:, ::2], subset[:, 1::2]
    if halves[1].shape[1] == 0 or (delta == "variance" and halves[1].shape[1] < 2):
        return float("nan")
    per_q = spearman_columns(*(influence(delta, full, h) for h in halves))
    return float(np.nanmean(per_q)) if np.isfinite(per_q).any() else float("nan")


def target_noise(delta: str, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    """Reliability and ceiling (Delta = mean, the seed-mean target) or the split-half reliability."""
    if delta == "mean":
        return reliability(groundtruth.subset, n_boot=n_boot, seed=seed)
    return {"split_half_reliability": split_half_reliability(delta, groundtruth)}


def evaluate_dlds(delta: str, scores: Scores, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    arrays = scores.seed_arrays()
    pred, actual = delta_pair(delta, arrays, groundtruth)
    boot = spearman_bootstrap(pred, actual, n_boot=n_boot, seed=seed)
    noise = target_fields(target_noise(delta, groundtruth, n_boot=n_boot, seed=seed))
    result = {**estimate(boot), **noise, "delta": delta, "n_score_seeds": len(arrays),
              "n_queries": int(np.isfinite(boot["per_query"]).sum()), "n_subsets": int(actual.shape[0])}
    if not np.isfinite(boot["per_query"]).any():
        result["note"] = ("fixed-seed scores predict no change in variance" if delta == "variance" and len(arrays) == 1
                          else "predicted or actual Delta is constant over subsets")
    if len(arrays) > 1:  # the classical practice: one seed's scores for every seed's model
        fixed_pred = predicted_influence(delta, arrays[:1], groundtruth.masks, groundtruth.full)
        result["variants"] = {"fixed-seed": estimate(spearman_bootstrap(fixed_pred, actual, n_boot=n_boot, seed=seed))}
    return result


def evaluate_dlds_mean(scores: Scores, groundtruth: GroundTruth) -> dict:
    return evaluate_dlds("mean", scores, groundtruth)


def evaluate_dlds_variance(scores: Scores, groundtruth: GroundTruth) -> dict:
    return evaluate_dlds("variance", scores, groundtruth)


def evaluate_dlds_w2(scores: Scores, groundtruth: GroundTruth) -> dict:
    return evaluate_dlds("w2", scores, groundtruth)
