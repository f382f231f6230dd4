"""Kendall-tau LDS (`lds_kendall`): the LDS with Kendall's tau-b over subsets instead of Spearman.

LDS_K(q) = tau_b over subsets j of (sum_{i in S_j} tau[q, i], mean over seeds of f(z_q; A(S_j, seed)))
(scipy.stats.kendalltau's default tau-b, ties corrected). quanda's CIFAR benchmark reports the LDS
with Kendall; it is less sensitive to a few extreme subsets than Spearman and sits lower on the same
data (about (2/pi) arcsin(rho) for a Gaussian pair instead of (6/pi) arcsin(rho/2)), so it is compared
only with other lds_kendall rows, never with lds.

Uncertainty: the same joint query x subset x scoring-seed bootstrap, with the same draws
(tda_core.metrics.stats.bootstrap_draws), as lds, so its replicates are paired across methods and
with the other metrics' replicates, and the same crossed-design correction. A replicate is computed
without materialising the resampled subsets: with draw counts w_j, the tau_b of the resampled sample is

    sum_{j,k} w_j w_k s^p_jk s^t_jk / sqrt(sum_{j,k} w_j w_k |s^p_jk| * sum_{j,k} w_j w_k |s^t_jk|),

s^x_jk = sign(x_j - x_k) (a subset drawn twice is a tie with itself: s = 0, as in kendalltau on the
resampled arrays). The numerator is one quadratic form per (replicate, column), computed as a float32
matrix product (exact: the terms are integers far below 2^24); the denominators have a closed form
((sum w)^2 - sum w^2) for columns without ties. No ceiling is reported: the noise ceiling of
tda_core.metrics.stats is on the Spearman scale.
"""
from __future__ import annotations

import numpy as np

from ..scores import Scores
from .groundtruth import GroundTruth
from .lds import group_predictions
from .stats import LEVEL, _UNITS, _counts, _finish, _weighted_nanmean, bootstrap_draws, estimate

_BLOCK = 4_000_000  # elements of the [columns, M, M] sign tensor (and of [B, columns, M]) built at once


def _signs(x: np.ndarray) -> np.ndarray:
    """[C, M, M] sign(x[j, c] - x[k, c]) as float32 (x: [M, C])."""
    xt = x.T
    return np.sign(xt[:, :, None] - xt[:, None, :]).astype(np.float32)


def _has_ties(x: np.ndarray) -> np.ndarray:
    """[C]: does column c of x [M, C] hold a repeated value."""
    xs = np.sort(x, axis=0)
    return (xs[1:] == xs[:-1]).any(axis=0) if len(xs) > 1 else np.zeros(x.shape[1], bool)


def _quad(w: np.ndarray, k: np.ndarray) -> np.ndarray:
    """[B, C]: w_b^T K_c w_b for w [B, M] (float32) and K [C, M, M] (float32)."""
    b, m = w.shape
    c = k.shape[0]
    wk = (w @ k.transpose(1, 0, 2).reshape(m, c * m)).reshape(b, c, m)  # [B, C, M]: (w^T K_c)_k
    return np.matmul(wk, w[:, :, None])[..., 0].astype(np.float64)


def _pair_mass(w: np.ndarray, x: np.ndarray, ties: np.ndarray, signs: np.ndarray | None) -> np.ndarray:
    """[B, C]: sum_{j,k} w_j w_k |s_jk| - the (ordered) pairs of the resampled sample not tied in x."""
    total = w.sum(axis=1, dtype=np.float64)
    untied = (total ** 2 - (w.astype(np.float64) ** 2).sum(axis=1))[:, None] * np.ones((1, x.shape[1]))
    if ties.any():
        s = signs if signs is not None else _signs(x)
        untied[:, ties] = _quad(w, np.abs(s[ties]))
    return untied


