"""The leaderboard: evaluation bundles -> CSV, Markdown, a bar plot and a self-contained HTML page.

Inputs: the evaluate stage's bundles (results/{exp}/metrics.json: labelled, de-duplicated and ranked
rows, see tda_core.metrics.rows, plus the experiment's noise figures and power), the leave-one-out
bundles (same format, metric loo_shift) and the pruning summaries. Failed jobs appear as `failed`
rows, never as missing ones. Bundles are read as untrusted input (tda_core.bundle: JSON only, the
schema, safe names, one ground truth per experiment); every string reaches the HTML page escaped. Markdown and HTML are rendered from one list of sections, so they say
the same thing.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .claims import claims_table
from .formatting import format_p
from .metrics.compare import RANK_NOTE, SEED_NOTE
from .model_fit import DID_NOT_LEARN_MARGIN
from .metrics.registry import METRICS, metric_entry
from .metrics.rows import carried_keys
from .meta_eval import MIN_RESAMPLED_ROWS, agreement_tables, heatmap
from .meta_eval import display_table as meta_display_table
from .meta_eval import summary_line as meta_summary_line
from .tuning_board import TEXT as TUNING_TEXT, TITLE as TUNING_TITLE, tuning_table

# the functions other modules call (the rest are the board's own parts)
__all__ = [
    "write_all", "load_bundles", "collect", "signal_table", "overview_table", "bar_plot", "format_p_columns",
    "agreement_plot_path",
]

COLUMNS = ["experiment", "metric", "method", "variant", "models", "aliases", "status", "value", "ci_low", "ci_high",
           "rank", "rank_ci_low", "rank_ci_high", "tied_with_best", "p_vs_best_adjusted", "reliability", "ceiling",
           "split_half_reliability", "wall_time_s", "peak_memory_mb", "note", "reason", "low_signal", "signal_reason",
           "untested_reason"]
LOW_SIGNAL_CEILING = 0.5

LEGEND = [
    "**Value [95% CI]**: the metric, with a bootstrap interval that resamples queries and training subsets "
    "jointly (and the scoring seeds of per-seed rows): the uncertainty of everything that was sampled.",
    "**reliability** (r1): how well one seed's retrained models agree with another seed's: mean over seed "
    "pairs and queries of the Spearman across subsets (clipped at 0).",
    "**ceiling**: about the LDS a perfect predictor of the true (infinite-seed) mean reaches against this "
    "target, sqrt(R' r1 / (1 + (R'-1) r1)) with R' seeds per subset (Spearman-Brown, then attenuation); "
    "*not resolved* (no number, no line in the plot) when the 95% CI of r1 includes 0: the ground truth cannot "
    "say how high an LDS it allows, which is not a ceiling of 0. Experiments with a ceiling under 0.5 are "
    "flagged *low signal*.",
    "**low signal** (any metric): its target's own reliability is too low to order methods (lds, dlds_mean, "
    "lds_kendall: ceiling under 0.5 or r1 not distinguishable from 0; dlds_variance, dlds_w2, LOO: split-half "
    "reliability under 0.25 or not computable). Its rows show values and CIs only: no rank interval, no ★.",
    "**split-half reliability** (variance, W2, LOO): the same metric between two halves of the seeds; "
    "Spearman-Brown does not apply to those.",
    "**rank [interval]** and **tied** (★): " + RANK_NOTE + " (5% level).",
    "**paired tests** between rows: the difference's own variance for the crossed queries x subsets design, "
    "and " + SEED_NOTE + ".",
    "**not tested** (rank 'by value'): a per-seed row with 2 scoring seeds takes part in no paired test (its "
    "seed effect would have 1 degree of freedom); it keeps its value and CI, and the tested rows' upper rank "
    "bounds count it. Seed-averaged, ensemble and fixed-seed rows are tested conditional on the scoring models.",
    "**variant**: per-seed = each seed's own model scores itself; seed-averaged = the R seeds' scores "
    "averaged; ensemble = one estimator built from all R models; fixed-seed = seed 0's scores stand in for "
    "every seed. **models**: trained models the scores used (1 or R).",
    "**aliases**: other methods whose scores are identical for this metric (one row for all of them).",
    "**test accuracy (chance)**, **test loss (label prior)**: the full-data models on the test split, mean over "
    "seeds, beside a model that learned nothing (always the most frequent training class; the training label "
    "frequencies as prediction, or the training mean for regression; a language model: next-token accuracy and "
    "the loss per token, beside the training tokens' unigram frequencies, and the perplexities, exp of the losses). "
    f"**model**: *did not learn* when the accuracy is below chance + {DID_NOT_LEARN_MARGIN} (regression and "
    "language models: the loss is not below the prior's); the attributions of such an experiment explain a model "
    "that did not learn.",
    "**p**: a p-value; '< 0.001' when below 0.001 (a bootstrap p of 0 only says 'below 1/B', never 'exactly 0').",
    "Overview: **overview rank** and **mean rank percentile** (1 = best in every shared experiment, 0 = worst) over "
    "the *shared experiments*, the ones every ranked row ran on; **ran on**: k of n = the row has a ranked value in "
    "k of the n experiments; **not ranked because**: why a row (values shown) is left out of the ranking.",
    "**note**: e.g. a method that cannot follow the training stages of a multi-stage run and uses all N examples.",
    "Attribution wall time is the attribute job's, per seed file, the same in every table of an experiment; a "
    "curvature fit that the method shares with others (one fit_curvature job) is counted in full, as if the "
    "method ran alone.",
]


# -- collect -----------------------------------------------------------------------------------------
def load_bundles(metric_paths: list, pruning_paths: list | None = None, merge: bool = False) -> list[dict]:
    """Evaluation bundles, checked (tda_core.bundle): JSON only, the schema, safe names, one ground truth per
    experiment, no row twice. A bare result file (one method, one metric) counts as a bundle of one row.
    With `merge` (bundles made on different machines), rows of one experiment and metric that come from
    several bundles are ranked again together."""
    from .bundle import check_merge, load_bundle, load_pruning_summary, rerank_merged

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
    df["metric_order"] = [_metric_order(m) for m in df.metric]
    df = df.sort_values(["metric_order", "experiment", "order"], kind="stable")
    return df.drop(columns=["order", "metric_order"]).reset_index(drop=True)


def _metric_order(metric: str) -> float:
    """The board's metric order: the metric registry's row order (tda_core.metrics.registry; rows with
    ordered=False after all others), read at call time, so a new metric is one row there."""
    order = [name for name, row in METRICS.items() if row.ordered]
    k = _removal_k(metric)
    if k is not None:  # topk_drop_k{k}: by k, between topk_drop and the next metric
        return order.index("topk_drop") + k / (1.0 + k)
    return order.index(metric) if metric in order else len(order)


def _removal_k(metric: str) -> float | None:
    """k of a top-k removal metric (topk_drop_k{k}), else None."""
    try:
        return float(metric[len("topk_drop_k"):]) if metric.startswith("topk_drop_k") else None
    except ValueError:
        return None


def metric_note(metric: str) -> str:
    """What a metric's cell means (its registry row's note), shown above its tables."""
    k = _removal_k(metric)
    if k is not None:
        return METRICS["topk_drop"].note.replace("the k ", f"the k = {k:g} ")
    return METRICS[metric].note if metric in METRICS else ""


def _row_order(status, value, rank) -> float:
    """Ranked rows by rank, then n/a rows, then failed rows."""
    if status != "ok":
        return 1e9
    if value is None or not np.isfinite(value):
        return 1e8
    return float(rank) if rank is not None and np.isfinite(rank) else 1e7 - float(value)


# -- cells -------------------------------------------------------------------------------------------
def _num(x, digits: int = 3) -> str:
    return "" if x is None or not np.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _finite(x) -> bool:
    try:
        return x is not None and bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


def ceiling_state(noise) -> tuple[float | None, str | None]:
    """(ceiling, None) when the ground truth resolves its noise ceiling; (None, why) when it does not;
    (None, None) for a metric without one (no ceiling and no reliability: Kendall, fixed-seed, W2, ...).

    Not resolved: the ceiling is missing / not finite / 0, or the 95% CI of the single-seed reliability
    includes 0 (stats reports that as ceiling 0.0 with a "no reliable signal" note): a line at 0 or
    "ceiling 0.000" would read as a measured ceiling of 0. `noise`: a noise dict or a board row."""
    get = noise.get
    ceiling, r1_low, note = get("ceiling"), get("reliability_ci_low"), get("target_note")
    note = note if isinstance(note, str) else ""
    if not _finite(ceiling) and not _finite(get("reliability")):
        return None, None
    if _finite(ceiling) and float(ceiling) > 0 and not (_finite(r1_low) and float(r1_low) <= 0):
        return float(ceiling), None
    if not note or note.startswith("no reliable signal"):
        note = "the 95% CI of the reliability r1 includes 0"
    return None, note


def ceiling_cell(noise: dict, with_ci: bool = True) -> str:
    """The ceiling as board text: '0.899 [0.770, 0.964]', or 'not resolved (why; at most x)'."""
    ceiling, why = ceiling_state(noise)
    if ceiling is not None:
        return _ci_text(noise, "ceiling") if with_ci else f"{ceiling:.3f}"
    if why is None:
        return "n/a"
    high = noise.get("ceiling_ci_high")
    return f"not resolved ({why}" + (f"; at most {float(high):.2f})" if _finite(high) and float(high) > 0 else ")")


def is_p_column(name) -> bool:
    """A table column that holds p-values ('p', 'p (Holm)', 'p_vs_best', 'p-value', ...)."""
    name = " ".join(map(str, name)) if isinstance(name, tuple) else str(name)
    name = name.strip().lower()
    return name == "p" or name.startswith(("p ", "p (", "p_", "p-value", "p value", "adjusted p"))


def format_p_columns(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """Every p-value cell of a displayed table through formatting.format_p ('< 0.001', never '0'): numbers and
    number-like text ('0', '1.2e-05'); cells already formatted ('< 0.001', 'n/a', '') are left as they are."""
    if table is None:
        return None
    columns = [c for c in table.columns if is_p_column(c)]
    if not columns:
        return table
    table = table.copy()
    for c in columns:
        table[c] = [_p_text(x) for x in table[c]]
    return table


def _p_text(x):
    if isinstance(x, str):
        try:
            return format_p(float(x)) if x.strip() else x
        except ValueError:
            return x
    return format_p(x) if isinstance(x, (int, float, np.number)) and not isinstance(x, bool) else x


def value_cell(row) -> str:
    if row["status"] != "ok":
        return "failed"
    if row["value"] is None or not np.isfinite(row["value"]):
        return "n/a"
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def rank_cell(row) -> str:
    if row["rank"] is None or not np.isfinite(float(row["rank"])):
        return ""
    if row.get("untested_reason"):  # tda_core.metrics.compare.untested_reason: in no paired test
        return f"{int(row['rank'])} (by value; not tested)"
    if row.get("low_signal") is True or row["rank_ci_low"] is None or not np.isfinite(float(row["rank_ci_low"])):
        return f"{int(row['rank'])} (by value; low signal)"  # tda_core.metrics.signal: no interval
    return f"{int(row['rank'])} [{int(row['rank_ci_low'])}-{int(row['rank_ci_high'])}]"


def row_label(method: str, variant: str) -> str:
    return f"{method} ({variant})" if variant else method


# -- tables ------------------------------------------------------------------------------------------
def experiment_table(part: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One experiment's rows of one metric, best first (n/a and failed rows last)."""
    value_name = METRICS[metric].label if metric in METRICS else metric
    return pd.DataFrame({
        "rank [95% interval]": [rank_cell(r) for _, r in part.iterrows()],
        "method": part.method.to_list(),
        "variant": part.variant.to_list(),
        "models": [("" if m is None or (isinstance(m, float) and not np.isfinite(m)) else str(int(m)))
                   for m in part.models],
        f"{value_name} [95% CI]": [value_cell(r) for _, r in part.iterrows()],
        "tied": ["★" if t is True else "" for t in part.tied_with_best],
        "aliases": part.aliases.to_list(),
        "wall time (s)": [_num(x, 1) for x in part.wall_time_s],
        "note": [("; ".join(filter(None, [f"low signal: {sr}" if ls is True else "", ut if isinstance(ut, str) else "",
                                          n or r])))
                 for n, r, ls, sr, ut in zip(part.note, part.reason, part.low_signal, part.signal_reason,
                                             part.untested_reason)],
    })


