"""Between-row comparison: paired differences with their own crossed-design variance, ranks, planning.

Every metric draws its bootstrap replicates from fixed-seed draws that depend only on the ground
truth's shapes (tda_core.metrics.stats.bootstrap_draws for LDS/dLDS; fixed generators for mislabel
AUC and LOO), so replicate b of row A and replicate b of row B are computed on the same resampled
queries and subsets.

The difference of two LDS-type rows (`row_difference`). A row's own `replicates` are shrunk by
that row's crossed-design factor (stats._remove_double_count); subtracting two rows' shrunk
replicates gives a difference whose spread is not the difference's (an audit measured it 1.15-1.5x
too wide between one-array rows), and bootstrapping 2 scoring seeds gives half the between-seed
variance (12-21% false rejections at a nominal 5%: tests/test_paired_tests_simulation.py). So the difference D = value_A - value_B gets its own
variance, from fields every LDS-type row stores (stats.estimate):

    V_cond = v_q(D) + v_s(D) - v_qs(D)
        v_q: variance of replicates_queries A - B (queries resampled),
        v_s: of replicates_subsets A - B (subsets resampled, scoring seeds held),
        v_qs: of the interaction (replicates_queries_subsets - replicates_queries - replicates_subsets,
              A - B), i.e. the query-specific subset noise that the two one-unit bootstraps both
              count (McCullagh 2000);
    MS_seed, MS_resid: mean squares of the two-way table of per-seed, per-query differences
              per_seed_query A - B (the seeds are the full-data models both methods explain, so the
              table is paired by seed; a one-array row is the same in every seed's column);
              MS_seed / (S Q) (= the variance over seeds of the per-seed differences / S) holds every
              seed-specific part of Var(D), MS_resid / (S Q) its seed x query part (also in V_cond).
    S >= MIN_SEEDS_FOR_SEED_TESTS (and S = 1): V = V_cond + max(MS_seed - MS_resid, 0) / (S Q) (the
              ANOVA estimate of the seed main effect, a random effect), reference t with
              Welch-Satterthwaite df of the whole combination (S - 1 for MS_seed, (S - 1)(Q - 1) for
              MS_resid, Q - 1 for v_q, M - 1 for v_s, (Q - 1)(M - 1) for v_qs; M = the row's
              n_subsets: without it V_cond is taken as exact).
    1 < S < MIN_SEEDS_FOR_SEED_TESTS: V = max(V_cond - MS_resid / (S Q), 0) + MS_seed / (S Q), the
              reference t with S - 1 df: valid whatever the size of the seed effect, but with 2 seeds
              (1 df) very conservative. Estimated df are not used there: with 1 df the between-seed
              mean square is often small by chance, and the estimated df then jump up exactly when
              the variance is underestimated (9-13% false rejections at a nominal 5% by simulation).

CI: D +- t_df(0.975) sqrt(V); p: two-sided t. With one scoring seed (S = 1) the seed effect cannot be
estimated: the comparison is conditional on the scoring models. Rows without these fields (other
metrics, older bundles) fall back to the paired percentile bootstrap of replicate differences.

Ranks (`compare_methods`): one procedure gives the rank interval, the star and the pairwise table.
All pairs are tested, Holm over all of them; a row's rank interval runs from 1 + (rows significantly
better than it) to K - (rows significantly worse), a simultaneous 95% interval for all ranks (Holm
controls the family-wise error of the pairwise verdicts, and every rank interval follows from them);
`tied_with_best` (the star) is "no row is significantly better", so it is exactly "the rank interval
starts at 1".
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from .stats import DIFFERENCE_FIELDS, LEVEL, reliability, seeds_for_ceiling

RANK_NOTE = ("rank interval and star come from one procedure: every pair of rows is tested (paired, "
             "Holm over all pairs); the interval runs from 1 + the rows significantly better to K - the rows "
             "significantly worse, and a star means no row is significantly better (the interval starts at 1)")
MIN_SEEDS_FOR_SEED_TESTS = 5  # from here on the t's df are estimated (Welch-Satterthwaite); below: S - 1
MIN_SEEDS_FOR_PER_SEED_TESTS = 3  # a per-seed row with 2 scoring seeds is shown, not tested (t on 1 df)
SEED_NOTE = ("scoring seeds are a random effect: with one scoring seed a difference is conditional on the "
             "scoring models; between rows with S >= 2 seeds the interval is a t interval whose degrees of "
             f"freedom come from the seeds (S - 1 below {MIN_SEEDS_FOR_SEED_TESTS} seeds: valid but wide, "
             "e.g. t with 1 df at 2 seeds)")


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


def _has_fields(row: dict) -> bool:
    return all(row.get(k) is not None and len(row[k]) for k in (*DIFFERENCE_FIELDS, "per_seed_query"))


def _seed_table(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """[S, Q] tables of per-seed, per-query differences whose seed effect is random: one paired table
    when the rows share their seeds (or one row has a single array), else each row's own table."""
    if a.shape[0] == b.shape[0] or min(a.shape[0], b.shape[0]) == 1:
        return [a - b]
    return [a, b]


