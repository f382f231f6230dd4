"""Board rows of one experiment: each (method, metric, variant) as one row, labelled, de-duplicated, ranked.

A metric result (value, CI, bootstrap `replicates`, optional `variants`) becomes one row per variant,
labelled with what a reader needs to compare rows fairly:

    variant  per-seed       each full-data seed's model scores itself (LDS: mean over seeds of the
                            single-model LDS; dLDS: the R seeds' predictions form the distribution)
             seed-averaged  the scores averaged over the R seeds' models (an ensemble by averaging)
             ensemble       one estimator built from all R models at once (TRAK, if_ensemble, ...)
             fixed-seed     seed 0's scores stand in for every seed (the classical single-model practice)
             single         the only model (R = 1)
    models   how many trained models the scores used (1 or R)

Rows whose metric reads identical score arrays (e.g. dtda_if's seed average and if_ensemble on LDS,
dtda_if and if_ekfac on every dLDS metric) are one row listing the others as `aliases`. The remaining
rows of a metric are compared pairwise (tda_core.metrics.compare): rank, simultaneous 95% rank
interval, and `tied_with_best` (no row significantly better, Holm over all pairs), unless the metric's
target has low signal (tda_core.metrics.signal): then every row keeps its value and CI, `low_signal`
is true with the `signal_reason`, and `rank` is the order of the values only: no rank interval, no
test, no star.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..scores import Scores
from .compare import compare_methods
from .registry import AVERAGED, PER_MODEL, PER_SEED, SEED_MEAN, SEEDS, lower_is_better, metric_entry
from .signal import metric_signal
from .stats import DIFFERENCE_FIELDS

MAIN = ""  # the key of a result's own value (variants are keyed by name)
ROW_KEYS = ("variant", "models", "aliases", "rank", "rank_ci_low", "rank_ci_high", "tied_with_best",
            "p_vs_best", "p_vs_best_adjusted", "untested_reason")


def row_inputs(metric: str, scores: Scores, n_models: int) -> dict:
    """{variant key: (variant label, models, canonical score arrays)} for the result and its variants.

    The canonical arrays are what the metric reads for that row: two rows with equal arrays carry
    the same number by construction and are folded into one.
    """
    structure = scores.structure
    seeds = list(scores.array)  # [Q, N] per seed, in the files' dtype
    mean = [np.mean(np.asarray(seeds, dtype=np.float64), axis=0)]
    if structure == "one":
        main = ("ensemble", n_models) if scores.usage == "pooled" else ("single", 1)
        return {MAIN: (*main, [scores.array[0]])}
    entry = metric_entry(metric)
    how = entry.seed_rows if entry is not None else AVERAGED
    # lds_fixed_seed: seed r's scores against its own fixed-seed target
    if how in (PER_SEED, PER_MODEL) and structure == "per_seed":
        main = ("per-seed", 1, seeds)
    elif how == PER_MODEL:  # a samples file: each seed's model against its re-initialised twin
        main = ("per-seed", n_models, seeds)
    elif how == SEED_MEAN:  # the predicted mean shift is the shift of the seed-averaged scores
        main = ("per-seed", n_models, mean)
    elif how == SEEDS:
        main = ("per-seed", n_models, seeds)
    else:  # lds of a samples file, mislabel AUC, LOO shifts: the seeds' scores averaged
        main = ("seed-averaged", n_models, mean)
    return {MAIN: main, "fixed-seed": ("fixed-seed", 1, seeds[:1]), "seed-averaged": ("seed-averaged", n_models, mean)}


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            return False
        scale = max(float(np.abs(x).max(initial=0.0)), 1e-30)
        if not np.allclose(x, y, rtol=1e-4, atol=1e-5 * scale):
            return False
    return True


def result_rows(result: dict, inputs: dict | None) -> list[tuple[dict, list | None]]:
    """One row per variant of a metric result, with its canonical arrays (None for failed results)."""
    base = {k: v for k, v in result.items() if k != "variants"}
    if result.get("status") != "ok" or inputs is None:
        return [({**base, "variant": "", "models": None}, None)]
    rows = []
    label, models, arrays = inputs[MAIN]
    rows.append(({**base, "variant": label, "models": models}, arrays))
    for name, v in (result.get("variants") or {}).items():
        label, models, arrays = inputs.get(name, (name, None, None))
        rows.append(({**base, **v, "variant": label, "models": models}, arrays))
    return rows


def fold_aliases(rows: list[tuple[dict, list | None]]) -> list[dict]:
    """Rows of one metric; a row whose arrays equal an earlier row's is folded into it as an alias."""
    kept: list[tuple[dict, list | None]] = []
    for row, arrays in rows:
        twin = None
        if arrays is not None and row.get("status") == "ok":
            twin = next((k for k in kept if k[1] is not None and _same(k[1], arrays)), None)
        if twin is None:
            kept.append(({**row, "aliases": []}, arrays))
        else:
            twin[0]["aliases"].append(f"{row['method']} ({row['variant']})")
    return [r for r, _ in kept]


