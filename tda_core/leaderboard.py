"""The leaderboard: metric files -> CSV, Markdown, a bar plot and a self-contained HTML page.

Inputs: the evaluate stage's bundles (results/{exp}/metrics.json: one result per method x metric; a
metric may add `variants`, e.g. the fixed-seed row of a per-seed method), the leave-one-out bundles
(same format, metric loo_shift), and the pruning summaries (test accuracy / loss per method, variant and p).
Failed jobs appear as `failed` rows, never as missing ones.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from . import io

COLUMNS = ["experiment", "method", "metric", "status", "value", "ci_low", "ci_high", "ceiling",
           "wall_time_s", "peak_memory_mb", "reason"]


# What each metric's cell means (shown above its table).
METRIC_NOTES = {
    "lds": "Spearman over subsets of the additive prediction vs the seed-mean retrained measurement.",
    "dlds_mean": "d-TDA LDS of the mean influence E[X]-E[Y] (per-seed predicted samples; ranks like LDS).",
    "dlds_variance": "d-TDA LDS of the variance-increase influence Var(Y)-Var(X); n/a when one score "
                     "array is used for every seed (it predicts no variance change).",
    "dlds_w2": "d-TDA LDS of the Wasserstein-2 distance between full-data and retrained distributions.",
    "mislabel_auc": "ROC AUC of self-influence against the flipped labels (0.5 = chance); CI over examples.",
    "loo_shift": "Pearson r of predicted vs actual leave-one-out mean shifts over (point, query) pairs; "
                 "ceiling = the same r between two halves of the seeds (near 0: LOO is noise at this seed count).",
}
DISTRIBUTIONAL = ("lds", "dlds_mean", "dlds_variance", "dlds_w2")


def collect(metric_paths: list) -> pd.DataFrame:
    rows = []
    for p in metric_paths:
        blob = io.read_json(p)
        for r in blob.get("results", [blob]):  # a bundle holds one result per (method, metric)
            rows.append({c: r.get(c) for c in COLUMNS})
            for name, v in (r.get("variants") or {}).items():  # e.g. the fixed-seed row of a per-seed method
                rows.append({**rows[-1], "method": f"{r.get('method')} ({name})", **{k: v.get(k) for k in
                                                                                    ("value", "ci_low", "ci_high")}})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.sort_values(["metric", "experiment", "value"], ascending=[True, True, False], na_position="last")


def _cell(row) -> str:
    if row["status"] != "ok":
        return "failed"
    if row["value"] is None or not np.isfinite(row["value"]):
        return "n/a"
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def method_order(part: pd.DataFrame) -> pd.Index:
    """Methods, best first: mean over experiments of the method's rank percentile within the
    experiment (raw means would favour methods run only on easy experiments, where every LDS is high)."""
    pct = part.groupby("experiment")["value"].rank(pct=True, ascending=True, na_option="bottom")
    return part.assign(pct=pct).groupby("method")["pct"].mean().sort_values(ascending=False, kind="stable").index


def pivot_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per metric: rows methods, columns experiments ("value [CI]"), plus cost columns."""
    out = {}
    for metric, part in df.groupby("metric", sort=True):
        part = part.assign(cell=part.apply(_cell, axis=1))
        table = part.pivot(index="method", columns="experiment", values="cell")
        cost = part.groupby("method").agg(mean_wall_time_s=("wall_time_s", "mean"),
                                          max_peak_memory_mb=("peak_memory_mb", "max"))
        table = table.join(cost.round(2))
        out[metric] = table.loc[method_order(part)].fillna("")  # blank: the method is not run on that experiment
    return out


def distributional_table(df: pd.DataFrame) -> pd.DataFrame | None:
    """Classic LDS beside the three d-TDA LDS values (means only): rows methods, columns (experiment, metric)."""
    part = df[df.metric.isin(DISTRIBUTIONAL)]
    if part.metric.nunique() < 2:
        return None
    part = part.assign(cell=[("failed" if st != "ok" else "n/a" if not np.isfinite(v) else f"{v:.3f}")
                             for st, v in zip(part.status, part.value.astype(float))])
    table = part.pivot_table(index="method", columns=["experiment", "metric"], values="cell", aggfunc="first")
    metrics = [m for m in DISTRIBUTIONAL if m in set(part.metric)]
    cols = [(e, m) for e in sorted(set(part.experiment)) for m in metrics if (e, m) in table.columns]
    order = method_order(part[part.metric == "lds"])
    rows = [m for m in order if m in table.index] + [m for m in table.index if m not in order]
    return table[cols].reindex(rows).fillna("")


def pruning_tables(summary_paths: list) -> dict[str, pd.DataFrame]:
    """Test accuracy and test loss, "mean [ci_low, ci_high]" (95% t-interval over the retrain seeds; the mean
    alone where it has none, e.g. one seed): rows method (variant), columns experiment / p."""
    rows = [r for p in summary_paths for r in io.read_json(p)["rows"]]
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    df["row"] = [m if v == "baseline" else f"{m} ({v})" for m, v in zip(df.method, df.variant)]
    df["column"] = [f"{e} p={p:g}%" for e, p in zip(df.experiment, df.p)]
    out = {}
    for key, title in (("test_accuracy", "pruning: test accuracy"), ("test_loss", "pruning: test loss")):
        lows = df[f"{key}_ci_low"] if f"{key}_ci_low" in df else [np.nan] * len(df)
        highs = df[f"{key}_ci_high"] if f"{key}_ci_high" in df else [np.nan] * len(df)
        cells = [("failed" if st != "ok" else f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if np.isfinite([lo, hi]).all()
                  else f"{m:.4f}") for st, m, lo, hi in zip(df.status, df[f"{key}_mean"], lows, highs)]
        table = df.assign(cell=cells).pivot_table(index="row", columns="column", values="cell", aggfunc="first")
        table = table[sorted(table.columns, key=lambda c: (c.split(" p=")[0], float(c.split(" p=")[1][:-1])))]
        out[title] = table.fillna("")
    return out