def signal_table(bundles: list[dict]) -> pd.DataFrame | None:
    """Per experiment: the ground truth's reliability and ceiling, the low-signal flag, the power note, and
    whether its full-data models learned (test accuracy / loss against chance and the label prior, the
    bundle's model_fit; the verdict is recomputed here by tda_core.model_fit.did_not_learn)."""
    from .model_fit import did_not_learn  # noqa: PLC0415 (beside its constant, imported above)

    def number(fit, key, fmt="{:.3f}"):
        v = fit.get(key)
        return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else "n/a"

    rows = {}
    for b in bundles:
        noise = (b.get("noise") or {}).get("lds")
        fit = b.get("model_fit") if isinstance(b.get("model_fit"), dict) else {}
        if not noise and not fit:
            continue
        power = b.get("power") or {}
        ceiling = ceiling_state(noise)[0] if noise else None
        row = {
            "scenario": b.get("scenario", ""),
            "subsets x seeds": f"{b.get('n_subsets', '?')} x {b.get('seeds_per_subset', '?')}",
            "reliability r1 [CI]": _ci_text(noise, "reliability") if noise else "n/a",
            "LDS ceiling [CI]": ceiling_cell(noise) if noise else "n/a",
            "signal": ("low signal" if ceiling is None or ceiling < LOW_SIGNAL_CEILING else "ok") if noise else "n/a",
            "for CI half-width 0.03 and ceiling 0.7": power.get("note", ""),
        }
        if fit:
            reason = did_not_learn(fit)
            row.update({
                "test accuracy (chance)": f"{number(fit, 'test_accuracy')} ({number(fit, 'chance_accuracy')})",
                "test loss (label prior)": f"{number(fit, 'test_loss', '{:.3g}')} ({number(fit, 'prior_loss', '{:.3g}')})"
                + (f"; perplexity {number(fit, 'test_perplexity', '{:.3g}')} ({number(fit, 'prior_perplexity', '{:.3g}')})"
                   if "test_perplexity" in fit else ""),
                "model": f"did not learn: {reason}" if reason else "learned",
            })
        rows[b["experiment"]] = row
    return pd.DataFrame.from_dict(rows, orient="index").fillna("n/a") if rows else None


