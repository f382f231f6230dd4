"""Between-method comparison from paired bootstrap replicates, and planning of the benchmark's size.

Every metric draws its bootstrap replicates from fixed-seed draws that depend only on the ground
truth's shapes (tda_core.metrics.stats.bootstrap_draws for LDS/dLDS; fixed generators for mislabel
AUC and LOO), so replicate b of method A and replicate b of method B are computed on the same
resampled queries and subsets: the difference A - B per replicate is a paired bootstrap of the
difference. `compare_methods` turns those into ranks with bootstrap intervals, paired p-values
against the best method and between all pairs, Holm-corrected.

Caveat: LDS/dLDS replicates carry each method's own crossed-design shrink factor
(stats._remove_double_count; 0.51 on one simulated 60 x 60 benchmark, and alike for methods on one ground truth), so
a difference's replicates are the paired joint-bootstrap differences shrunk by about that factor,
not by a factor estimated for the difference itself. Identical methods still differ by exactly 0.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy.stats import norm, rankdata

from .stats import LEVEL, reliability, seeds_for_ceiling


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_p(diff: np.ndarray) -> float:
    """Two-sided paired bootstrap p of a difference from its replicates: 2 min(P(d <= 0), P(d >= 0)), at most 1."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def compare_methods(estimates: dict, replicates: dict, level: float = LEVEL, alpha: float = 0.05) -> dict:
    """Ranks and paired tests of methods on one metric and experiment (higher is better).

    estimates: name -> point estimate; replicates: name -> [B] bootstrap replicates drawn with the
    same draws for every method (paired). Methods with a nan estimate are left out (rank None).
    Per method: rank (1 = best, by point estimate; ties share the lower rank), rank_ci_low/high (the
    percentiles of the per-replicate ranks, over replicates where every ranked method is finite),
    p_vs_best (paired bootstrap p of best - method), p_vs_best_adjusted (Holm over the comparisons
    with the best), tied_with_best (adjusted p >= alpha; the best itself is tied with itself).
    pairwise: every pair {a, b, diff = est a - est b, ci_low, ci_high (percentiles of the replicate
    differences), p, p_holm (Holm over all pairs of this table)}, a ranked above b.
    """
    names = [n for n in estimates if np.isfinite(estimates[n])]
    excluded = [n for n in estimates if n not in names]
    methods = {n: {"estimate": float(estimates[n]), "rank": None, "rank_ci_low": None, "rank_ci_high": None,
                   "p_vs_best": None, "p_vs_best_adjusted": None, "tied_with_best": None} for n in estimates}
    if not names:
        return {"methods": methods, "best": None, "pairwise": [], "excluded": excluded}
    first = np.array([estimates[n] for n in names], dtype=np.float64)
    names = [names[i] for i in np.argsort(-first, kind="stable")]  # best first
    est = np.array([estimates[n] for n in names], dtype=np.float64)
    reps = np.stack([np.asarray(replicates[n], dtype=np.float64) for n in names], axis=1)  # [B, K]
    ranks = rankdata(-est, method="min").astype(int)

    complete = np.isfinite(reps).all(axis=1)
    rep_ranks = rankdata(-reps[complete], axis=1, method="min") if complete.any() else None
    q_lo, q_hi = (1 - level) / 2, (1 + level) / 2
    best = names[0]
    p_best = np.array([paired_p(reps[:, 0] - reps[:, k]) if k else 1.0 for k in range(len(names))])
    p_best_adj = np.ones(len(names))
    if len(names) > 1:
        p_best_adj[1:] = holm(p_best[1:])
    for k, n in enumerate(names):
        r_lo = r_hi = None
        if rep_ranks is not None:
            r_lo = int(np.quantile(rep_ranks[:, k], q_lo, method="lower"))
            r_hi = int(np.quantile(rep_ranks[:, k], q_hi, method="higher"))
        tied = True if k == 0 else (bool(p_best_adj[k] >= alpha) if np.isfinite(p_best_adj[k]) else None)
        methods[n].update(rank=int(ranks[k]), rank_ci_low=r_lo, rank_ci_high=r_hi, p_vs_best=float(p_best[k]),
                          p_vs_best_adjusted=float(p_best_adj[k]), tied_with_best=tied)

    pairwise = []
    for a, b in combinations(range(len(names)), 2):
        d = reps[:, a] - reps[:, b]
        finite = d[np.isfinite(d)]
        lo, hi = (np.quantile(finite, [q_lo, q_hi]) if len(finite) else (np.nan, np.nan))
        pairwise.append({"a": names[a], "b": names[b], "diff": float(est[a] - est[b]), "ci_low": float(lo),
                         "ci_high": float(hi), "p": paired_p(d)})
    for row, adj in zip(pairwise, holm([r["p"] for r in pairwise])):
        row["p_holm"] = float(adj)
    return {"methods": methods, "best": best, "pairwise": pairwise, "excluded": excluded}


def power(subset: np.ndarray, components: dict, target_halfwidth: float = 0.03, target_ceiling: float = 0.7,
          level: float = LEVEL, reliability_result: dict | None = None) -> dict:
    """How many seeds per subset and subsets the benchmark needs (planning; rough, documented).

    subset: [M, R', Q] subset measurements; components: stats.variance_components of the best method
    (var_between_queries: the query part, fixed for a given query set; var_subsets: the bootstrap
    variance resampling only subsets, which shrinks as 1 / M).
    - seeds per subset: the R'' for which the R''-seed mean target has noise ceiling `target_ceiling`,
      from the single-seed reliability r1 by the inverse Spearman-Brown (stats.seeds_for_ceiling).
    - subsets: the CI half-width is taken as z * sqrt(var_between_queries + var_subsets * M / M''),
      the subset part scaling with 1 / M''. If the query part alone exceeds the target half-width no number of
      subsets reaches it: more queries are needed (subsets_needed None, said in the note).
    """
    rel = reliability_result if reliability_result is not None else reliability(subset)
    n_sub = int(np.shape(subset)[0])
    notes = []
    r1 = rel.get("reliability")
    seeds = None
    if r1 is None or not np.isfinite(r1) or rel.get("ceiling") == 0.0:
        notes.append("no reliable signal in the subset measurements: seeds per subset cannot be planned")
    else:
        n = seeds_for_ceiling(r1, target_ceiling)
        seeds = int(max(1, math.ceil(n - 1e-9))) if np.isfinite(n) else None
    z = float(norm.ppf((1 + level) / 2))
    budget = (target_halfwidth / z) ** 2
    vq, vs = float(components["var_between_queries"]), float(components["var_subsets"])
    subsets = None
    if vq >= budget:
        notes.append(f"the query part alone gives a CI half-width of {z * math.sqrt(vq):.3f} > {target_halfwidth}: "
                     "more queries are needed")
    else:
        subsets = int(max(1, math.ceil(n_sub * vs / (budget - vq)))) if vs > 0 else 1
    return {"seeds_per_subset_needed": seeds, "subsets_needed": subsets,
            "halfwidth_now": z * math.sqrt(components.get("var_joint", vq + vs)), "note": "; ".join(notes) or None}