def _seed_component(table: np.ndarray) -> tuple[float, float, list[tuple[float, float]]]:
    """Mean squares of a two-way seeds x queries table (complete queries only), scaled to the mean:
    (MS_seed / (S Q), MS_resid / (S Q), [(MS_seed / (S Q), S - 1), (MS_resid / (S Q), (S-1)(Q-1))]).

    MS_seed / (S Q) estimates every seed-specific part of the mean's variance (the seed main effect
    and the seed x query terms); MS_resid / (S Q) the seed x query part, which the seed-conditional
    bootstrap variance also holds and which is therefore taken out of it (not counted twice)."""
    table = table[:, np.isfinite(table).all(axis=0)]
    n_s, n_q = table.shape
    if n_s < 2 or n_q < 2:
        return 0.0, 0.0, []
    seed_means = table.mean(axis=1)
    resid = table - seed_means[:, None] - table.mean(axis=0)[None] + table.mean()
    seed_part = float(np.var(seed_means, ddof=1)) / n_s  # = MS_seed / (S Q)
    resid_part = float((resid ** 2).sum()) / ((n_s - 1) * (n_q - 1)) / (n_s * n_q)
    return seed_part, resid_part, [(seed_part, n_s - 1), (resid_part, (n_s - 1) * (n_q - 1))]


def _var(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.var(x)) if len(x) > 1 else float("nan")


