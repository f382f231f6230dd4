"""Tuning sensitivity, statistics: LDS over a grid of one option, with an honest (cross-fitted) choice.

Picking the grid point with the best LDS on the same data it is then reported on is optimistic (the
maximum of noisy estimates is biased up). Splitting only the queries is not enough: every query's
Spearman runs over the same subsets, so noise that lives in the subsets (a subset whose retrained
models happen to move every query the way one grid point predicts) is shared by both query halves and
the choice leaks into the report (measured: held-out gain +0.010 under the null, "significant" in 7.3%
of nulls at a nominal 2.5%). So queries and subsets are both split into seeded halves (cross-fitting):

    fold 1: choose on (queries A, subsets A), report the chosen point minus the default on (B, B)
    fold 2: choose on (B, B), report on (A, A)

The two folds' report blocks share no query and no subset, so each fold's choice is independent of
the data it is reported on. gain = mean over the two folds of (chosen - default) on the report block:
the expected gain of choosing by this rule. Per fold, the paired joint bootstrap of (chosen -
default) on the report block (both points' replicates use the same resampled queries and subsets:
tda_core.metrics.stats.bootstrap_draws depends only on the shapes and the seed; the crossed-design
correction applied to the difference). The two folds' gains are positively correlated (the point that
wins on one block is the one reported on the other: correlation about 0.3 under the null), so their
replicates are combined comonotonically (the average of the sorted replicates: the widest the average
of two correlated estimates can be); 95% CI: its percentiles, p: compare.paired_p. Measured under a
planted null with subset noise shared by all queries: significant in 3.0% (at most 1.0% without shared
noise) at a nominal 2.5%, where the query-only split gave 9.5-12%. `selected` is the point chosen on all
the data (what one would adopt); `selected_folds` the folds' choices. The in-sample best (chosen and
reported on all data) is kept for reference.
"""
from __future__ import annotations

import numpy as np

from .compare import paired_p
from .stats import LEVEL, _percentile_ci, _remove_double_count, spearman_bootstrap, spearman_columns

SPLIT_SEED = 0  # seed of the query halves (fixed: the same split for every method and run)


def query_halves(n_queries: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(select, report): a seeded random split of the query indices into halves (sorted)."""
    perm = np.random.default_rng([seed, 7]).permutation(n_queries)
    half = n_queries // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def subset_halves(n_subsets: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(A, B): a seeded random split of the subset indices into halves (sorted), independent of the queries'."""
    perm = np.random.default_rng([seed, 11]).permutation(n_subsets)
    half = n_subsets // 2
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
    """LDS of every grid point and the cross-fitted choice.

    preds: per grid point [S, M, Q] (or [M, Q]) subset predictions; target [M, Q] (the subset
    models' mean measurement); default_index: the grid point that is the method's own setting.
    Returns:
      points: per grid point {value, ci_low, ci_high} on all data (in-sample; for the plot), and
              select_value (LDS on queries A x subsets A, the first fold's choice block);
      selected: the index chosen on all data; selected_folds: each fold's choice;
      default_value / selected_value: mean over folds of the default's / the fold's choice's LDS on
              the fold's report block;
      gain, gain_ci_low, gain_ci_high, gain_p: their difference (cross-fitted paired bootstrap);
      in_sample_best, in_sample_gain: chosen and reported on all data (optimistic, for reference);
      n_select, n_report: queries per half; n_subsets_select, n_subsets_report: subsets per half.
    point_cis False skips the in-sample bootstrap of every point (ci_low / ci_high nan; simulations).
    """
    preds = [np.asarray(p, dtype=np.float64) for p in preds]
    preds = [p[None] if p.ndim == 2 else p for p in preds]
    target = np.asarray(target, dtype=np.float64)
    q_a, q_b = query_halves(target.shape[1], split_seed)
    s_a, s_b = subset_halves(target.shape[0], split_seed)
    folds = [((q_a, s_a), (q_b, s_b)), ((q_b, s_b), (q_a, s_a))]

    def block(p, t, qs, ss):
        return p[:, ss][:, :, qs], t[ss][:, qs]

    points = []
    for p in preds:
        boot = (spearman_bootstrap(p, target, n_boot=n_boot, seed=seed, level=level) if point_cis
                else {"value": lds_value(p, target), "ci_low": float("nan"), "ci_high": float("nan")})
        points.append({"value": boot["value"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"],
                       "select_value": lds_value(*block(p, target, *folds[0][0]))})
    in_sample = _best([pt["value"] for pt in points], default_index)
    chosen, sel_vals, def_vals, diffs = [], [], [], []
    for k, ((q_sel, s_sel), (q_rep, s_rep)) in enumerate(folds):
        pick = _best([lds_value(*block(p, target, q_sel, s_sel)) for p in preds], default_index)
        chosen.append(pick)
        if pick == default_index:  # the default kept: no gain in this fold, exactly
            value = lds_value(*block(preds[pick], target, q_rep, s_rep))
            sel_vals.append(value)
            def_vals.append(value)
            diffs.append(np.zeros(n_boot))
            continue
        a, b = (spearman_bootstrap(*block(preds[i], target, q_rep, s_rep), n_boot=n_boot, seed=seed + k, level=level)
                for i in (pick, default_index))
        sel_vals.append(a["value"])
        def_vals.append(b["value"])
        diffs.append(paired_difference(a, b))
    # The folds' gains are positively correlated (a point that wins on one block is reported on the other,
    # and the other way round; measured: correlation about 0.3 under the null), so they are not combined
    # as independent: the fold-averaged CI averages the two folds' sorted replicates (comonotone, the
    # largest variance two correlated estimates can have). Conservative: at most the error rate of one fold.
    diff = np.mean([np.sort(d) for d in diffs], axis=0)
    moved = any(c != default_index for c in chosen)
    lo, hi = _percentile_ci(diff, level) if moved else (0.0, 0.0)
    return {"points": points, "default_index": default_index, "selected": in_sample, "selected_folds": chosen,
            "default_value": float(np.mean(def_vals)), "selected_value": float(np.mean(sel_vals)),
            "gain": float(np.mean(sel_vals) - np.mean(def_vals)),
            "gain_ci_low": lo, "gain_ci_high": hi, "gain_p": paired_p(diff) if moved else 1.0,
            "in_sample_best": in_sample,
            "in_sample_gain": points[in_sample]["value"] - points[default_index]["value"],
            "n_select": int(len(q_a)), "n_report": int(len(q_b)), "n_subsets_select": int(len(s_a)),
            "n_subsets_report": int(len(s_b)), "split_seed": split_seed, "cross_fitted": True,
            "fold_gains": [float(sv - dv) for sv, dv in zip(sel_vals, def_vals)]}


def paired_difference(a: dict, b: dict) -> np.ndarray:
    """Replicates of a - b (two spearman_bootstrap results on the same block and draws), with the
    crossed-design correction applied to the difference itself (stats._remove_double_count), not to
    each point separately."""
    reps, _ = _remove_double_count(a["value"] - b["value"], a["per_query"] - b["per_query"],
                                   a["per_query_replicates"] - b["per_query_replicates"],
                                   a["raw_replicates"] - b["raw_replicates"])
    return reps
