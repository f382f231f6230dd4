"""Statistics of one metric estimate: Spearman over subsets, the joint bootstrap, the target's reliability.

Sampling design of an LDS-type estimate (LDS, dLDS): queries q (crossed with everything), random
subsets S_j (crossed with queries), the subset models' seeds (nested within subsets: each subset has
its own R' retrainings) and, for per-seed methods, the scoring seeds s (one score array per full-data
seed, crossed with subsets and queries). The estimate is

    value = mean_q mean_s Spearman_j(pred[s, j, q], target[j, q]),

and its uncertainty comes from every sampled unit that is crossed with the others: queries, subsets
and scoring seeds are resampled jointly (`spearman_bootstrap`). The subset seeds are not resampled:
they are nested within subsets, so resampling subsets already carries their noise; resampling them
again would count it twice.

Draws are a pure function of (shapes, seed), from independent generator streams per unit
(`bootstrap_draws`), so two methods evaluated on the same ground truth with the same seed see the
same resampled queries and subsets: their replicates are paired, and differences between methods
can be bootstrapped replicate by replicate (tda_core.metrics.compare).

The noise ceiling (`reliability`) is the mean over queries of each query's single-seed reliability,
stepped up to the R'-seed mean by Spearman-Brown and square-rooted (attenuation), with the per-query
reliabilities' distribution deconvolved from their noisy estimates: about the LDS that a perfect
predictor of the true mean reaches.
"""
from __future__ import annotations

import hashlib

import numpy as np
from scipy.stats import rankdata

LEVEL = 0.95
_BLOCK = 2_000_000  # elements ranked at once (memory bound of the vectorised bootstrap)
_UNITS = ("queries", "subsets", "seeds")