def loo_table(metric_paths: list) -> pd.DataFrame | None:
    """Per experiment, method-independent: seeds used, share of (point, query) shifts beyond 2 SE, and the
    rule of thumb: the median number of seeds at which a shift of the observed size would be 2 SE from 0."""
    rows = {}
    for p in metric_paths:
        r = io.read_json(p)
        if r.get("metric") == "loo_shift" and r.get("status") == "ok" and r.get("experiment") not in rows:
            rows[r["experiment"]] = {"points": len(r["points"]), "seeds": r["n_seeds"],
                                     "resolved at 2 SE": round(r["resolved_fraction"], 3),
                                     "seeds needed (median)": round(r["seeds_needed_median"], 1),
                                     "seed-split ceiling (r)": round(r["ceiling"], 3)}
    return pd.DataFrame.from_dict(rows, orient="index") if rows else None


def ceilings(df: pd.DataFrame) -> pd.Series:
    return df.dropna(subset=["ceiling"]).groupby(["metric", "experiment"])["ceiling"].first()


def bar_plot(df: pd.DataFrame, path) -> None:
    from .plots import panel_grid, save_figure

    panels = [(m, e) for (m, e), _ in df.groupby(["metric", "experiment"])] or [("", "")]
    fig, axes = panel_grid(len(panels), 4.5, 3.8)
    for ax, (metric, exp) in zip(axes, panels):
        part = df[(df.metric == metric) & (df.experiment == exp)].sort_values("value", ascending=False)
        failed = (part.status != "ok").to_numpy()
        ok = ~failed & np.isfinite(part.value.to_numpy(dtype=float))
        vals = np.where(ok, part.value.to_numpy(dtype=float), 0.0)
        err = np.vstack([(vals - part.ci_low.to_numpy(dtype=float)), (part.ci_high.to_numpy(dtype=float) - vals)])
        err = np.where(ok, np.nan_to_num(err).clip(min=0), 0.0)
        colors = ["tab:blue" if o else "lightgrey" for o in ok]
        ax.bar(range(len(part)), vals, yerr=err, color=colors, capsize=3)
        names = [m + (" (failed)" if f else "" if o else " (n/a)") for m, f, o in zip(part.method, failed, ok)]
        ax.set_xticks(range(len(part)), names, rotation=45, ha="right", fontsize=8)
        ceiling = part.ceiling.dropna()
        if len(ceiling):
            ax.axhline(float(ceiling.iloc[0]), ls="--", color="k", lw=1, label="noise ceiling")
            ax.legend(fontsize=7, loc="upper right")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{exp}: {metric}", fontsize=9)
        ax.set_ylabel(metric + " (mean, 95% CI)", fontsize=8)
    save_figure(fig, path)


def write_all(metric_paths: list, out_csv, out_md, out_png, out_html, extra_images: list | None = None,
              pruning_paths: list | None = None) -> pd.DataFrame:
    df = collect(metric_paths)
    io.write_bytes(out_csv, df.to_csv(index=False).encode())
    tables = pivot_tables(df)
    extra = {}
    dist = distributional_table(df)
    if dist is not None:
        extra["classic vs distributional LDS"] = dist
    extra.update(pruning_tables(pruning_paths or []))
    loo = loo_table(metric_paths)
    if loo is not None:
        extra["leave-one-out: how many seeds resolve a LOO mean shift"] = loo
    ceil = ceilings(df)
    md = ["# tda-bench leaderboard", "",
          "Cells: mean over queries [95% bootstrap CI]. Higher is better; rows by mean rank within experiments. `failed` rows ran but did not finish "
          "(see `reason` in leaderboard.csv).", ""]
    for metric, table in tables.items():
        md += [f"## {metric}", ""] + ([METRIC_NOTES[metric], ""] if metric in METRIC_NOTES else [])
        md += [table.to_markdown(), ""]
        notes = [f"{e}: {v:.3f}" for (m, e), v in ceil.items() if m == metric]
        if notes:
            md += ["Noise ceiling (seed-split): " + ", ".join(notes), ""]
    for title, table in extra.items():
        md += [f"## {title}", "", _flat_columns(table).to_markdown(), ""]
    io.write_bytes(out_md, "\n".join(md).encode())
    bar_plot(df, out_png)
    io.write_bytes(out_html, _html_page(tables, ceil, [out_png, *(extra_images or [])], extra).encode())
    return df


def _flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    if isinstance(table.columns, pd.MultiIndex):
        table = table.copy()
        table.columns = [" / ".join(map(str, c)) for c in table.columns]
    return table


def _html_page(tables, ceil, images, extra=None) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tda-bench leaderboard</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}</style>",
             "</head><body><h1>tda-bench leaderboard</h1>"]
    for metric, table in tables.items():
        parts.append(f"<h2>{html.escape(metric)}</h2>")
        if metric in METRIC_NOTES:
            parts.append(f"<p>{html.escape(METRIC_NOTES[metric])}</p>")
        parts.append(table.to_html(escape=True))
        notes = [f"{html.escape(e)}: {v:.3f}" for (m, e), v in ceil.items() if m == metric]
        if notes:
            parts.append("<p>Noise ceiling: " + ", ".join(notes) + "</p>")
    for title, table in (extra or {}).items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(table.to_html(escape=True))
    for img in images:
        if Path(img).exists():
            data = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(Path(img).name)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)