def kendall_columns(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Kendall tau-b over subsets j (axis -2) for each query column: [..., M, Q] x [M, Q] -> [..., Q]
    (scipy.stats.kendalltau per column; nan for a constant column or one holding a nan)."""
    pred = np.asarray(pred, dtype=np.float64)
    lead = pred.shape[:-2]
    m, q = pred.shape[-2:]
    flat = np.moveaxis(pred.reshape(-1, m, q), 0, 1).reshape(m, -1)  # [M, S*Q], columns (s, q)
    return _kendall_weighted(flat, np.asarray(target, dtype=np.float64), np.ones((1, m), np.float32))[0].reshape(
        *lead, q)


def _kendall_weighted(pred: np.ndarray, target: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[B, S*Q] tau_b of the w-resampled subsets: pred [M, S*Q] (columns (s, q)), target [M, Q], w [B, M]."""
    m, n_col = pred.shape
    n_q = target.shape[1]
    b = w.shape[0]
    w = w.astype(np.float32)
    bad = np.isnan(pred).any(axis=0) | np.tile(np.isnan(target).any(axis=0), n_col // n_q)
    pred, target = np.nan_to_num(pred), np.nan_to_num(target)
    st_all = _signs(target)  # [Q, M, M]
    d_t = _pair_mass(w, target, _has_ties(target), st_all)  # [B, Q]
    ties_p = _has_ties(pred)
    out = np.empty((b, n_col))
    step = max(1, min(_BLOCK // (m * m), _BLOCK // max(b * m, 1)))
    for start in range(0, n_col, step):
        cols = np.arange(start, min(start + step, n_col))
        sp = _signs(pred[:, cols])
        num = _quad(w, sp * st_all[cols % n_q])
        d_p = _pair_mass(w, pred[:, cols], ties_p[cols], sp)
        den = np.sqrt(d_p * d_t[:, cols % n_q])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, cols] = np.where(den > 0, num / den, np.nan)
    out[:, bad] = np.nan
    return out


def kendall_bootstrap(pred: np.ndarray, actual: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      level: float = LEVEL) -> dict:
    """Mean over queries (and scoring seeds) of tau_b over subsets, with the joint bootstrap of
    tda_core.metrics.stats.spearman_bootstrap (same draws, same crossed-design correction, same keys).
    pred: [M, Q] or [S, M, Q]; actual: [M, Q]."""
    pred = np.asarray(pred, dtype=np.float64)
    pred = pred[None] if pred.ndim == 2 else pred
    actual = np.asarray(actual, dtype=np.float64)
    n_seeds, n_sub, n_q = pred.shape
    if actual.shape != (n_sub, n_q):
        raise ValueError(f"pred {pred.shape} and actual {actual.shape} disagree on [subsets, queries]")
    flat = np.moveaxis(pred, 0, 1).reshape(n_sub, n_seeds * n_q)
    per_seed_q = _kendall_weighted(flat, actual, np.ones((1, n_sub), np.float32))[0].reshape(n_seeds, n_q)
    per_query = _weighted_nanmean(per_seed_q, np.ones_like(per_seed_q), axis=0)
    value = float(np.nanmean(per_query)) if np.isfinite(per_query).any() else float("nan")

    draws = bootstrap_draws(n_q, n_sub, n_boot, seed, n_seeds)
    w_q, w_m = _counts(draws["queries"], n_q), _counts(draws["subsets"], n_sub)
    w_s = _counts(draws["seeds"], n_seeds) if draws["seeds"] is not None else np.ones((n_boot, n_seeds))
    rho = _kendall_weighted(flat, actual, w_m).reshape(n_boot, n_seeds, n_q)
    per_q_all = _weighted_nanmean(rho, w_s[:, :, None], axis=1)  # [B, Q]
    per_q_fixed = _weighted_nanmean(rho, np.ones_like(rho), axis=1)  # scoring seeds held
    raw = _weighted_nanmean(per_q_all, w_q, axis=1)
    return _finish(value, per_query, per_seed_q, per_q_all, per_q_fixed, raw, w_q, _UNITS, level)


def evaluate_lds_kendall(scores: Scores, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    """lds's result (value, CI, paired replicates, per_seed, the seed-averaged variant of a per-seed
    method) with Kendall's tau-b in place of Spearman; no reliability / ceiling fields (Spearman scale)."""
    masks, measured = groundtruth.need("masks", "lds_kendall"), groundtruth.need("subset", "lds_kendall")
    arrays = scores.prediction_rows()
    preds = np.stack([group_predictions(s, masks) for s in arrays])  # [S, M, Q]
    target = measured.mean(axis=1)
    boot = kendall_bootstrap(preds, target, n_boot=n_boot, seed=seed)
    result = {**estimate(boot), "per_seed": [float(p) for p in boot["per_seed"]],
              "n_queries": int(np.isfinite(boot["per_query"]).sum()), "n_subsets": int(masks.shape[0]),
              "n_score_seeds": len(arrays)}
    if len(arrays) > 1:
        result["variants"] = {"seed-averaged": estimate(kendall_bootstrap(preds.mean(axis=0, keepdims=True), target,
                                                                          n_boot=n_boot, seed=seed))}
    return result