def row_difference(a: dict, b: dict, level: float = LEVEL) -> dict:
    """a - b of two rows of one metric and experiment (paired), with a CI and a two-sided p.

    a, b: rows (or metric results) with value and replicates; when both carry the crossed-design
    fields (stats.estimate: replicates_queries, replicates_subsets, replicates_queries_subsets,
    per_seed_query) the difference gets its own crossed-design variance plus the scoring-seed random
    effect (module docstring); otherwise the paired percentile bootstrap of replicate differences.
    Returns diff, ci_low, ci_high, p, se (None for the fallback), df, method.
    """
    diff = float(a["value"]) - float(b["value"])
    if not (_has_fields(a) and _has_fields(b)):
        d = np.asarray(a["replicates"], dtype=np.float64) - np.asarray(b["replicates"], dtype=np.float64)
        finite = d[np.isfinite(d)]
        q = ((1 - level) / 2, (1 + level) / 2)
        lo, hi = np.quantile(finite, q) if len(finite) else (np.nan, np.nan)
        return {"diff": diff, "ci_low": float(lo), "ci_high": float(hi), "p": paired_p(d), "se": None, "df": None,
                "method": "paired bootstrap"}
    arr = {k: np.asarray(a[k], dtype=np.float64) - np.asarray(b[k], dtype=np.float64) for k in DIFFERENCE_FIELDS}
    v_q, v_s = _var(arr["replicates_queries"]), _var(arr["replicates_subsets"])
    v_qs = _var(arr["replicates_queries_subsets"] - arr["replicates_queries"] - arr["replicates_subsets"])
    v_cond = max(v_q + v_s - v_qs, 0.0) if np.isfinite(v_q + v_s + v_qs) else float("nan")
    seed_part, resid_part, seed_terms = 0.0, 0.0, []
    for table in _seed_table(np.atleast_2d(np.asarray(a["per_seed_query"], dtype=np.float64)),
                             np.atleast_2d(np.asarray(b["per_seed_query"], dtype=np.float64))):
        sp, rp, t = _seed_component(table)
        seed_part, resid_part, seed_terms = seed_part + sp, resid_part + rp, seed_terms + t
    n_seeds = max(np.atleast_2d(a["per_seed_query"]).shape[0], np.atleast_2d(b["per_seed_query"]).shape[0])
    few_seeds = 1 < n_seeds < MIN_SEEDS_FOR_SEED_TESTS
    if few_seeds:
        # every seed-specific part from the seeds' own spread, t on S - 1 df: valid whatever the seed
        # effect. Estimated df are not used here: with 2 seeds the between-seed mean square has 1 df,
        # and when it is small by chance estimated df jump up exactly when the variance is
        # underestimated (9-13% false rejections at a nominal 5% by simulation; this: 1%).
        var = max(v_cond - resid_part, 0.0) + seed_part
        df = float(n_seeds - 1)
    else:
        # the ANOVA estimate of the seed main effect, (MS_seed - MS_resid) / (S Q), not below 0, and
        # Welch-Satterthwaite df of the whole sum: V_cond's parts come from Q queries and M subsets
        # (a normal reference gave 10.7% false rejections between strongly correlated one-array rows)
        seed_effect = max(seed_part - resid_part, 0.0)
        var = v_cond + seed_effect
        n_q = np.atleast_2d(a["per_seed_query"]).shape[1]
        n_sub = a.get("n_subsets") or b.get("n_subsets")
        terms = seed_terms if seed_effect > 0 else []
        if n_sub and n_q > 1 and n_sub > 1:
            terms = terms + [(v_q, n_q - 1), (v_s, n_sub - 1), (v_qs, (n_q - 1) * (n_sub - 1))]
        den = sum(c ** 2 / d for c, d in terms if c > 0)
        df = var ** 2 / den if den > 0 and (seed_effect > 0 or n_sub) else float("inf")
    if not np.isfinite(var):
        return {"diff": diff, "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan"), "se": None,
                "df": None, "method": "crossed design"}
    se = math.sqrt(var)
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        lo = hi = diff
    else:
        crit = float(student_t.ppf((1 + level) / 2, df))
        p = float(2 * student_t.sf(abs(diff) / se, df))
        lo, hi = diff - crit * se, diff + crit * se
    return {"diff": diff, "ci_low": float(lo), "ci_high": float(hi), "p": min(p, 1.0), "se": se,
            "df": float(df), "method": "crossed design" + (", scoring seeds random" if n_seeds > 1 else "")}


def untested_reason(row: dict | None) -> str | None:
    """Why a row takes part in no paired test, or None. A per-seed row whose scoring seeds number at least 2
    but fewer than MIN_SEEDS_FOR_PER_SEED_TESTS: its seed effect has S - 1 = 1 degree of freedom, so
    every test against it is a t on 1 df (valid, but a 12.7 critical value: a random-score row would be
    'tied with the best'). Such rows keep their value and CI and are ranked by value only."""
    table = (row or {}).get("per_seed_query")
    if table is None:
        return None
    n_seeds = np.atleast_2d(np.asarray(table, dtype=np.float64)).shape[0]
    if 1 < n_seeds < MIN_SEEDS_FOR_PER_SEED_TESTS:
        return (f"not tested: {n_seeds} scoring seeds; per-seed rows need >= {MIN_SEEDS_FOR_PER_SEED_TESTS} "
                "for a seed-random-effect test")
    return None