def _ci_text(d: dict, key: str) -> str:
    v = d.get(key)
    if v is None:
        return "n/a"
    lo, hi = d.get(f"{key}_ci_low"), d.get(f"{key}_ci_high")
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


OVERVIEW_TEXT = (
    "Cells: LDS #rank in that experiment's table (★ tied with the best). Rows are ranked only over the shared "
    "experiments, which every ranked row ran on (the set that uses the most values, experiments x rows): mean over "
    "them of the row's rank percentile among the ranked rows (1 = best, 0 = worst), so no row gains from the "
    "experiments it skipped. ran on: experiments where the row has a ranked value. Rows missing a shared experiment "
    "are listed with their values, unranked, with the reason.")


def _ranked_cells(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One record per (row label, experiment) of the metric's ok rows, aliases carried as their row's label."""
    part = df[(df.metric == metric) & (df.status == "ok")]
    records = []
    for _, r in part.iterrows():
        rank = pd.to_numeric(r["rank"], errors="coerce")
        for method, variant in carried_keys(r):
            records.append({"row": row_label(method, variant), "experiment": r.experiment, "value": r.value,
                            "rank": rank, "tied": r.tied_with_best is True})
    cells = pd.DataFrame(records, columns=["row", "experiment", "value", "rank", "tied"])
    return cells.drop_duplicates(["row", "experiment"])


def shared_experiments(coverage: dict[str, frozenset]) -> frozenset:
    """The experiment set the overview ranks over: among the intersections of the rows' coverage sets (the
    sets some group of rows all ran on), the one that uses the most values, |set| x (rows that ran on all
    of it), at least two rows; ties: the larger set, then by name. Empty when no two rows share an experiment."""
    candidates = {c for c in coverage.values() if c}
    while True:  # close under intersection (few experiments: a handful of sets)
        more = {a & b for a in candidates for b in candidates if a & b} - candidates
        if not more:
            break
        candidates |= more
    best, best_key = frozenset(), None
    for s in candidates:
        n_rows = sum(1 for c in coverage.values() if s <= c)
        if n_rows < 2:
            continue
        key = (len(s) * n_rows, len(s), tuple(sorted(s)))
        if best_key is None or key > best_key:
            best, best_key = s, key
    return best


def overview_table(df: pd.DataFrame, metric: str = "lds") -> pd.DataFrame | None:
    """Rows (method, variant), columns experiments, cells 'value #rank★'; ranked by the mean rank percentile
    over the shared experiments (`shared_experiments`), which every ranked row ran on. Columns: overview rank,
    mean rank percentile, ran on (k of n), one per experiment, not ranked because. `attrs`: shared, experiments."""
    from scipy.stats import rankdata

    cells = _ranked_cells(df, metric)
    if cells.empty:
        return None
    ranked = cells[np.isfinite(cells["rank"].to_numpy(dtype=float))]
    experiments = sorted(set(ranked.experiment))
    coverage = {row: frozenset(ranked.experiment[ranked.row == row]) for row in dict.fromkeys(cells.row)}
    shared = shared_experiments(coverage)
    compared = [row for row, c in coverage.items() if shared and shared <= c]
    pct = pd.DataFrame(index=compared, columns=sorted(shared), dtype=float)
    for exp in sorted(shared):  # percentile among the compared rows only, each shared experiment weighted alike
        here = ranked[(ranked.experiment == exp) & ranked.row.isin(compared)].set_index("row")["rank"]
        r = rankdata(here.loc[compared].to_numpy(dtype=float), method="average")
        pct[exp] = 1 - (r - 1) / (len(compared) - 1) if len(compared) > 1 else 1.0
    score = pct.mean(axis=1).sort_values(ascending=False, kind="stable")
    rank_of = pd.Series(rankdata(-score.to_numpy(), method="min").astype(int), index=score.index)
    rest = sorted((row for row in coverage if row not in rank_of.index),
                  key=lambda row: (-len(coverage[row]), row))
    text = [("n/a" if not np.isfinite(v) else f"{v:.3f} #{int(r)}" + ("★" if t else "")) if np.isfinite(r) else "n/a"
            for v, r, t in zip(cells.value, cells["rank"], cells.tied)]
    grid = cells.assign(cell=text).pivot_table(index="row", columns="experiment", values="cell", aggfunc="first")
    table = grid.reindex(index=list(score.index) + rest).fillna("")

    def why(row) -> str:
        if row in rank_of.index:
            return ""
        if not shared:
            return "no experiment is shared by two ranked rows"
        missing = sorted(shared - coverage[row])
        return f"no ranked value on {', '.join(missing)}"

    table.insert(0, "ran on", [f"{len(coverage[row])} of {len(experiments)}" for row in table.index])
    table.insert(0, "mean rank percentile", [f"{score[row]:.2f}" if row in score.index else "" for row in table.index])
    table.insert(0, "overview rank", [str(rank_of[row]) if row in rank_of.index else "" for row in table.index])
    reasons = [why(row) for row in table.index]
    if any(reasons):
        table["not ranked because"] = reasons
    table.index.name = "row"
    table.columns.name = None
    table.attrs.update(shared=sorted(shared), experiments=experiments)
    return table


def cost_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Attribution wall time (s, per seed file) and peak memory (MB): rows methods, columns experiments."""
    removal = df.metric.str.startswith("topk_drop_k") | (df.metric == "brittleness")  # retraining, not attribution
    part = df[(df.metric != "loo_shift") & ~removal].drop_duplicates(["experiment", "method"])
    if part.empty:
        return None
    cells = [("failed" if st != "ok" else f"{_num(t, 1)} s / {_num(m, 0)} MB")
             for st, t, m in zip(part.status, part.wall_time_s, part.peak_memory_mb)]
    return part.assign(cell=cells).pivot_table(index="method", columns="experiment", values="cell",
                                               aggfunc="first").fillna("")


