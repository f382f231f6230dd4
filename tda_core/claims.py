"""The papers' qualitative claims, checked on the current run (a leaderboard section; docs/design.md,
section Verdicts, "Claims of the papers").

Three kinds of claim:
- `beats` (A is better than B): two-sided paired bootstrap test of A - B on the rows' shared replicates.
  Verdict `holds` (A significantly better), `reversed` (B significantly better) or `not significant`.
- `equivalent` (A's scores approach B's): two one-sided tests (TOST) with the margin
  EQUIVALENCE_MARGIN on the paired difference A - B: `equivalent` when both one-sided nulls
  (A - B <= -margin, A - B >= +margin) are rejected, i.e. the 90% percentile interval of the
  difference lies inside [-margin, margin]; `not equivalent (A better)` / `(B better)` when the
  difference is significantly beyond the margin on that side (the 90% interval lies outside it);
  otherwise `inconclusive`. A difference never makes an equivalence claim hold. The mean Spearman
  correlation of the two methods' score vectors (per query, per seed; stored by the evaluate stage
  as the bundle's `score_agreement`) is shown beside it, descriptive only.
- pruning (`pruning_claims`): d-TDA pruning beats fixed-seed pruning beats random removal, a paired
  t-test over the scoring groups (tda_core.pruning: each group is an independent draw of scoring
  models and retrain seeds), for the unbalanced and the class-balanced selection.

Multiplicity: every test of the table (all claims, experiments and comparisons) is one family; the
verdicts use Holm-adjusted p-values at ALPHA, and the table shows the raw and the adjusted p.
A claim whose rows are absent from the run is left out; nothing here tunes anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import io
from .formatting import format_p
from .metrics.compare import untested_reason
from .metrics.rows import carried_keys

ALPHA = 0.05
# Equivalence margin of "IF approaches unrolling", in LDS (Spearman) units: a difference under 0.05 is
# below what the default benchmark resolves between methods (its LDS intervals are +-0.03 to 0.05 wide)
# and small beside the spread of methods on a board (0.1 to 0.9). Stated before any run; never tuned.
EQUIVALENCE_MARGIN = 0.05


@dataclass(frozen=True)
class Claim:
    text: str
    a: tuple[str, str]  # (method, variant) claimed to be better than (or equivalent to) b
    b: tuple[str, str]
    scenario: str | None = None  # only experiments of this scenario (None: all)
    metric: str = "lds"
    kind: str = "beats"  # beats | equivalent


# SOURCE (Bae et al. 2024): influence functions approximate unrolled differentiation when training has
# converged and the steps are small; tested where that assumption holds (scenario converged_small_step).
CLAIMS = [
    Claim("SOURCE beats IF on non-converged training", ("source", "per-seed"), ("if_ekfac", "per-seed"),
          scenario="non_converged"),
    Claim("SOURCE beats IF on multi-stage training", ("source", "per-seed"), ("if_ekfac", "per-seed"),
          scenario="multi_stage"),
    Claim("Ensembles beat single models (IF)", ("if_ekfac", "seed-averaged"), ("if_ekfac", "per-seed")),
    Claim("Ensembles beat single models (SOURCE)", ("source", "seed-averaged"), ("source", "per-seed")),
    Claim("IF (exact Hessian) approaches unrolling at convergence with small steps", ("if_exact", "per-seed"),
          ("unrolled", "per-seed"), scenario="converged_small_step", kind="equivalent"),
    Claim("IF (EK-FAC) approaches unrolling at convergence with small steps", ("if_ekfac", "per-seed"),
          ("unrolled", "per-seed"), scenario="converged_small_step", kind="equivalent"),
]


def _row_index(bundles: list[dict]) -> dict:
    """(experiment, metric, method, variant) -> the ok row that carries it (directly or as an alias)."""
    index = {}
    for b in bundles:
        for r in b["results"]:
            if r.get("status") != "ok" or not r.get("replicates"):
                continue
            for method, variant in carried_keys(r):
                index[(r["experiment"], r["metric"], method, variant)] = r
    return index


def difference_replicates(a: dict, b: dict) -> np.ndarray:
    """The paired bootstrap replicates of a - b (the rows' replicates share their draws), finite ones."""
    d = np.asarray(a["replicates"], dtype=float) - np.asarray(b["replicates"], dtype=float)
    return d[np.isfinite(d)]


def paired_difference(a: dict, b: dict) -> dict:
    """Difference a - b of two rows' values with its 95% CI and p: `compare.row_difference`, the same
    test the board's ranks and stars use (the difference's own crossed-design variance, scoring seeds as
    a random effect; the paired percentile bootstrap for rows without those fields)."""
    from .metrics.compare import row_difference

    return row_difference(a, b)


def equivalence_test(diff: float, replicates: np.ndarray, margin: float = EQUIVALENCE_MARGIN,
                     alpha: float = ALPHA) -> dict:
    """TOST on a paired difference from its bootstrap replicates (percentile method).

    p_equivalent = max(P*(d <= -margin), P*(d >= margin)): below alpha iff the (1 - 2 alpha) percentile
    interval lies inside [-margin, margin]. p_beyond: the one-sided p that the difference lies beyond the
    margin on the side of the estimate (P*(d <= margin) when diff > 0, P*(d >= -margin) otherwise).
    `p` = min(p_equivalent, p_beyond) is the p of the verdict the data point to (`decides`), the one a
    multiplicity correction adjusts; `direction` is the side of a non-equivalence."""
    d = np.asarray(replicates, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0 or not np.isfinite(diff):
        return {"p": float("nan"), "decides": None, "p_equivalent": float("nan"), "p_beyond": float("nan"),
                "direction": None,
                "ci_low": float("nan"), "ci_high": float("nan"), "margin": margin}
    p_low, p_high = float(np.mean(d <= -margin)), float(np.mean(d >= margin))
    p_equivalent = max(p_low, p_high)
    direction = "a" if diff > 0 else "b"
    p_beyond = float(np.mean(d <= margin)) if diff > 0 else float(np.mean(d >= -margin))
    lo, hi = np.quantile(d, [alpha, 1 - alpha])
    decides = "equivalent" if p_equivalent <= p_beyond else "beyond"
    return {"p": min(p_equivalent, p_beyond), "decides": decides, "p_equivalent": p_equivalent,
            "p_beyond": p_beyond, "direction": direction,
            "ci_low": float(lo), "ci_high": float(hi), "margin": margin}


def equivalence_test_t(diff: float, se: float, df: float, margin: float = EQUIVALENCE_MARGIN,
                       alpha: float = ALPHA) -> dict:
    """TOST on a paired difference with a standard error and t degrees of freedom (`row_difference`'s
    crossed-design variance with scoring seeds as a random effect): the same fields as
    `equivalence_test`. p_equivalent = max of the two one-sided t tests of |d| >= margin; p_beyond: the
    one-sided t test that d lies beyond the margin on the side of the estimate."""
    from scipy.stats import t as student_t

    if not (np.isfinite(diff) and np.isfinite(se) and se > 0 and df and df > 0):
        return equivalence_test(diff, np.array([]), margin, alpha)
    p_low = float(student_t.sf((diff + margin) / se, df))  # H0: d <= -margin
    p_high = float(student_t.sf((margin - diff) / se, df))  # H0: d >= margin
    p_equivalent = max(p_low, p_high)
    direction = "a" if diff > 0 else "b"
    p_beyond = float(student_t.sf((abs(diff) - margin) / se, df))  # H0: |d| <= margin on the estimate's side
    half = float(student_t.ppf(1 - alpha, df)) * se
    decides = "equivalent" if p_equivalent <= p_beyond else "beyond"
    return {"p": min(p_equivalent, p_beyond), "decides": decides, "p_equivalent": p_equivalent,
            "p_beyond": p_beyond, "direction": direction, "ci_low": diff - half, "ci_high": diff + half,
            "margin": margin}


def equivalence_verdict(test: dict, p_adjusted: float, a_name: str = "A", b_name: str = "B",
                        alpha: float = ALPHA) -> str:
    """equivalent / not equivalent (X better) / inconclusive, at the adjusted p of the test's verdict."""
    if not np.isfinite(p_adjusted) or p_adjusted >= alpha:
        return "inconclusive"
    if test["decides"] == "equivalent":
        return "equivalent"
    return f"not equivalent ({a_name if test['direction'] == 'a' else b_name} better)"


def verdict(diff: float, p: float, kind: str = "beats") -> str:
    """The verdict of a `beats` claim at (adjusted) p."""
    if kind != "beats":
        raise ValueError(f"verdict() decides beats claims; {kind} claims use equivalence_verdict")
    if not np.isfinite(p):
        return "not testable"
    if p >= ALPHA:
        return "not significant"
    return "holds" if diff > 0 else "reversed"


def holm_adjust(p_values) -> np.ndarray:
    """Holm over the finite p-values (nan stays nan)."""
    from .metrics.compare import holm

    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = holm(p[finite])
    return out


def _agreement(bundles: list[dict]) -> dict:
    """(experiment, method a, method b) -> the stored score agreement (evaluate stage)."""
    out = {}
    for b in bundles:
        for row in b.get("score_agreement") or []:
            out[(b["experiment"], row["a"], row["b"])] = row
    return out


def claims_table(df: pd.DataFrame, bundles: list[dict], pruning_paths: list) -> pd.DataFrame | None:
    index = _row_index(bundles)
    agreement = _agreement(bundles)
    scenario = {b["experiment"]: b.get("scenario", "converged") for b in bundles if b.get("experiment")}
    rows = []
    for claim in CLAIMS:
        for exp in sorted(scenario):
            if claim.scenario and scenario[exp] != claim.scenario:
                continue
            a, b = (index.get((exp, claim.metric, *x)) for x in (claim.a, claim.b))
            if a is None or b is None or a is b:
                continue
            row = {"claim": claim.text, "experiment": exp, "metric": claim.metric,
                   "A": f"{claim.a[0]} ({claim.a[1]}) {a['value']:.3f}",
                   "B": f"{claim.b[0]} ({claim.b[1]}) {b['value']:.3f}", "kind": claim.kind}
            untested = untested_reason(a) or untested_reason(b)
            if untested:  # per-seed rows with 2 scoring seeds: the board does not test them either
                row.update({"A - B [CI]": f"{float(a['value']) - float(b['value']):+.3f}", "_p": float("nan"),
                            "_diff": float("nan"), "_untestable": f"not testable ({untested.split(': ', 1)[-1]})"})
            elif claim.kind == "equivalent":
                diff = float(a["value"]) - float(b["value"])
                d = paired_difference(a, b)
                test = (equivalence_test_t(diff, d["se"], d["df"]) if d.get("se") is not None
                        else equivalence_test(diff, difference_replicates(a, b)))
                corr = agreement.get((exp, claim.a[0], claim.b[0])) or {}
                row.update({"A - B [CI]": f"{diff:+.3f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}] (90%), "
                                          f"margin +-{test['margin']:.2f}",
                            "score correlation": (f"{corr['spearman_mean']:.3f}" if corr.get("spearman_mean")
                                                  is not None else "n/a"),
                            "_p": test["p"], "_test": test, "_names": (claim.a[0], claim.b[0])})
            else:
                d = paired_difference(a, b)
                row.update({"A - B [CI]": f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (95%)",
                            "_p": d["p"], "_diff": d["diff"]})
            rows.append(row)
    rows += pruning_claims(pruning_paths)
    if not rows:
        return None
    adjusted = holm_adjust([r["_p"] for r in rows])
    for row, p_adj in zip(rows, adjusted):
        row["p"] = format_p(row["_p"])
        row["p (Holm, table)"] = format_p(p_adj)
        if row.get("_untestable"):
            row["verdict"] = row["_untestable"]
        elif row["kind"] == "equivalent":
            row["verdict"] = equivalence_verdict(row["_test"], p_adj, *row["_names"])
        else:
            row["verdict"] = verdict(row["_diff"], p_adj)
    cols = ["claim", "experiment", "metric", "A", "B", "A - B [CI]", "score correlation", "p", "p (Holm, table)",
            "verdict"]
    table = pd.DataFrame(rows)
    return table[[c for c in cols if c in table.columns]].fillna("")


def pruning_claims(summary_paths: list) -> list[dict]:
    """d-TDA pruning beats fixed-seed pruning beats random removal, per experiment with a pruning summary,
    method, p and selection: paired t-test over the scoring groups (the group means of test accuracy;
    tda_core.pruning), so the test generalises over the draw of the scoring models and retrain seeds.
    Fewer than two groups: a row marked not testable (no p, outside the multiplicity family)."""
    from scipy.stats import ttest_rel

    out = []
    for path in summary_paths:
        summary = path if isinstance(path, dict) else io.read_json(path)  # a path, or a summary already read
        rows = {(r["method"], r.get("base_variant", r["variant"]), r.get("selection", "unbalanced"), float(r["p"])): r
                for r in summary["rows"] if r.get("status") == "ok"}
        for (method, variant, selection, p), dtda in sorted(rows.items()):
            if variant != "dtda" or method in ("random removal", "full data"):
                continue
            chain = [(f"{method} (dtda, {selection})", dtda),
                     (f"{method} (fixed, {selection})", rows.get((method, "fixed", selection, p))),
                     ("random removal", rows.get(("random removal", "baseline", "unbalanced", p)))]
            for (name_a, a), (name_b, b) in zip(chain, chain[1:]):
                if a is None or b is None:
                    continue
                va, vb = (np.asarray(r.get("test_accuracy_by_group") or [], dtype=float) for r in (a, b))
                row = {"claim": "d-TDA pruning beats fixed-seed pruning beats random removal", "kind": "beats",
                       "experiment": summary["experiment"], "metric": f"test accuracy, p={p:g}%",
                       "A": f"{name_a} {a['test_accuracy_mean']:.4f}", "B": f"{name_b} {b['test_accuracy_mean']:.4f}"}
                if len(va) < 2 or len(va) != len(vb):
                    row.update({"A - B [CI]": f"{a['test_accuracy_mean'] - b['test_accuracy_mean']:+.4f}",
                                "_p": float("nan"), "_diff": float("nan"),
                                "_untestable": f"not testable ({len(va)} scoring group(s); needs >= 2)"})
                    out.append(row)
                    continue
                diff = va - vb
                if np.ptp(diff) > 0:
                    p_value = float(ttest_rel(va, vb).pvalue)
                else:  # a constant difference has no variance to test against
                    p_value = 1.0 if diff[0] == 0 else float("nan")
                half = _t_half_width(diff)
                row.update({"A - B [CI]": f"{diff.mean():+.4f} [{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}]"
                                          f" (95%, {len(diff)} groups)", "_p": p_value, "_diff": float(diff.mean())})
                out.append(row)
    return out


def _t_half_width(diff: np.ndarray) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))


