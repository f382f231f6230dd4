"""Leave-one-out study ("LOO is noisy", d-TDA; docs/design.md, section Evaluation).

A few training points z_k are removed one at a time and the model is retrained with S seeds
(seed s of the full-data and of the leave-one-out run share the initialisation, so differences are
paired). The actual mean shift of query q is E_s[f(full_s)] - E_s[f(loo_k,s)], with its standard
error over the paired seeds; the method predicts it as mean_r tau_r[q, k] (tau = effect of
including z_k). Reported: Pearson r over all (k, q) pairs with a bootstrap CI that resamples the
queries and the removed points jointly (the points are a random draw from the training set too: a CI
over queries alone is conditional on the few points that happened to be chosen and too narrow when
the methods' accuracy varies from point to point). Draws are fixed (the query stream of
stats.bootstrap_draws and a stream of their own for the points), so the replicates are paired across
methods. The joint resampling of two crossed units counts their interaction twice: conservative. The
Spearman, the split-half reliability (the same r between the shifts measured on two halves of the
seeds; no Spearman-Brown ceiling: the halves' shifts are paired differences, not a seed mean of one
measurement), and the rule of thumb: how many seeds a shift of this size needs to be resolved.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr

from ..scores import Scores
from .groundtruth import LooTruth
from .stats import LEVEL, bootstrap_draws


def actual_shift(full: np.ndarray, loo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """full [S, Q], loo [K, S, Q] -> mean shift [K, Q], its standard error, paired-difference std."""
    diff = full[None] - loo  # [K, S, Q]
    sd = diff.std(axis=1, ddof=1)
    return diff.mean(axis=1), sd / np.sqrt(diff.shape[1]), sd


def predicted_shift(scores: Scores, points: np.ndarray) -> np.ndarray:
    """[K, Q]: mean over the method's seeds of tau_r[q, k] (the predicted effect of including z_k)."""
    return np.mean([s[:, points].T for s in scores.seed_arrays()], axis=0)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(pearsonr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")


def seeds_needed(mean: np.ndarray, sd: np.ndarray, z: float = 2.0) -> float:
    """Median over (k, q) of the seeds for which the mean shift is z standard errors from 0."""
    with np.errstate(divide="ignore"):
        need = (z * sd / np.abs(mean)) ** 2
    return float(np.median(need))


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson of each row of a and b [B, n] (nan where a row is constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def point_draws(n_points: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[B, K] resampled removed points: a pure function of the arguments (stream 4; stats uses 1-3)."""
    return np.random.default_rng([seed, 4]).integers(0, n_points, size=(n_boot, n_points))


def evaluate_loo(scores: Scores, truth: LooTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    points, full, loo = truth.points, truth.full, truth.loo
    pred = predicted_shift(scores, points)
    mean, se, sd = actual_shift(full, loo)
    value = _pearson(pred, mean)
    n_points, n_q = pred.shape
    q_idx = bootstrap_draws(n_q, 0, n_boot, seed)["queries"]  # [B, Q], the same for every method
    k_idx = point_draws(n_points, n_boot, seed)  # [B, K]
    cells = (k_idx[:, :, None], q_idx[:, None, :])  # [B, K, Q]: resampled points x resampled queries
    boots = _pearson_rows(pred[cells].reshape(n_boot, -1), mean[cells].reshape(n_boot, -1))
    lo, hi = (np.nanquantile(boots, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]) if np.isfinite(boots).any()
              else (np.nan, np.nan))
    half_a, _, _ = actual_shift(full[::2], loo[:, ::2])
    half_b, _, _ = actual_shift(full[1::2], loo[:, 1::2])
    return {
        "value": value, "ci_low": float(lo), "ci_high": float(hi), "replicates": [float(x) for x in boots],
        "split_half_reliability": _pearson(half_a, half_b),
        "spearman": float(spearmanr(pred.ravel(), mean.ravel()).statistic) if np.ptp(pred) > 0 else float("nan"),
        "n_seeds": int(full.shape[0]), "points": np.asarray(points).tolist(),
        "resolved_fraction": float(np.mean(np.abs(mean) > 2 * se)),
        "seeds_needed_median": seeds_needed(mean, sd),
        "predicted": pred.tolist(), "actual": mean.tolist(), "actual_se": se.tolist(),
    }