def metric_track(metric: str) -> str:
    """groundtruth track a metric's target comes from: distributional (lds, dlds_*), fixed_seed, or ''."""
    row = metric_entry(metric)
    return row.track if row is not None else ""


def track_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """LDS by track: rows (method, variant), per experiment the distributional and the fixed-seed LDS."""
    part = df[df.metric.isin(("lds", "lds_fixed_seed"))]
    if "lds_fixed_seed" not in set(part.metric):
        return None
    cells = ["failed" if r.status != "ok" else ("n/a" if not np.isfinite(r.value) else f"{r.value:.3f}")
             for r in part.itertuples()]
    part = part.assign(cell=cells, row=[row_label(m, v) for m, v in zip(part.method, part.variant)],
                       column=[f"{e} / {t}" for e, t in zip(part.experiment, part.track)])
    return part.pivot_table(index="row", columns="column", values="cell", aggfunc="first").fillna("")


def distributional_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Classic LDS (per-seed and seed-averaged) beside the three d-TDA LDS values, per experiment.

    dLDS-mean of a per-seed method equals the LDS of its seed-averaged scores: the two columns side by
    side show how much of a 'distributional' gain is ensembling."""
    part = df[df.metric.isin(("lds", "dlds_mean", "dlds_variance", "dlds_w2")) & (df.variant != "fixed-seed")]
    if part.metric.nunique() < 2:
        return None
    rows: dict[tuple, dict] = {}
    for _, r in part.iterrows():
        names = [method for method, _ in carried_keys(r)]
        column = {"lds": "LDS (per-seed)" if r.variant == "per-seed" else "LDS (seed-averaged / ensemble)",
                  "dlds_mean": "dLDS mean", "dlds_variance": "dLDS variance", "dlds_w2": "dLDS W2"}[r.metric]
        cell = "failed" if r.status != "ok" else ("n/a" if not np.isfinite(r.value) else f"{r.value:.3f}")
        for name in dict.fromkeys(names):
            rows.setdefault((r.experiment, name), {}).setdefault(column, cell)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["experiment", "method"])
    cols = [c for c in ("LDS (per-seed)", "LDS (seed-averaged / ensemble)", "dLDS mean", "dLDS variance", "dLDS W2")
            if c in table.columns]
    return table[cols].sort_index().fillna("")


def pruning_tables(summary_paths: list) -> dict[str, pd.DataFrame]:
    """Test accuracy and test loss, "mean [ci_low, ci_high]" (95% t-interval over the retrain seeds; the mean
    alone where it has none, e.g. one seed): rows method (variant, selection), columns experiment / p; and
    the class coverage of the pruned sets: the smallest fraction of a class kept over the job's runs (its class)."""
    rows = [r for p in summary_paths for r in io.read_json(p)["rows"]]
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    selection = df["selection"] if "selection" in df else pd.Series([None] * len(df), index=df.index)
    base = df["base_variant"] if "base_variant" in df else df["variant"]
    # "method (variant, selection)"; an older summary without a selection: "method (variant)"
    df["row"] = [m if v == "baseline" else f"{m} ({b}, {sel})" if isinstance(sel, str) else f"{m} ({v})"
                 for m, v, b, sel in zip(df.method, df.variant, base, selection)]
    df["column"] = [f"{e} p={p:g}%" for e, p in zip(df.experiment, df.p)]

    def ordered(table):
        return table[sorted(table.columns, key=lambda c: (c.split(" p=")[0], float(c.split(" p=")[1][:-1])))]

    out = {}
    for key, title in (("test_accuracy", "pruning: test accuracy"), ("test_loss", "pruning: test loss")):
        lows = df[f"{key}_ci_low"] if f"{key}_ci_low" in df else [np.nan] * len(df)
        highs = df[f"{key}_ci_high"] if f"{key}_ci_high" in df else [np.nan] * len(df)
        cells = [("failed" if st != "ok" else f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if np.isfinite([lo, hi]).all()
                  else f"{m:.4f}") for st, m, lo, hi in zip(df.status, df[f"{key}_mean"], lows, highs)]
        table = df.assign(cell=cells).pivot_table(index="row", columns="column", values="cell", aggfunc="first")
        out[title] = ordered(table).fillna("")
    if "min_class_fraction_kept" in df:
        cover = df[(df.status == "ok") & df["min_class_fraction_kept"].notna() & (df.p > 0)]
        if len(cover):
            cells = [f"{f:.2f} (class {int(c)})" for f, c in zip(cover["min_class_fraction_kept"],
                                                                  cover["least_kept_class"])]
            table = cover.assign(cell=cells).pivot_table(index="row", columns="column", values="cell",
                                                         aggfunc="first")
            out["pruning: class coverage (smallest fraction of a class kept)"] = ordered(table).fillna("")
    return out