# -- score agreement (written by the evaluate stage) --------------------------------------------------
def agreement_pairs(scenario: str, methods: list[str]) -> list[tuple[str, str]]:
    """The (a, b) method pairs of the equivalence claims that run on this scenario and experiment."""
    return [(c.a[0], c.b[0]) for c in CLAIMS if c.kind == "equivalent" and c.scenario in (None, scenario)
            and c.a[0] in methods and c.b[0] in methods]


def score_correlation(a: list[np.ndarray], b: list[np.ndarray]) -> dict:
    """Mean over seeds and queries of the Spearman (and Pearson) correlation between two methods'
    score vectors of one query ([Q, N] per seed; seeds paired by index)."""
    from scipy.stats import rankdata

    def rowwise_corr(x, y):
        x = x - x.mean(axis=1, keepdims=True)
        y = y - y.mean(axis=1, keepdims=True)
        den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        return np.where(den > 0, (x * y).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)

    spear, pear = [], []
    for sa, sb in zip(a, b):
        sa, sb = np.asarray(sa, dtype=float), np.asarray(sb, dtype=float)
        pear.append(rowwise_corr(sa, sb))
        spear.append(rowwise_corr(rankdata(sa, axis=1), rankdata(sb, axis=1)))
    spear, pear = np.concatenate(spear), np.concatenate(pear)
    return {"spearman_mean": float(np.nanmean(spear)), "pearson_mean": float(np.nanmean(pear)),
            "n_seeds": min(len(a), len(b)), "n_queries": int(np.shape(a[0])[0])}


def score_agreement(exp, methods: list[str], score_dir_of) -> list[dict]:
    """Per equivalence-claim pair of the experiment: the score vectors' correlation (query target).
    `score_dir_of(method)` gives a method's score folder. A pair with missing or failed scores is left out."""
    from .scores import method_scores

    out = []
    for a, b in agreement_pairs(exp.spec.scenario, methods):
        sa, sb = (method_scores(exp, m, "query", score_dir_of(m)) for m in (a, b))
        if not (sa.ok and sb.ok):
            continue
        out.append({"a": a, "b": b, **score_correlation(sa.seed_arrays(), sb.seed_arrays())})
    return out