# -- Spearman over subsets ---------------------------------------------------------------------------
def _corr(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Pearson correlation along `axis` (nan where either side is constant)."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    den = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(axis=axis) / den
    return np.where(den > 0, out, np.nan)


def spearman_columns(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman over subsets j (axis -2) for each query column: [..., M, Q] x [..., M, Q] -> [..., Q].

    Ties get average ranks; a constant column (or one with a nan) gives nan.
    """
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return _corr(rankdata(pred, axis=-2), rankdata(target, axis=-2), axis=-2)


per_query_spearman = spearman_columns  # the historical name


# -- shared bootstrap draws --------------------------------------------------------------------------
def _draw(seed: int, stream: int, n: int, n_boot: int) -> np.ndarray:
    if n == 0:
        return np.zeros((n_boot, 0), dtype=np.int64)
    return np.random.default_rng([seed, stream]).integers(0, n, size=(n_boot, n))


def bootstrap_draws(n_queries: int, n_subsets: int, n_boot: int = 1000, seed: int = 0, n_seeds: int = 1) -> dict:
    """Resampling indices, a pure function of the arguments: queries [B, Q], subsets [B, M], seeds [B, S].

    Each unit has its own generator stream (np.random.default_rng([seed, 1 | 2 | 3])), so the query
    and subset draws do not depend on the number of scoring seeds: a per-seed method (S > 1) and a
    single-array method (S = 1) evaluated with the same seed share them. "seeds" is None when S = 1.
    """
    return {"queries": _draw(seed, 1, n_queries, n_boot),
            "subsets": _draw(seed, 2, n_subsets, n_boot),
            "seeds": _draw(seed, 3, n_seeds, n_boot) if n_seeds > 1 else None}


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """[B, n]: how often each unit was drawn in each replicate."""
    b = idx.shape[0]
    return np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _weighted_nanmean(x: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    ok = np.isfinite(x)
    num = np.where(ok, x, 0.0) * w
    den = (ok * w).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num.sum(axis=axis) / den, np.nan)


def _percentile_ci(replicates: np.ndarray, level: float) -> tuple[float, float]:
    if not np.isfinite(replicates).any():
        return float("nan"), float("nan")
    lo, hi = np.nanquantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# -- ranks of a resampled sample without sorting it -------------------------------------------------
# A bootstrap sample of subsets is the original subsets j repeated c[b, j] times. Its average ranks
# follow from the original sort order and the counts (cumulative counts below a tie group, plus half
# the group), and its Spearman is the count-weighted Pearson of those ranks over the original j. So a
# column is sorted once, and every replicate costs gathers and a cumulative sum instead of a sort.
def _rank_plan(x: np.ndarray) -> dict:
    """Sort order and tie groups of each column of x [M, C], as flat indices into [M * C] (column fastest)."""
    m, n_col = x.shape
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    pos = np.arange(m)[:, None]
    differs = xs[1:] != xs[:-1]
    start = np.maximum.accumulate(np.where(np.vstack([np.ones((1, n_col), bool), differs]), pos, 0), axis=0)
    end_flag = np.vstack([differs, np.ones((1, n_col), bool)])
    end = np.flip(np.minimum.accumulate(np.flip(np.where(end_flag, pos, m - 1), axis=0), axis=0), axis=0)
    inverse = np.argsort(order, axis=0)  # sorted position of original row j
    col = np.arange(n_col)[None]
    flat = lambda rows: (rows * n_col + col).ravel()  # noqa: E731
    start_o, end_o = np.take_along_axis(start, inverse, 0), np.take_along_axis(end, inverse, 0)
    return {"shape": (m, n_col), "order": flat(order), "ties": bool(differs.size and not differs.all()),
            "end": flat(end_o), "below": flat(np.maximum(start_o - 1, 0)), "has_below": (start_o > 0).ravel(),
            "nan": np.isnan(x).any(axis=0)}


def _resampled_ranks(plan: dict, counts: np.ndarray) -> np.ndarray:
    """[b, M, C]: average rank of original subset j in each replicate sample (counts [b, M])."""
    (m, n_col), b = plan["shape"], counts.shape[0]
    counts = counts.astype(np.float32)  # counts and ranks are exact in float32 far beyond any M used here
    sorted_counts = np.take(counts, plan["order"] // n_col, axis=1).reshape(b, m, n_col)
    cum = np.cumsum(sorted_counts, axis=1).reshape(b, m * n_col)  # cumulative counts in sorted order
    upto = np.take(cum, plan["end"], axis=1)
    if plan["ties"]:
        below = np.take(cum, plan["below"], axis=1) * plan["has_below"]
    else:
        below = upto - np.repeat(counts, n_col, axis=1)
    return (below + (upto - below + 1) / 2).reshape(b, m, n_col)


def _wcorr(a: np.ndarray, b: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """Weighted Pearson along `axis` (w broadcast against a and b; nan where a side has no spread)."""
    total = w.sum(axis=axis, keepdims=True)
    a = a - (w * a).sum(axis=axis, keepdims=True) / total
    b = b - (w * b).sum(axis=axis, keepdims=True) / total
    va, vb = (w * a * a).sum(axis=axis), (w * b * b).sum(axis=axis)
    scale = np.maximum(va, vb) * 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (w * a * b).sum(axis=axis) / np.sqrt(va * vb)
    return np.where((va > scale) & (vb > scale), out, np.nan)


# -- the joint bootstrap -----------------------------------------------------------------------------
def _remove_double_count(value: float, per_query: np.ndarray, per_q_b: np.ndarray, reps: np.ndarray) -> tuple:
    """Shrink joint-bootstrap replicates to the variance of a crossed design (queries x subsets).

    With T_q = theta_q + e_q (e_q: query q's error from the sampled subsets and scoring seeds), the
    estimate's variance is Var(theta)/Q + Var(mean_q e_q). Resampling queries gives
    v_q = (Var(theta) + Var(e))/Q, resampling subsets gives v_s = Var(mean_q e_q); the joint bootstrap
    adds both and so counts the query-specific part Var(e)/Q twice (McCullagh 2000, "Resampling and
    exchangeable arrays"; conservative: observed ~99.5% coverage for a nominal 95%). The target
    variance v_q + v_s - Var(e)/Q uses v_q = the variance of the per-query values / Q, v_s and
    Var(e) = the mean over queries of the replicate variance of T_q, both from the replicates' per-query
    values (resampled subsets, query weights left out). The replicates are shrunk about their mean by
    sqrt(target / joint variance) (never widened) and centred on the point estimate.
    """
    ok = np.isfinite(per_query) & np.isfinite(per_q_b).all(axis=0)
    n_q, v_joint = int(ok.sum()), float(np.nanvar(reps))
    if n_q < 2 or not np.isfinite(v_joint) or v_joint <= 0:
        return reps, 1.0
    v_q = float(np.var(per_query[ok])) / n_q
    v_s = float(np.var(per_q_b[:, ok].mean(axis=1)))
    v_e = float(np.mean(np.var(per_q_b[:, ok], axis=0)))
    scale = float(np.sqrt(np.clip((v_q + v_s - v_e / n_q) / v_joint, 0.0, 1.0)))
    return value + scale * (reps - np.nanmean(reps)), scale


def spearman_bootstrap(pred: np.ndarray, actual: np.ndarray, n_boot: int = 1000, seed: int = 0,
                       level: float = LEVEL, resample: tuple[str, ...] = _UNITS) -> dict:
    """Mean over queries (and scoring seeds) of Spearman_j(pred, actual), with a joint bootstrap CI.

    pred: [M, Q] or [S, M, Q] (S scoring seeds, each scored against the same target); actual: [M, Q],
    or [S, M, Q]: one target per scoring seed (lds_fixed_seed), resampled with the same draws.
    value = mean_q mean_s Spearman_j(pred[s, :, q], actual[:, q]) (nan columns left out).
    Each replicate resamples the units named in `resample` (default all: queries, subsets, scoring
    seeds) with the shared draws of `bootstrap_draws`: it recomputes the Spearman on the resampled
    subsets (duplicated subsets are ties, average ranks), averages over the resampled scoring seeds,
    then takes the draw-count-weighted mean over queries. The resampled target is ranked once per
    replicate. When queries and subsets (or seeds) are both resampled, the replicates are shrunk by
    the crossed-design correction of `_remove_double_count` (the raw ones are kept as
    raw_replicates). CI: percentiles of the replicates.

    The subset models' seeds are nested within subsets, so resampling subsets already carries their
    seed noise (resampling them as well would double count it); scoring seeds are crossed with
    subsets and queries, so they are resampled.

    Returns value, ci_low, ci_high, per_query [Q], per_seed [S], replicates [B], raw_replicates [B],
    per_query_replicates [B, Q] (query weights not applied), crossed_scale (numpy arrays / floats).
    """
    pred = np.asarray(pred, dtype=np.float64)
    pred = pred[None] if pred.ndim == 2 else pred
    actual = np.asarray(actual, dtype=np.float64)
    n_seeds, n_sub, n_q = pred.shape
    per_seed_actual = actual.ndim == 3
    if per_seed_actual and actual.shape != pred.shape:
        raise ValueError(f"pred {pred.shape} and per-seed actual {actual.shape} disagree")
    if not per_seed_actual and actual.shape != (n_sub, n_q):
        raise ValueError(f"pred {pred.shape} and actual {actual.shape} disagree on [subsets, queries]")
    unknown = set(resample) - set(_UNITS)
    if unknown:
        raise ValueError(f"unknown resampling units {sorted(unknown)}; known: {', '.join(_UNITS)}")

    per_seed_q = spearman_columns(pred, actual if per_seed_actual else actual[None])  # [S, Q]
    per_query = _weighted_nanmean(per_seed_q, np.ones_like(per_seed_q), axis=0)
    value = float(np.nanmean(per_query)) if np.isfinite(per_query).any() else float("nan")

    draws = bootstrap_draws(n_q, n_sub, n_boot, seed, n_seeds)
    w_q = _counts(draws["queries"], n_q) if "queries" in resample else np.ones((n_boot, n_q))
    sub = draws["subsets"] if "subsets" in resample else np.broadcast_to(np.arange(n_sub), (n_boot, n_sub))
    w_m = _counts(sub, n_sub)
    w_s = (_counts(draws["seeds"], n_seeds) if draws["seeds"] is not None and "seeds" in resample
           else np.ones((n_boot, n_seeds)))
    plan_actual = _rank_plan(np.moveaxis(actual, 0, 1).reshape(n_sub, n_seeds * n_q) if per_seed_actual else actual)
    plan_pred = _rank_plan(np.moveaxis(pred, 0, 1).reshape(n_sub, n_seeds * n_q))  # columns (s, q)
    bad = plan_pred["nan"].reshape(n_seeds, n_q) | (plan_actual["nan"].reshape(n_seeds, n_q) if per_seed_actual
                                                     else plan_actual["nan"][None])
    reps, per_q_all = np.empty(n_boot), np.empty((n_boot, n_q))
    per_q_fixed = np.empty((n_boot, n_q))  # scoring seeds not resampled (compare.row_difference)
    chunk = max(1, _BLOCK // ((n_seeds + 1) * n_sub * max(n_q, 1)))
    for start in range(0, n_boot, chunk):
        c = slice(start, start + chunk)
        rank_actual = _resampled_ranks(plan_actual, w_m[c])  # [b, M, Q], once per replicate
        rank_pred = _resampled_ranks(plan_pred, w_m[c]).reshape(-1, n_sub, n_seeds, n_q)  # [b, M, S, Q]
        rank_actual = (rank_actual.reshape(-1, n_sub, n_seeds, n_q) if per_seed_actual
                       else rank_actual[:, :, None])
        # float32 like the ranks (exact there): half the time of float64, replicates within ~1e-8
        rho = _wcorr(rank_pred, rank_actual, w_m[c][:, :, None, None].astype(np.float32), axis=1)  # [b, S, Q]
        rho = np.where(bad[None], np.nan, rho)
        per_q_all[c] = _weighted_nanmean(rho, w_s[c][:, :, None], axis=1)  # [b, Q]
        per_q_fixed[c] = _weighted_nanmean(rho, np.ones_like(rho), axis=1)
        reps[c] = _weighted_nanmean(per_q_all[c], w_q[c], axis=1)
    return _finish(value, per_query, per_seed_q, per_q_all, per_q_fixed, reps, w_q, resample, level)


def _finish(value, per_query, per_seed_q, per_q_all, per_q_fixed, raw, w_q, resample, level) -> dict:
    """The result of a joint bootstrap of a correlation averaged over queries (and scoring seeds).

    The replicates are shrunk for the crossed design (`_remove_double_count`) and clipped to [-1, 1]:
    re-centring them on the point estimate can push a few of them past the range of a correlation
    near +-1 (a 1.008 CI bound was printed); a bound outside the range has no meaning.
    The decomposition that lets a difference of two rows get its own crossed-design variance
    (tda_core.metrics.compare.row_difference) is kept: replicates_queries (queries resampled, the
    per-query point values), replicates_subsets (subsets resampled, scoring seeds held, no query
    weights), replicates_queries_subsets (both; seeds held), and per_seed_query [S, Q].
    """
    reps, scale = raw, 1.0
    if "queries" in resample and len(set(resample) - {"queries"}) > 0 and np.isfinite(value):
        reps, scale = _remove_double_count(value, per_query, per_q_all, raw)
    reps = np.clip(reps, -1.0, 1.0)
    lo, hi = _percentile_ci(reps, level)
    return {"value": value, "ci_low": lo, "ci_high": hi, "per_query": per_query,
            "per_seed": np.array([np.nanmean(p) if np.isfinite(p).any() else np.nan for p in per_seed_q]),
            "per_seed_query": per_seed_q, "replicates": reps, "raw_replicates": raw,
            "replicates_queries": _weighted_nanmean(np.broadcast_to(per_query, w_q.shape), w_q, axis=1),
            "replicates_subsets": _weighted_nanmean(per_q_fixed, np.ones_like(per_q_fixed), axis=1),
            "replicates_queries_subsets": _weighted_nanmean(per_q_fixed, w_q, axis=1),
            "per_query_replicates": per_q_all, "crossed_scale": scale}


DIFFERENCE_FIELDS = ("replicates_queries", "replicates_subsets", "replicates_queries_subsets")


def _floats(x, digits: int = 7) -> list:
    return [round(float(v), digits) if np.isfinite(v) else float("nan") for v in np.ravel(x)]


def estimate(boot: dict) -> dict:
    """The JSON part of a bootstrap result: value, CI and the replicates as a list of floats, and,
    where the bootstrap provides them, the fields a paired comparison of two rows reads
    (DIFFERENCE_FIELDS, per_seed, per_seed_query: tda_core.metrics.compare.row_difference)."""
    out = {"value": boot["value"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"],
           "replicates": [float(x) for x in boot["replicates"]]}
    if all(k in boot for k in DIFFERENCE_FIELDS):
        out.update({k: _floats(boot[k]) for k in DIFFERENCE_FIELDS})
        out["per_seed"] = [float(p) for p in boot["per_seed"]]
        out["per_seed_query"] = [_floats(row) for row in np.atleast_2d(boot["per_seed_query"])]
    return out


def lds_bootstrap(preds: np.ndarray, target: np.ndarray, n_boot: int = 1000, seed: int = 0,
                  level: float = LEVEL) -> dict:
    """LDS with its joint (queries x subsets x scoring seeds) bootstrap: preds [S, M, Q], target [M, Q].

    See `spearman_bootstrap` (same computation); the subset seeds are nested in the subsets and are
    therefore not resampled separately.
    """
    return spearman_bootstrap(preds, target, n_boot=n_boot, seed=seed, level=level)


def variance_components(pred: np.ndarray, actual: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Parts of the estimate's bootstrap variance, for planning (tda_core.metrics.compare.power).

    var_queries: resampling queries only; var_subsets: resampling subsets only (the part that shrinks
    as 1/M); var_query_specific: the mean over queries of the per-query subset-bootstrap variance / Q
    (in both of the former); var_between_queries = var_queries - var_query_specific (the part no
    number of subsets removes); var_joint: the corrected joint bootstrap (about the sum of the last
    and var_subsets).
    """
    q_only = spearman_bootstrap(pred, actual, n_boot, seed, resample=("queries",))
    s_only = spearman_bootstrap(pred, actual, n_boot, seed, resample=("subsets",))
    joint = spearman_bootstrap(pred, actual, n_boot, seed)
    per_q = s_only["per_query_replicates"]
    ok = np.isfinite(per_q).all(axis=0)
    specific = float(np.mean(np.var(per_q[:, ok], axis=0)) / max(int(ok.sum()), 1))
    v_q = float(np.nanvar(q_only["replicates"]))
    return {"var_queries": v_q, "var_subsets": float(np.nanvar(s_only["replicates"])),
            "var_query_specific": specific, "var_between_queries": max(v_q - specific, 0.0),
            "var_joint": float(np.nanvar(joint["replicates"])),
            "n_subsets": int(np.shape(actual)[0]), "n_queries": int(np.shape(actual)[1])}


# -- reliability and noise ceiling -------------------------------------------------------------------
def ceiling_from_reliability(r1, n_target_seeds):
    """sqrt(n r1 / (1 + (n - 1) r1)): Spearman-Brown step-up of the single-seed reliability r1 to the
    n-seed mean target, then the attenuation square root (r1 clipped to [0, 1])."""
    r = np.clip(np.asarray(r1, dtype=np.float64), 0.0, 1.0)
    n = np.asarray(n_target_seeds, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(np.where(r > 0, n * r / (1 + (n - 1) * r), 0.0))
    return float(out) if out.ndim == 0 else out


def reliability_from_ceiling(ceiling, n_target_seeds):
    """Inverse of `ceiling_from_reliability` in r1: the single-seed reliability that gives `ceiling`."""
    sb = np.asarray(ceiling, dtype=np.float64) ** 2
    out = sb / (n_target_seeds - (n_target_seeds - 1) * sb)
    return float(out) if out.ndim == 0 else out


def seeds_for_ceiling(r1, ceiling):
    """Inverse of `ceiling_from_reliability` in n (planning): seeds per subset for which the R'-seed mean
    target reaches `ceiling`, n = c^2 (1 - r1) / (r1 (1 - c^2)) (not rounded; inf if r1 <= 0)."""
    sb = float(ceiling) ** 2
    r1 = float(r1)
    if r1 <= 0:
        return float("inf")
    if sb >= 1:
        return float("inf") if r1 < 1 else 1.0
    return sb * (1 - r1) / (r1 * (1 - sb))


def _pair_reliability(ranks: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over seed pairs a < b of the w-weighted correlation over subsets: ranks [b, M, R, Q], w [b, M] -> [b, Q]."""
    ww = w[:, :, None, None]
    c = ranks - (ww * ranks).sum(axis=1, keepdims=True) / ww.sum(axis=1, keepdims=True)
    c = c * np.sqrt(ww)
    norm = np.sqrt((c * c).sum(axis=1))  # [b, R, Q]
    gram = np.einsum("bmrq,bmsq->brsq", c, c)
    ok = norm > 1e-9 * norm.max(initial=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = gram / (norm[:, :, None] * norm[:, None])
    corr = np.where(ok[:, :, None] & ok[:, None], corr, np.nan)
    i, j = np.triu_indices(ranks.shape[2], k=1)
    pairs = corr[:, i, j]  # [b, P, Q]
    return _weighted_nanmean(pairs, np.ones_like(pairs), axis=1)


_RELIABILITY_CACHE: dict = {}


def reliability(subset: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> dict:
    """See `_reliability`; memoised on the measurements' bytes, because every method's LDS and dLDS-mean
    result carries the same ground-truth figures (one bootstrap per experiment, not one per row)."""
    subset = np.ascontiguousarray(subset, dtype=np.float64)
    key = (subset.shape, hashlib.sha1(subset.tobytes()).hexdigest(), n_boot, seed, level)
    if key not in _RELIABILITY_CACHE:
        if len(_RELIABILITY_CACHE) > 32:
            _RELIABILITY_CACHE.clear()
        _RELIABILITY_CACHE[key] = _reliability(subset, n_boot, seed, level)
    return dict(_RELIABILITY_CACHE[key])


def _reliability(subset: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> dict:
    """Single-seed reliability of the subset measurements and the noise ceiling of the R'-seed mean target.

    subset: [M, R', Q]. r1 = mean over seed pairs a < b and queries of Spearman_j(f_a[:, q], f_b[:, q]),
    reported clipped at 0 (its CI is not clipped); CI from the joint query x subset bootstrap with the
    shared draws of `bootstrap_draws` (the seeds of a subset go with it), with the crossed-design
    correction of `_remove_double_count`.
    ceiling: about the LDS a perfect predictor of the true (infinite-seed) mean reaches against the
    R'-seed mean target, i.e. the mean over queries of ceiling_from_reliability(r_q, R') =
    sqrt(R' r_q / (1 + (R' - 1) r_q)). The map is concave, so the ceiling of the mean r1 overstates it
    when reliabilities vary (+0.06 for uniformly spread r_q, +0.25-0.35 when half the queries are
    noise), and mapping each noisy per-query estimate overstates it too; so the distribution of the
    true r_q is deconvolved from the estimates and their subset-bootstrap standard errors
    (`reliability_prior`) and the ceiling is its mean per-query ceiling. CI: the posterior-mean
    per-query ceilings (`posterior_ceiling`) on the joint bootstrap replicates, crossed-design
    corrected. `ceiling_of_mean_reliability` keeps the old figure, ceiling_from_reliability(r1, R').

    Small-signal bias and the choice made here: the square root turns estimation noise around r1 = 0
    into a clearly positive ceiling (Q = 100, M = 50: SD(r1) ~ 0.014, mean clipped ceiling ~ 0.075 on
    pure noise). The ceiling is therefore reported as 0, with the note "no reliable signal", when the
    95% bootstrap CI of r1 includes 0 (ci_low <= 0, a one-sided 2.5% test of r1 > 0); its CI is then
    [0, ceiling(ci_high)]. On pure noise the mean reported ceiling is then ~0 (at most 2.5% of
    benchmarks report a positive one; 0.000 in tests/test_statistics.py); a real r1 a few standard
    errors above 0 is not affected (r1 = 0.05 with M = Q = 100: ceiling error +0.005). For r1 within
    ~2 SE of 0 the ceiling is biased down, which the note flags. With R' < 2 nothing can be
    estimated: nan with a note.
    """
    subset = np.asarray(subset, dtype=np.float64)
    n_sub, n_seeds, n_q = subset.shape
    out = {"target_seeds": int(n_seeds)}
    keys = ("reliability", "reliability_ci_low", "reliability_ci_high", "ceiling", "ceiling_ci_low", "ceiling_ci_high")
    if n_seeds < 2:
        return {**out, **dict.fromkeys(keys, float("nan")),
                "note": "reliability needs at least 2 seeds per subset"}
    per_q = _pair_reliability(rankdata(subset, axis=0)[None], np.ones((1, n_sub)))[0]
    r1 = float(np.nanmean(per_q)) if np.isfinite(per_q).any() else float("nan")
    draws = bootstrap_draws(n_q, n_sub, n_boot, seed)
    w_q = _counts(draws["queries"], n_q)
    w_m = _counts(draws["subsets"], n_sub)
    plan = _rank_plan(subset.reshape(n_sub, n_seeds * n_q))
    reps, per_q_all = np.empty(n_boot), np.empty((n_boot, n_q))
    chunk = max(1, _BLOCK // (3 * subset.size))
    for start in range(0, n_boot, chunk):
        c = slice(start, start + chunk)
        ranks = _resampled_ranks(plan, w_m[c]).reshape(-1, n_sub, n_seeds, n_q)
        per_q_all[c] = _pair_reliability(ranks, w_m[c])  # [b, Q]
        reps[c] = _weighted_nanmean(per_q_all[c], w_q[c], axis=1)
    raw = reps
    if np.isfinite(r1):
        reps, _ = _remove_double_count(r1, per_q, per_q_all, reps)
    reps = np.clip(reps, -1.0, 1.0)
    lo, hi = _percentile_ci(reps, level)
    out.update(reliability=max(r1, 0.0) if np.isfinite(r1) else r1, reliability_ci_low=lo, reliability_ci_high=hi)
    if not np.isfinite(r1):
        return {**out, **dict.fromkeys(keys[3:], float("nan")), "note": "subset measurements are constant"}
    if not lo > 0:
        return {**out, "ceiling": 0.0, "ceiling_ci_low": 0.0,
                "ceiling_ci_high": ceiling_from_reliability(hi, n_seeds) if np.isfinite(hi) else float("nan"),
                "note": f"no reliable signal: the {level:.0%} CI of the single-seed reliability includes 0"}
    ok = np.isfinite(per_q) & (np.isfinite(per_q_all).sum(axis=0) >= 2)
    if not ok.any():
        return {**out, **dict.fromkeys(keys[3:], float("nan")), "note": "per-query reliabilities not resolved"}
    se = np.sqrt(np.nanvar(per_q_all[:, ok], axis=0))
    grid, prior = reliability_prior(per_q[ok], se)
    ceil_q = posterior_ceiling(per_q[ok], se, grid, prior, n_seeds)  # [Q]
    ceil_b = posterior_ceiling(per_q_all[:, ok], se, grid, prior, n_seeds)  # [B, Q]
    value = float(np.sum(prior * ceiling_from_reliability(grid, n_seeds)))
    ceil_reps = _weighted_nanmean(ceil_b, w_q[:, ok], axis=1)
    ceil_reps, _ = _remove_double_count(float(ceil_q.mean()), ceil_q, ceil_b, ceil_reps)
    c_lo, c_hi = _percentile_ci(np.clip(ceil_reps - ceil_q.mean() + value, 0.0, 1.0), level)
    return {**out, "ceiling": value, "ceiling_ci_low": c_lo, "ceiling_ci_high": c_hi,
            "ceiling_of_mean_reliability": ceiling_from_reliability(r1, n_seeds)}


# -- the mean of per-query ceilings, corrected for the noise of per-query reliabilities -------------
_GRID = np.linspace(0.0, 1.0, 201)


def reliability_prior(r_hat: np.ndarray, se: np.ndarray, grid: np.ndarray = _GRID, n_iter: int = 500) -> tuple:
    """Distribution of the true per-query reliabilities behind noisy estimates (deconvolution).

    r_hat [Q]: each query's single-seed reliability estimate; se [Q]: its standard error (the
    subset bootstrap's). Model: r_hat_q ~ N(r_q, se_q^2), r_q drawn from a distribution G on [0, 1].
    G is the nonparametric maximum-likelihood estimate on a grid (Kiefer-Wolfowitz; EM on the grid
    weights, as in Efron's g-modelling / Koenker-Mizera). Returns (grid, weights).
    """
    r_hat, se = np.asarray(r_hat, dtype=np.float64), np.maximum(np.asarray(se, dtype=np.float64), 1e-4)
    like = np.exp(-0.5 * ((r_hat[:, None] - grid[None]) / se[:, None]) ** 2) / se[:, None]  # [Q, K]
    weights = np.full(len(grid), 1.0 / len(grid))
    for _ in range(n_iter):
        post = like * weights
        post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)
        weights = post.mean(axis=0)
    return grid, weights


def posterior_ceiling(r_hat: np.ndarray, se: np.ndarray, grid: np.ndarray, prior: np.ndarray, n_seeds: int):
    """E[ceiling(r_q) | r_hat_q] under `prior` (same shape as r_hat; se broadcasts over its last axis)."""
    r_hat = np.asarray(r_hat, dtype=np.float64)
    se = np.maximum(np.asarray(se, dtype=np.float64), 1e-4)
    like = np.exp(-0.5 * ((r_hat[..., None] - grid) / se[..., None]) ** 2) * prior
    f = ceiling_from_reliability(grid, n_seeds)
    den = like.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (like * f).sum(axis=-1) / den, float(np.sum(prior * f)))


def target_fields(rel: dict) -> dict:
    """`reliability`'s result for a metric result dict: its note becomes `target_note`."""
    rel = dict(rel)
    if "note" in rel:
        rel["target_note"] = rel.pop("note")
    return rel