def compare_methods(estimates: dict, replicates: dict, level: float = LEVEL, alpha: float = 0.05,
                    rows: dict | None = None) -> dict:
    """Ranks and paired tests of rows on one metric and experiment (higher is better).

    estimates: name -> point estimate; replicates: name -> [B] bootstrap replicates drawn with the
    same draws for every row (paired); rows: name -> the row dict (optional; with the crossed-design
    fields of stats.estimate, `row_difference` uses them). Rows with a nan estimate are left out
    (rank None).
    pairwise: every pair {a, b, diff = est a - est b, ci_low, ci_high, p (`row_difference`), p_holm
    (Holm over all pairs of this table)}, a ranked above b.
    Per row: rank (1 = best, by point estimate; ties share the lower rank); rank_ci_low = 1 + the
    rows significantly better (p_holm < alpha), rank_ci_high = K - the rows significantly worse;
    p_vs_best (the pair with the best row), p_vs_best_adjusted (its p_holm); tied_with_best = no row
    is significantly better (rank_ci_low == 1; the best row always).
    Rows with an `untested_reason` (per-seed rows with 2 scoring seeds) are ranked by value among all rows
    but take part in no test: no interval, no star, `untested_reason` set; the tested rows' upper rank
    bounds count them (they could be anywhere).
    """
    names = [n for n in estimates if np.isfinite(estimates[n])]
    excluded = [n for n in estimates if n not in names]
    methods = {n: {"estimate": float(estimates[n]), "rank": None, "rank_ci_low": None, "rank_ci_high": None,
                   "p_vs_best": None, "p_vs_best_adjusted": None, "tied_with_best": None,
                   "untested_reason": None} for n in estimates}
    if not names:
        return {"methods": methods, "best": None, "pairwise": [], "excluded": excluded}
    rows = rows or {}
    all_est = np.array([estimates[n] for n in names], dtype=np.float64)
    all_ranks = dict(zip(names, rankdata(-all_est, method="min").astype(int)))  # every finite row, by value
    untested = {n: untested_reason(rows.get(n)) for n in names}
    for n in names:
        if untested[n]:
            methods[n].update(rank=int(all_ranks[n]), untested_reason=untested[n])
    names = [n for n in names if not untested[n]]
    n_untested = len(all_ranks) - len(names)
    if not names:
        return {"methods": methods, "best": None, "pairwise": [], "excluded": excluded}
    first = np.array([estimates[n] for n in names], dtype=np.float64)
    names = [names[i] for i in np.argsort(-first, kind="stable")]  # best first
    est = np.array([estimates[n] for n in names], dtype=np.float64)

    def as_row(n):
        return {**rows.get(n, {}), "value": float(estimates[n]), "replicates": replicates[n]}

    pairwise = []
    for a, b in combinations(range(len(names)), 2):
        d = row_difference(as_row(names[a]), as_row(names[b]), level)
        pairwise.append({"a": names[a], "b": names[b], "diff": float(est[a] - est[b]), "ci_low": d["ci_low"],
                         "ci_high": d["ci_high"], "p": d["p"]})
    for row, adj in zip(pairwise, holm([r["p"] if np.isfinite(r["p"]) else 1.0 for r in pairwise])):
        row["p_holm"] = float(adj)
    k = len(names)
    better, worse = np.zeros(k, int), np.zeros(k, int)
    for idx, (a, b) in enumerate(combinations(range(k), 2)):
        row = pairwise[idx]
        if row["p_holm"] < alpha and row["diff"] != 0:
            winner, loser = (a, b) if row["diff"] > 0 else (b, a)
            better[loser] += 1
            worse[winner] += 1
    best = names[0]
    with_best = {row["b"]: row for row in pairwise if row["a"] == best}
    for i, n in enumerate(names):
        pair = with_best.get(n)
        # untested rows could sit anywhere: they widen every interval's upper end, never its lower one
        methods[n].update(rank=int(all_ranks[n]), rank_ci_low=int(1 + better[i]),
                          rank_ci_high=int(k + n_untested - worse[i]),
                          p_vs_best=float(pair["p"]) if pair else 1.0,
                          p_vs_best_adjusted=float(pair["p_holm"]) if pair else 1.0,
                          tied_with_best=bool(better[i] == 0))
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