def loo_table(bundles: list[dict]) -> pd.DataFrame | None:
    """Per experiment, method-independent: seeds used, share of (point, query) shifts beyond 2 SE, and the
    rule of thumb: the median number of seeds at which a shift of the observed size would be 2 SE from 0."""
    rows = {}
    for b in bundles:
        for r in b["results"]:
            if r.get("metric") == "loo_shift" and r.get("status") == "ok" and r.get("experiment") not in rows:
                rows[r["experiment"]] = {"points": str(len(r["points"])), "seeds": str(r["n_seeds"]),
                                         "resolved at 2 SE": _num(r["resolved_fraction"]),
                                         "seeds needed (median)": _num(r["seeds_needed_median"], 1),
                                         "split-half reliability (r)": _num(r.get("split_half_reliability"))}
    return pd.DataFrame.from_dict(rows, orient="index") if rows else None


REMOVAL_TEXT = (
    "Per sampled query, the k training examples with the largest scores of the method (averaged over its scoring "
    "seeds) are removed and the model retrained on fresh seeds (disjoint from the scoring and pruning seeds; the "
    "full-data step count unless removal.steps says otherwise). drop k=...: f(z_q) of the full-data models retrained "
    "on the same seeds minus f(z_q) without those k, mean over queries and seeds [95% bootstrap CI resampling both]; "
    "higher = the method's top examples matter more; ★ = tied with the best at that k (paired bootstrap, Holm). "
    "random-removal: k random examples per query (the baseline; a useful method beats it). brittleness: median over "
    "the queries the retrained full-data models classify correctly of the smallest k whose removal flips the "
    "prediction (margin averaged over seeds < 0) [95% CI]; '>k' when most queries never flip within the grid; lower = "
    "fewer removals suffice = better. flipped by k: share of those queries flipped. Curve: removal.png per experiment.")


