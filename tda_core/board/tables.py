"""The board's tables, one builder each: an experiment's rows of a metric, the signal of each ground truth, the
overview, LDS by track, classic vs distributional, pruning, top-k removal, leave-one-out and cost."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import io
from ..metrics.registry import METRICS
from ..metrics.rows import carried_keys
from ..model_fit import did_not_learn
from .cells import LOW_SIGNAL_CEILING, ceiling_cell, ceiling_state, ci_text, num, rank_cell, row_label, value_cell
from .collect import removal_k


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
        "wall time (s)": [num(x, 1) for x in part.wall_time_s],
        "note": [("; ".join(filter(None, [f"low signal: {sr}" if ls is True else "", ut if isinstance(ut, str) else "",
                                          n or r])))
                 for n, r, ls, sr, ut in zip(part.note, part.reason, part.low_signal, part.signal_reason,
                                             part.untested_reason)],
    })


def signal_table(bundles: list[dict]) -> pd.DataFrame | None:
    """Per experiment: the ground truth's reliability and ceiling, the low-signal flag, the power note, and
    whether its full-data models learned (test accuracy / loss against chance and the label prior, the
    bundle's model_fit; the verdict is recomputed here by tda_core.model_fit.did_not_learn)."""

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
            "reliability r1 [CI]": ci_text(noise, "reliability") if noise else "n/a",
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
    cells = [("failed" if st != "ok" else f"{num(t, 1)} s / {num(m, 0)} MB")
             for st, t, m in zip(part.status, part.wall_time_s, part.peak_memory_mb)]
    return part.assign(cell=cells).pivot_table(index="method", columns="experiment", values="cell",
                                               aggfunc="first").fillna("")


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
    the class coverage of the pruned sets: the smallest fraction of a class kept over the job's runs (its class).
    Keyed test_accuracy, test_loss, class_coverage (their titles: text.PRUNING_TITLES)."""
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
    for key in ("test_accuracy", "test_loss"):
        lows = df[f"{key}_ci_low"] if f"{key}_ci_low" in df else [np.nan] * len(df)
        highs = df[f"{key}_ci_high"] if f"{key}_ci_high" in df else [np.nan] * len(df)
        cells = [("failed" if st != "ok" else f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if np.isfinite([lo, hi]).all()
                  else f"{m:.4f}") for st, m, lo, hi in zip(df.status, df[f"{key}_mean"], lows, highs)]
        table = df.assign(cell=cells).pivot_table(index="row", columns="column", values="cell", aggfunc="first")
        out[key] = ordered(table).fillna("")
    if "min_class_fraction_kept" in df:
        cover = df[(df.status == "ok") & df["min_class_fraction_kept"].notna() & (df.p > 0)]
        if len(cover):
            cells = [f"{f:.2f} (class {int(c)})" for f, c in zip(cover["min_class_fraction_kept"],
                                                                  cover["least_kept_class"])]
            table = cover.assign(cell=cells).pivot_table(index="row", columns="column", values="cell",
                                                         aggfunc="first")
            out["class_coverage"] = ordered(table).fillna("")
    return out


def loo_table(bundles: list[dict]) -> pd.DataFrame | None:
    """Per experiment, method-independent: seeds used, share of (point, query) shifts beyond 2 SE, and the
    rule of thumb: the median number of seeds at which a shift of the observed size would be 2 SE from 0."""
    rows = {}
    for b in bundles:
        for r in b["results"]:
            if r.get("metric") == "loo_shift" and r.get("status") == "ok" and r.get("experiment") not in rows:
                rows[r["experiment"]] = {"points": str(len(r["points"])), "seeds": str(r["n_seeds"]),
                                         "resolved at 2 SE": num(r["resolved_fraction"]),
                                         "seeds needed (median)": num(r["seeds_needed_median"], 1),
                                         "split-half reliability (r)": num(r.get("split_half_reliability"))}
    return pd.DataFrame.from_dict(rows, orient="index") if rows else None


def removal_table(bundles: list[dict]) -> pd.DataFrame | None:
    """Rows experiment / method (variant), columns: the drop at each k, brittleness, the share flipped by each k."""
    rows: dict[tuple, dict] = {}
    for b in bundles:
        for r in b["results"]:
            k = removal_k(r.get("metric", ""))
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
                    cells[f"flipped by k={kk}"] = num(frac, 2)
    if not rows:
        return None
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["experiment", "method"])
    drops = sorted((c for c in table.columns if c.startswith("drop k=")), key=lambda c: float(c[7:]))
    flips = sorted((c for c in table.columns if c.startswith("flipped by k=")), key=lambda c: float(c[13:]))
    rest = [c for c in ("brittleness (median k)", "status") if c in table.columns]
    return table[drops + rest[:1] + flips + rest[1:]].sort_index().fillna("")

