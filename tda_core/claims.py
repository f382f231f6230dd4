"""The papers' qualitative claims, checked with paired tests on the current run (a leaderboard section).

Each claim compares two rows of one experiment and metric (or two pruning sets on the same retrain
seeds). Verdict at the 5% level of the paired test: `holds` (the claimed direction is significant),
`reversed` (the opposite direction is significant) or `not significant`; for a claim that two rows
*match* ("IF approaches unrolling"), `holds` means the claimed-worse row is not significantly worse.
A claim whose rows are absent from the run is left out; nothing here tunes anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import io
from .metrics.rows import carried_keys

ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    text: str
    a: tuple[str, str]  # (method, variant) claimed to be better (or to match b)
    b: tuple[str, str]
    scenario: str | None = None  # only experiments of this scenario (None: all)
    metric: str = "lds"
    kind: str = "beats"  # beats | matches


CLAIMS = [
    Claim("SOURCE beats IF on non-converged training", ("source", "per-seed"), ("if_ekfac", "per-seed"),
          scenario="non_converged"),
    Claim("SOURCE beats IF on multi-stage training", ("source", "per-seed"), ("if_ekfac", "per-seed"),
          scenario="multi_stage"),
    Claim("Ensembles beat single models (IF)", ("if_ekfac", "seed-averaged"), ("if_ekfac", "per-seed")),
    Claim("Ensembles beat single models (SOURCE)", ("source", "seed-averaged"), ("source", "per-seed")),
    Claim("IF approaches unrolling at convergence", ("if_ekfac", "per-seed"), ("unrolled", "per-seed"),
          scenario="converged", kind="matches"),
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


def paired_difference(a: dict, b: dict) -> dict:
    """Difference a - b of two rows' values with the paired bootstrap (their replicates share the draws)."""
    from .metrics.compare import compare_methods

    cmp = compare_methods({"a": float(a["value"]), "b": float(b["value"])},
                          {"a": np.asarray(a["replicates"], dtype=float), "b": np.asarray(b["replicates"], dtype=float)})
    pair = cmp["pairwise"][0]
    sign = 1.0 if pair["a"] == "a" else -1.0
    lo, hi = sorted((sign * pair["ci_low"], sign * pair["ci_high"]))
    return {"diff": sign * pair["diff"], "ci_low": lo, "ci_high": hi, "p": pair["p"]}


def verdict(diff: float, p: float, kind: str) -> str:
    significant = p < ALPHA
    if kind == "matches":
        return "reversed" if significant and diff < 0 else "holds"
    if not significant:
        return "not significant"
    return "holds" if diff > 0 else "reversed"


def claims_table(df: pd.DataFrame, bundles: list[dict], pruning_paths: list) -> pd.DataFrame | None:
    index = _row_index(bundles)
    scenario = {b["experiment"]: b.get("scenario", "converged") for b in bundles if b.get("experiment")}
    rows = []
    for claim in CLAIMS:
        for exp in sorted(scenario):
            if claim.scenario and scenario[exp] != claim.scenario:
                continue
            a, b = (index.get((exp, claim.metric, *x)) for x in (claim.a, claim.b))
            if a is None or b is None or a is b:
                continue
            d = paired_difference(a, b)
            rows.append({"claim": claim.text, "experiment": exp, "metric": claim.metric,
                         "A": f"{claim.a[0]} ({claim.a[1]}) {a['value']:.3f}",
                         "B": f"{claim.b[0]} ({claim.b[1]}) {b['value']:.3f}",
                         "A - B [95% CI]": f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
                         "p": f"{d['p']:.3g}", "verdict": verdict(d["diff"], d["p"], claim.kind)})
    rows += pruning_claims(pruning_paths)
    return pd.DataFrame(rows) if rows else None


def pruning_claims(summary_paths: list) -> list[dict]:
    """d-TDA pruning beats fixed-seed pruning beats random removal, on experiments with flipped labels:
    paired over the retrain seeds (every set is retrained on the same fresh seeds), test accuracy."""
    from scipy.stats import ttest_rel

    out = []
    for path in summary_paths:
        summary = io.read_json(path)
        if not summary.get("label_noise"):
            continue
        rows = {(r["method"], r["variant"], float(r["p"])): r for r in summary["rows"] if r.get("status") == "ok"}
        for (method, variant, p), dtda in sorted(rows.items()):
            if variant != "dtda":
                continue
            chain = [(f"{method} (dtda)", dtda), (f"{method} (fixed)", rows.get((method, "fixed", p))),
                     ("random removal", rows.get(("random removal", "baseline", p)))]
            for (name_a, a), (name_b, b) in zip(chain, chain[1:]):
                va, vb = (np.asarray((r or {}).get("test_accuracy_values") or [], dtype=float) for r in (a, b))
                if len(va) < 2 or len(va) != len(vb):
                    continue
                diff = va - vb
                p_value = float(ttest_rel(va, vb).pvalue) if np.ptp(diff) > 0 else (1.0 if diff[0] == 0 else 0.0)
                half = _t_half_width(diff)
                out.append({"claim": "d-TDA pruning beats fixed-seed pruning beats random removal",
                            "experiment": summary["experiment"], "metric": f"test accuracy, p={p:g}%",
                            "A": f"{name_a} {va.mean():.4f}", "B": f"{name_b} {vb.mean():.4f}",
                            "A - B [95% CI]": f"{diff.mean():+.4f} [{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}]",
                            "p": f"{p_value:.3g}", "verdict": verdict(float(diff.mean()), p_value, "beats")})
    return out


def _t_half_width(diff: np.ndarray) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