def removal_table(bundles: list[dict]) -> pd.DataFrame | None:
    """Rows experiment / method (variant), columns: the drop at each k, brittleness, the share flipped by each k."""
    rows: dict[tuple, dict] = {}
    for b in bundles:
        for r in b["results"]:
            k = _removal_k(r.get("metric", ""))
            if k is None and r.get("metric") != "brittleness":
                continue
            cells = rows.setdefault((r["experiment"], row_label(r["method"], r.get("variant") or "")), {})
            if r.get("status") != "ok":
                cells["status"] = "failed"
                continue
            star = "★" if r.get("tied_with_best") is True else ""
            if k is not None:
                cells[f"drop k={k:g}"] = f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]{star}"
            elif r.get("value") is None:
                cells["brittleness (median k)"] = "n/a"
            else:
                ks = r.get("ks") or []
                k_cell = (lambda v: f">{ks[-1]}" if ks and v > ks[-1] else f"{v:g}")  # k_max + 1: censored
                cells["brittleness (median k)"] = (f"{k_cell(r['value'])} [{k_cell(r['ci_low'])}, "
                                                   f"{k_cell(r['ci_high'])}]{star} of {r.get('n_eligible')}")
                for kk, frac in zip(ks, r.get("flipped_fraction") or []):
                    cells[f"flipped by k={kk}"] = _num(frac, 2)
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["experiment", "method"])
    drops = sorted((c for c in table.columns if c.startswith("drop k=")), key=lambda c: float(c[7:]))
    flips = sorted((c for c in table.columns if c.startswith("flipped by k=")), key=lambda c: float(c[13:]))
    rest = [c for c in ("brittleness (median k)", "status") if c in table.columns]
    return table[drops + rest[:1] + flips + rest[1:]].sort_index().fillna("")