def row_key(row: dict) -> str:
    return f"{row['method']} ({row['variant']})" if row.get("variant") else row["method"]


def carried_keys(row) -> list[tuple[str, str]]:
    """(method, variant) of a row and of every alias folded into it (the 'method (variant)' strings of
    `fold_aliases`, joined by ', ' on the board); `row` is a dict or a pandas row."""
    keys = [(row["method"], row.get("variant") or "")]
    for alias in filter(None, (row.get("aliases") or "").split(", ")):
        name, _, variant = alias.partition(" (")
        keys.append((name, variant.rstrip(")")))
    return keys


def signed_fields(row: dict, sign: float) -> dict:
    """The crossed-design fields of a row (stats.DIFFERENCE_FIELDS, per_seed_query) times `sign`, and its
    n_subsets (compare.row_difference)."""
    keys = (*DIFFERENCE_FIELDS, "per_seed_query")
    if not all(row.get(k) is not None and len(row[k]) for k in keys):
        return {}
    return {**{k: sign * np.asarray(row[k], dtype=float) for k in keys}, "n_subsets": row.get("n_subsets")}


def rank_rows(rows: list[dict]) -> list[dict]:
    """Paired-bootstrap ranks of the ok rows with a finite value and replicates (in place); returns
    the pairwise comparisons. A lower-is-better metric (registry.lower_is_better: randomization) is
    ranked by -value and -replicates (its pairwise diffs are then of -value)."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("value") is not None
          and np.isfinite(r["value"]) and r.get("replicates")]
    for r in rows:
        r.update({k: None for k in ROW_KEYS[3:]})
    if not ok:
        return []
    if "low_signal" in ok[0]:  # gated earlier (board_rows: lds_kendall with the lds target's figures)
        signal, reason = not ok[0]["low_signal"], ok[0]["signal_reason"]
    else:
        signal, reason = metric_signal(ok[0])
    for r in ok:
        r.update(low_signal=not signal, signal_reason=reason)
    sign = -1.0 if lower_is_better(ok[0].get("metric", "")) else 1.0
    if not signal:  # the order of the values only: no interval, no test, no star
        for r, rank in zip(ok, rankdata([-sign * float(r["value"]) for r in ok], method="min")):
            r["rank"] = int(rank)
        return []
    comparison = compare_methods({row_key(r): sign * float(r["value"]) for r in ok},
                                 {row_key(r): sign * np.asarray(r["replicates"], dtype=float) for r in ok},
                                 rows={row_key(r): signed_fields(r, sign) for r in ok})
    for r in ok:
        r.update({k: v for k, v in comparison["methods"][row_key(r)].items() if k in ROW_KEYS})
    return comparison["pairwise"]


def board_rows(per_metric: dict[str, list[tuple[dict, list | None]]]) -> tuple[list[dict], dict]:
    """All rows of one experiment (aliases folded, ranked within each metric) and the pairwise tests."""
    rows, pairwise = [], {}
    for metric, metric_rows in per_metric.items():
        folded = fold_aliases(metric_rows)
        entry = metric_entry(metric)
        source = entry.signal_from if entry is not None else None  # lds_kendall: lds's target, lds's gate
        owner = next((r for r, _ in per_metric.get(source, []) if r.get("status") == "ok"), None) if source else None
        if owner is not None:
            ok, reason = metric_signal({**owner, "metric": source})
            for r in folded:
                r.update(low_signal=not ok, signal_reason=reason)
        pairwise[metric] = rank_rows(folded)
        for r in folded:
            r["aliases"] = ", ".join(r.get("aliases") or [])
        rows += folded
    return rows, pairwise
