"""The board's pictures: the bar plot (one panel per metric and experiment) and where the metric-agreement
heatmap (tda_core.meta_eval.heatmap) goes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .cells import row_label
from .collect import metric_order


def bar_plot(df: pd.DataFrame, path) -> None:
    """One panel per (metric, experiment): horizontal bars (labels never overlap), best at the top,
    95% CIs, tied-with-best rows dark, the ceiling as a dashed line where the ground truth resolves it
    (collect: a finite ceiling); 'ceiling not resolved' in the title, and no line, where it does not."""
    from ..plots import panel_grid, save_figure

    panels = [(m, e) for (_, m, e), _ in df.assign(mo=[metric_order(m) for m in df.metric])
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


def agreement_plot_path(out_png) -> Path:
    """The metric-agreement heatmap beside the bar plot (leaderboard_metric_agreement.png)."""
    return Path(out_png).with_name(Path(out_png).stem + "_metric_agreement.png")