# -- plot --------------------------------------------------------------------------------------------
def bar_plot(df: pd.DataFrame, path) -> None:
    """One panel per (metric, experiment): horizontal bars (labels never overlap), best at the top,
    95% CIs, tied-with-best rows dark, the ceiling as a dashed line where the ground truth resolves it
    (collect: a finite ceiling); 'ceiling not resolved' in the title, and no line, where it does not."""
    from .plots import panel_grid, save_figure

    panels = [(m, e) for (_, m, e), _ in df.assign(mo=[_metric_order(m) for m in df.metric])
              .groupby(["mo", "metric", "experiment"], sort=True)] or [("", "")]
    tallest = max((len(df[(df.metric == m) & (df.experiment == e)]) for m, e in panels), default=1)
    fig, axes = panel_grid(len(panels), 4.6, 0.8 + 0.19 * tallest, max_cols=3)
    for ax, (metric, exp) in zip(axes, panels):
        part = df[(df.metric == metric) & (df.experiment == exp)]
        ok = ((part.status == "ok") & np.isfinite(part.value.to_numpy(dtype=float))).to_numpy()
        vals = np.where(ok, part.value.to_numpy(dtype=float), 0.0)
        err = np.vstack([vals - part.ci_low.to_numpy(dtype=float), part.ci_high.to_numpy(dtype=float) - vals])
        err = np.where(ok, np.nan_to_num(err).clip(min=0), 0.0)
        colors = ["tab:blue" if o and t is True else "lightsteelblue" if o else "lightgrey"
                  for o, t in zip(ok, part.tied_with_best)]
        y = np.arange(len(part))[::-1]
        ax.barh(y, vals, xerr=err, color=colors, capsize=2, height=0.7)
        labels = [row_label(m, v) + ("" if o else " (failed)" if st != "ok" else " (n/a)")
                  for m, v, o, st in zip(part.method, part.variant, ok, part.status)]
        ax.set_yticks(y, labels, fontsize=6)
        ceiling = part.ceiling[(part.status == "ok") & (part.ceiling > 0)]  # collect: unresolved -> nan
        unresolved = ceiling.empty and (part.status == "ok").any() and part.reliability.notna().any()
        if len(ceiling):
            ax.axvline(float(ceiling.iloc[0]), ls="--", color="k", lw=1, label="ceiling")
            ax.legend(fontsize=6, loc="lower right")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(f"{exp}: {metric} (dark = tied with best"
                     + ("; ceiling not resolved)" if unresolved else ")"), fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
    save_figure(fig, path)


# -- page --------------------------------------------------------------------------------------------
def sections(df: pd.DataFrame, bundles: list[dict], pruning_paths: list,
             tuning_paths: list | None = None) -> list[tuple[int, str, str, object]]:
    """(level, title, text, table or None) in page order: legend, signal, claims, overview, per metric and
    experiment, classic vs distributional, pruning, LOO, cost."""
    out = [(2, "How to read this board", "", None)]
    signal = signal_table(bundles)
    if signal is not None:
        out.append((2, "Signal of each experiment's ground truth",
                    "Reliability and ceiling of the LDS target; 'low signal': ceiling under "
                    f"{LOW_SIGNAL_CEILING} (method differences there are hard to resolve). Power: subsets x seeds "
                    "per subset this ground truth would need, extrapolated from its own noise.", signal))
    claims = claims_table(df, bundles, pruning_paths)
    if claims is not None:
        out.append((2, "Claims of the papers, checked on this run",
                    "Each row: a paired test on this run's numbers. 'A beats B' claims: holds / reversed / not "
                    "significant; equivalence claims (TOST, margin in the CI column): equivalent / not equivalent "
                    "(which side is better) / inconclusive; pruning claims: a t-test over scoring groups. Verdicts at "
                    "5% after Holm over every test of this table (raw and adjusted p shown). Nothing was tuned to "
                    "make a claim hold.", claims))
    agreement = agreement_tables(bundles)
    if agreement:
        out.append((2, "Do the metrics agree?",
                    "Spearman rho between the method orderings of two metrics over the rows both rank "
                    "(aliases count as their row), with a 95% bootstrap interval; agree: interval above 0.5, partly: "
                    "above 0, no agreement shown: the interval covers 0, disagree: below 0; too few rows: fewer than "
                    f"{MIN_RESAMPLED_ROWS} common rows where rows must be resampled (no interval). Heatmap: "
                    "leaderboard_metric_agreement.png.", None))
        for exp, table in sorted(agreement.items()):
            out.append((3, f"metric agreement on {exp}", meta_summary_line(table), meta_display_table(table)))
    overview = overview_table(df)
    if overview is not None:
        shared, experiments = overview.attrs["shared"], overview.attrs["experiments"]
        scope = (f" Ranked over {len(shared)} of {len(experiments)} experiments: {', '.join(shared)}."
                 if shared else " No experiment is shared by two ranked rows: nothing is ranked.")
        out.append((2, "Overview: LDS by experiment", OVERVIEW_TEXT + scope, overview))
    ceilings = {b["experiment"]: b.get("noise", {}) for b in bundles}
    for metric in sorted(set(df.metric), key=_metric_order):
        out.append((2, metric, metric_note(metric), None))
        for exp, part in df[df.metric == metric].groupby("experiment", sort=True):
            noise = ceilings.get(exp, {}).get(metric, {}) or _noise_from_rows(part)
            out.append((3, f"{metric} on {exp}", " ".join(filter(None, [_noise_line(noise), _signal_line(part)])),
                        experiment_table(part, metric)))
    tracks = track_table(df)
    if tracks is not None:
        out.append((2, "LDS by track", "distributional: subset models on fresh seeds (lds); fixed_seed: each scoring "
                                       "seed's model retrained with the removed examples zero-weighted, same init "
                                       "and batches (lds_fixed_seed).", tracks))
    dist = distributional_table(df)
    if dist is not None:
        out.append((2, "Classic vs distributional LDS", "", dist))
    for title, table in pruning_tables(pruning_paths).items():
        out.append((2, title, "Per pruned set, the smallest fraction of one class (training label) left in the "
                              "training set over the job's runs; near 0: the selection emptied that class."
                    if "class coverage" in title else
                    "Mean [95% t-interval] over the retrain seeds (fresh seeds, disjoint from the scoring seeds; "
                    "scoring models and retrain seeds in disjoint groups, tda_core/pruning.py).", table))
    tuning = tuning_table(tuning_paths or [])
    if tuning is not None:
        out.append((2, TUNING_TITLE, TUNING_TEXT, tuning))
    removal = removal_table(bundles)
    if removal is not None:
        out.append((2, "Top-k removal and brittleness", REMOVAL_TEXT, removal))
    loo = loo_table(bundles)
    if loo is not None:
        out.append((2, "Leave-one-out: how many seeds resolve a LOO mean shift", "", loo))
    cost = cost_table(df)
    if cost is not None:
        out.append((2, "Cost of attribution", "Wall time per seed file and peak memory of the attribute job.", cost))
    # one rule for every p printed (Markdown, HTML, W&B tables): '< 0.001', never '0'
    return [(level, title, text, format_p_columns(table)) for level, title, text, table in out]


def _noise_from_rows(part: pd.DataFrame) -> dict:
    ok = part[part.status == "ok"]
    if ok.empty:
        return {}
    first = ok.iloc[0]
    return {k: first[k] for k in ("reliability", "ceiling", "split_half_reliability") if pd.notna(first[k])}


def _signal_line(part: pd.DataFrame) -> str:
    """The per-metric low-signal marker (tda_core.metrics.signal), from the rows' gate."""
    low = part[part.low_signal == True]  # noqa: E712 (object column: True, False or None)
    if low.empty:
        return ""
    return (f"**Low signal** ({low.signal_reason.iloc[0]}): values only, no rank intervals or ties "
            "(ranks order the values).")


def _noise_line(noise: dict) -> str:
    parts = []
    if noise.get("reliability") is not None:
        parts.append(f"reliability r1 {noise['reliability']:.3f}")
    ceiling, why = ceiling_state(noise)
    if ceiling is not None:
        flag = " (low signal)" if ceiling < LOW_SIGNAL_CEILING else ""
        parts.append(f"ceiling {ceiling:.3f}{flag}")
    elif why is not None:
        parts.append(f"ceiling {ceiling_cell(noise)} (low signal)")
    if noise.get("split_half_reliability") is not None:
        parts.append(f"split-half reliability {noise['split_half_reliability']:.3f}")
    if noise.get("target_note") and why is None:  # an unresolved ceiling's note is in its cell
        parts.append(noise["target_note"])
    return "Ground truth: " + ", ".join(parts) + "." if parts else ""


def write_all(metric_paths: list, out_csv, out_md, out_png, out_html, extra_images: list | None = None,
              pruning_paths: list | None = None, merge: bool = False, tuning_paths: list | None = None,
              sections_out: list | None = None) -> pd.DataFrame:
    """The board's files; `sections_out` (a list) receives the page's sections, so a caller that logs
    them (the report stage's W&B run) neither loads the bundles nor builds the sections again."""
    bundles = load_bundles(metric_paths, pruning_paths, merge=merge)
    df = collect(metric_paths, bundles)
    io.write_bytes(out_csv, csv_safe(df).to_csv(index=False).encode())
    page = sections(df, bundles, pruning_paths or [], tuning_paths)
    if sections_out is not None:
        sections_out.extend(page)
    io.write_bytes(out_md, _markdown(page).encode())
    bar_plot(df, out_png)
    agreement_png = agreement_plot_path(out_png)
    heatmap(agreement_tables(bundles), agreement_png)
    io.write_bytes(out_html, _html_page(page, [out_png, agreement_png, *(extra_images or [])]).encode())
    return df


def agreement_plot_path(out_png) -> Path:
    """The metric-agreement heatmap beside the bar plot (leaderboard_metric_agreement.png)."""
    return Path(out_png).with_name(Path(out_png).stem + "_metric_agreement.png")


def _flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    if isinstance(table.columns, pd.MultiIndex):
        table.columns = [" / ".join(map(str, c)) for c in table.columns]
    if isinstance(table.index, pd.MultiIndex):
        table.index = [" / ".join(map(str, c)) for c in table.index]
    return table


# -- escaping: text from bundles made elsewhere is data, never markup or a formula --------------------
# A spreadsheet evaluates a CSV cell that starts with one of these (OWASP, "CSV injection").
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A text cell that a spreadsheet would evaluate gets a leading single quote; numbers stay numbers.
    A carriage return becomes a line feed: the CSV writer quotes a cell with a line feed, but not one with
    a lone CR, which a reader takes for the end of the row (and the rest for a new, unescaped cell)."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + value if value.startswith(CSV_FORMULA_PREFIXES + ("\n",)) else value


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """The board for leaderboard.csv: every text cell through `csv_cell`, numeric columns untouched."""
    out = df.copy()
    for column in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column])):
            out[column] = pd.Series([csv_cell(v) for v in out[column]], index=out.index, dtype=object)
    return out


