"""Tuning sensitivity, statistics: LDS over a grid of one option, with an honest (held-out) choice.

Picking the grid point with the best LDS on the same queries it is then reported on is optimistic
(the maximum of noisy estimates is biased up). So the queries are split into two seeded halves:
the best point is chosen on half A ("select") and its LDS, the default's, and the paired difference
best - default are reported on half B ("report"). The difference's 95% CI comes from the paired
joint bootstrap (both points' replicates use the same resampled queries and subsets of half B:
tda_core.metrics.stats.bootstrap_draws depends only on the shapes and the seed), its p from
compare.paired_p. The in-sample best (chosen and reported on all queries) is kept for reference.
"""
from __future__ import annotations

import numpy as np

from .compare import paired_p
from .stats import LEVEL, _percentile_ci, spearman_bootstrap, spearman_columns

SPLIT_SEED = 0  # seed of the query halves (fixed: the same split for every method and run)


def query_halves(n_queries: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(select, report): a seeded random split of the query indices into halves (sorted)."""
    perm = np.random.default_rng([seed, 7]).permutation(n_queries)
    half = n_queries // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def lds_value(preds: np.ndarray, target: np.ndarray) -> float:
    """LDS point estimate: mean over queries of the mean over scoring seeds of Spearman over subsets
    (preds [S, M, Q], target [M, Q]); nan columns left out."""
    rho = spearman_columns(preds, target[None])  # [S, Q]
    per_query = np.nanmean(rho, axis=0) if np.isfinite(rho).any() else np.full(rho.shape[1], np.nan)
    return float(np.nanmean(per_query)) if np.isfinite(per_query).any() else float("nan")


def _best(values: list[float], default_index: int) -> int:
    """Index of the largest value; the default wins ties (tuning must beat it to be chosen)."""
    v = np.where(np.isfinite(values), values, -np.inf)
    best = int(np.argmax(v))
    return default_index if v[default_index] >= v[best] else best


def tuning_result(preds: list[np.ndarray], target: np.ndarray, default_index: int, n_boot: int = 1000,
                  seed: int = 0, split_seed: int = SPLIT_SEED, level: float = LEVEL, point_cis: bool = True) -> dict:
    """LDS of every grid point and the held-out choice.

    preds: per grid point [S, M, Q] (or [M, Q]) subset predictions; target [M, Q] (the subset
    models' mean measurement); default_index: the grid point that is the method's own setting.
    Returns:
      points: per grid point {value, ci_low, ci_high} on all queries (in-sample; for the plot),
              and select_value (LDS on half A);
      selected: the index chosen on half A; default_value / selected_value: LDS on half B;
      gain, gain_ci_low, gain_ci_high, gain_p: selected - default on half B (paired bootstrap);
      in_sample_best, in_sample_gain: chosen and reported on all queries (optimistic, for reference);
      n_select, n_report: queries in each half.
    point_cis False skips the in-sample bootstrap of every point (ci_low / ci_high nan; simulations).
    """
    preds = [np.asarray(p, dtype=np.float64) for p in preds]
    preds = [p[None] if p.ndim == 2 else p for p in preds]
    target = np.asarray(target, dtype=np.float64)
    select, report = query_halves(target.shape[1], split_seed)
    points = []
    for p in preds:
        boot = (spearman_bootstrap(p, target, n_boot=n_boot, seed=seed, level=level) if point_cis
                else {"value": lds_value(p, target), "ci_low": float("nan"), "ci_high": float("nan")})
        points.append({"value": boot["value"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"],
                       "select_value": lds_value(p[:, :, select], target[:, select])})
    selected = _best([pt["select_value"] for pt in points], default_index)
    in_sample = _best([pt["value"] for pt in points], default_index)
    on_report = {i: spearman_bootstrap(preds[i][:, :, report], target[:, report], n_boot=n_boot, seed=seed,
                                       level=level) for i in {selected, default_index}}
    diff = on_report[selected]["replicates"] - on_report[default_index]["replicates"]
    lo, hi = _percentile_ci(diff, level) if selected != default_index else (0.0, 0.0)
    return {"points": points, "default_index": default_index, "selected": selected,
            "default_value": on_report[default_index]["value"], "selected_value": on_report[selected]["value"],
            "gain": on_report[selected]["value"] - on_report[default_index]["value"],
            "gain_ci_low": lo, "gain_ci_high": hi,
            "gain_p": paired_p(diff) if selected != default_index else 1.0,
            "in_sample_best": in_sample,
            "in_sample_gain": points[in_sample]["value"] - points[default_index]["value"],
            "n_select": int(len(select)), "n_report": int(len(report)), "split_seed": split_seed}
