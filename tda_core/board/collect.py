"""The board's rows: evaluation bundles read (checked), one row per result, in the board's order."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics.registry import METRICS, metric_entry
from .cells import ceiling_state

COLUMNS = ["experiment", "metric", "method", "variant", "models", "aliases", "status", "value", "ci_low", "ci_high",
           "rank", "rank_ci_low", "rank_ci_high", "tied_with_best", "p_vs_best_adjusted", "reliability", "ceiling",
           "split_half_reliability", "wall_time_s", "peak_memory_mb", "note", "reason", "low_signal", "signal_reason",
           "untested_reason"]


def load_bundles(metric_paths: list, pruning_paths: list | None = None, merge: bool = False) -> list[dict]:
    """Evaluation bundles, checked (tda_core.bundle): JSON only, the schema, safe names, one ground truth per
    experiment, no row twice. A bare result file (one method, one metric) counts as a bundle of one row.
    With `merge` (bundles made on different machines), rows of one experiment and metric that come from
    several bundles are ranked again together."""
    from ..bundle import check_merge, load_bundle, load_pruning_summary, rerank_merged

    pairs = [(str(p), load_bundle(p)) for p in metric_paths]
    check_merge(pairs, [(str(p), load_pruning_summary(p)) for p in pruning_paths or []])
    if merge:
        rerank_merged(pairs)
    return [b for _, b in pairs]


def collect(metric_paths: list, bundles: list[dict] | None = None) -> pd.DataFrame:
    bundles = load_bundles(metric_paths) if bundles is None else bundles
    rows = [{c: r.get(c) for c in COLUMNS} for b in bundles for r in b["results"]]
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in ("value", "ci_low", "ci_high", "ceiling", "reliability", "split_half_reliability", "wall_time_s",
              "peak_memory_mb", "p_vs_best_adjusted"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    # a ceiling the ground truth cannot resolve is no number (stats reports it as 0.0): an empty CSV cell
    resolved = [ceiling_state(r)[0] is not None for b in bundles for r in b["results"]]
    df["ceiling"] = df.ceiling.where(resolved)
    for c in ("variant", "aliases", "note", "reason"):
        df[c] = df[c].fillna("")
    df["track"] = [metric_track(m) for m in df.metric]
    df["order"] = [_row_order(st, v, rk) for st, v, rk in zip(df.status, df.value, df["rank"])]
    df["metric_order"] = [metric_order(m) for m in df.metric]
    df = df.sort_values(["metric_order", "experiment", "order"], kind="stable")
    return df.drop(columns=["order", "metric_order"]).reset_index(drop=True)


def metric_order(metric: str) -> float:
    """The board's metric order: the metric registry's row order (tda_core.metrics.registry; rows with
    ordered=False after all others), read at call time, so a new metric is one row there."""
    order = [name for name, row in METRICS.items() if row.ordered]
    k = removal_k(metric)
    if k is not None:  # topk_drop_k{k}: by k, between topk_drop and the next metric
        return order.index("topk_drop") + k / (1.0 + k)
    return order.index(metric) if metric in order else len(order)


def removal_k(metric: str) -> float | None:
    """k of a top-k removal metric (topk_drop_k{k}), else None."""
    try:
        return float(metric[len("topk_drop_k"):]) if metric.startswith("topk_drop_k") else None
    except ValueError:
        return None


def _row_order(status, value, rank) -> float:
    """Ranked rows by rank, then n/a rows, then failed rows."""
    if status != "ok":
        return 1e9
    if value is None or not np.isfinite(value):
        return 1e8
    return float(rank) if rank is not None and np.isfinite(rank) else 1e7 - float(value)


def metric_track(metric: str) -> str:
    """groundtruth track a metric's target comes from: distributional (lds, dlds_*), fixed_seed, or ''."""
    row = metric_entry(metric)
    return row.track if row is not None else ""