# What Markdown would read as markup in a line of text (GFM, CommonMark): a row or code delimiter, a
# backslash escape, an HTML tag / comment / autolink start, an entity, a link or image (`](`, `][`,
# `]:`, `![`) and a script-like link scheme.
_MD_ESCAPES = [
    (re.compile(r"([\\|`])"), r"\\\1"),
    (re.compile(r"&(?=#?\w+;)"), "&amp;"),
    (re.compile(r"<(?=[A-Za-z/!?])"), "&lt;"),
    (re.compile(r"\](?=[(\[:])"), r"\\]"),
    (re.compile(r"!\["), r"!\\["),
    (re.compile(r"(?i)\b(javascript|vbscript|data|file)(\s*):"), r"\1\2&#58;"),
]


def md_cell(value) -> str:
    """Text as literal Markdown in a table cell or a line: line breaks and tabs become spaces, and what
    would be markup is escaped (`_MD_ESCAPES`), so text from a bundle can neither end a table row nor
    become HTML, a link or an image. Text without markup (the board's own numbers, '0.42 [0.30, 0.50]',
    '< 0.001', '>5') is left as it is."""
    text = "" if value is None else str(value)
    text = " ".join(text.replace("\r", "\n").replace("\t", " ").split("\n"))
    for pattern, replacement in _MD_ESCAPES:
        text = pattern.sub(replacement, text)
    return text


def _md_table(t: pd.DataFrame) -> str:
    show_index = not isinstance(t.index, pd.RangeIndex)
    cells = pd.DataFrame([[md_cell(v) for v in row] for row in t.itertuples(index=False, name=None)],
                         index=[md_cell(i) for i in t.index] if show_index else t.index,
                         columns=[md_cell(c) for c in t.columns])
    return cells.to_markdown(index=show_index, disable_numparse=True)


def _markdown(page) -> str:
    md = ["# tda-bench leaderboard", ""]
    for level, title, text, table in page:
        md += ["#" * level + " " + md_cell(title), ""]
        if title == "How to read this board":
            md += [f"- {line}" for line in LEGEND] + [""]
        if text:
            md += [md_cell(text), ""]
        if table is not None:
            md += [_md_table(_flat_columns(table)), ""]
    return "\n".join(md)


def _html_page(page, images) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tda-bench leaderboard</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:110em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
             "li{margin:.2em 0}</style></head><body><h1>tda-bench leaderboard</h1>"]
    for level, title, text, table in page:
        parts.append(f"<h{level}>{html.escape(title)}</h{level}>")
        if title == "How to read this board":
            parts.append("<ul>" + "".join(f"<li>{_md_bold(line)}</li>" for line in LEGEND) + "</ul>")
        if text:
            parts.append(f"<p>{html.escape(text)}</p>")
        if table is not None:
            t = _flat_columns(table)
            parts.append(t.to_html(escape=True, index=not isinstance(t.index, pd.RangeIndex)))
    for img in images:
        if Path(img).exists():
            data = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(Path(img).name)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_bold(line: str) -> str:
    """The legend's **bold** as <b> (everything else escaped)."""
    pieces = html.escape(line).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))
