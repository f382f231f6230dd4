"""The leaderboard: metric files -> CSV, Markdown, a bar plot and a self-contained HTML page."""
from __future__ import annotations

import base64
import html
import io as _io
from pathlib import Path

import numpy as np
import pandas as pd

from . import io

COLUMNS = ["experiment", "method", "metric", "status", "value", "ci_low", "ci_high", "ceiling",
           "wall_time_s", "peak_memory_mb", "reason"]


def collect(metric_paths: list) -> pd.DataFrame:
    rows = []
    for p in metric_paths:
        r = io.read_json(p)
        rows.append({c: r.get(c) for c in COLUMNS})
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["metric", "experiment", "value"], ascending=[True, True, False], na_position="last")


def _cell(row) -> str:
    if row["status"] != "ok":
        return "failed"
    if not np.isfinite(row["value"]):
        return "n/a"
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def pivot_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per metric: rows methods, columns experiments ("value [CI]"), plus cost columns."""
    out = {}
    for metric, part in df.groupby("metric", sort=True):
        part = part.assign(cell=part.apply(_cell, axis=1))
        table = part.pivot(index="method", columns="experiment", values="cell")
        cost = part.groupby("method").agg(mean_wall_time_s=("wall_time_s", "mean"),
                                          max_peak_memory_mb=("peak_memory_mb", "max"))
        table = table.join(cost.round(2))
        order = part.groupby("method")["value"].mean().sort_values(ascending=False).index
        out[metric] = table.loc[order]
    return out


def ceilings(df: pd.DataFrame) -> pd.Series:
    return df.dropna(subset=["ceiling"]).groupby(["metric", "experiment"])["ceiling"].first()


def bar_plot(df: pd.DataFrame, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, e) for (m, e), _ in df.groupby(["metric", "experiment"])]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.8), squeeze=False)
    for ax, (metric, exp) in zip(axes[0], panels):
        part = df[(df.metric == metric) & (df.experiment == exp)].sort_values("value", ascending=False)
        ok = part.status == "ok"
        vals = part.value.where(ok, 0.0).fillna(0.0).to_numpy(dtype=float)
        err = np.vstack([(vals - part.ci_low.fillna(0.0)).clip(lower=0), (part.ci_high.fillna(0.0) - vals).clip(lower=0)])
        colors = ["tab:blue" if o else "lightgrey" for o in ok]
        ax.bar(range(len(part)), vals, yerr=np.where(ok.to_numpy(), err, 0.0), color=colors, capsize=3)
        ax.set_xticks(range(len(part)), [m + ("" if o else " (failed)") for m, o in zip(part.method, ok)],
                      rotation=45, ha="right", fontsize=8)
        ceiling = part.ceiling.dropna()
        if len(ceiling):
            ax.axhline(float(ceiling.iloc[0]), ls="--", color="k", lw=1, label="noise ceiling")
            ax.legend(fontsize=7, loc="upper right")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{exp}: {metric}", fontsize=9)
        ax.set_ylabel(metric.upper() + " (mean, 95% CI)")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_all(metric_paths: list, out_csv, out_md, out_png, out_html, extra_images: list | None = None) -> pd.DataFrame:
    df = collect(metric_paths)
    io.write_bytes(out_csv, df.to_csv(index=False).encode())
    tables = pivot_tables(df)
    ceil = ceilings(df)
    md = ["# tda-bench leaderboard", "",
          "Cells: mean over queries [95% bootstrap CI]. Higher is better. `failed` rows ran but did not finish "
          "(see `reason` in leaderboard.csv).", ""]
    for metric, table in tables.items():
        md += [f"## {metric}", "", table.to_markdown(), ""]
        notes = [f"{e}: {v:.3f}" for (m, e), v in ceil.items() if m == metric]
        if notes:
            md += ["Noise ceiling (seed-split Spearman): " + ", ".join(notes), ""]
    io.write_bytes(out_md, "\n".join(md).encode())
    bar_plot(df, out_png)
    io.write_bytes(out_html, _html_page(tables, ceil, [out_png, *(extra_images or [])]).encode())
    return df


def _html_page(tables, ceil, images) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tda-bench leaderboard</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}</style>",
             "</head><body><h1>tda-bench leaderboard</h1>"]
    for metric, table in tables.items():
        parts.append(f"<h2>{html.escape(metric)}</h2>")
        parts.append(table.to_html(escape=True))
        notes = [f"{html.escape(e)}: {v:.3f}" for (m, e), v in ceil.items() if m == metric]
        if notes:
            parts.append("<p>Noise ceiling: " + ", ".join(notes) + "</p>")
    for img in images:
        if Path(img).exists():
            data = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(Path(img).name)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)
