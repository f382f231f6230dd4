"""Tuning sensitivity stage: LDS of each method over its option grid; the gain of tuning cross-fitted over
query and subset halves (tda_core/metrics/tuning.py).

Reads the query scores of each grid point (the method's own row for the default point, the variant
`{method}.{option}-{value}` for the others; tda_core/tuning.py) and the subset ground truth, and writes
results/{exp}/tuning.json (one row per (method, option): tda_core/metrics/tuning.tuning_result) and
results/{exp}/tuning.png (LDS vs the option's value with 95% CIs; log-x for positive numeric grids).
A grid point whose attribution failed leaves its (method, option) row failed, with the reason.
"""
from __future__ import annotations

import numpy as np

from .. import io
from ..api import Experiment
from ..bundle import provenance
from ..metrics.groundtruth import GroundTruth
from ..metrics.lds import group_predictions
from ..metrics.tuning import tuning_result
from ..tuning import value_text
from ..scores import method_scores


def _predictions(exp: Experiment, name: str, masks: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """[S, M, Q] subset predictions of one grid point's query scores (the layout's scores/{name};
    d-TDA [R, Q, N]: their seed mean), or why not."""
    scores = method_scores(exp, name, "query")
    if not scores.ok:
        return None, scores.failed_reason
    return np.stack([group_predictions(s, masks) for s in scores.prediction_rows()]), None


def tune_experiment(exp: Experiment, grid: list[dict], groundtruth_path, out, plot, n_boot: int = 1000) -> list[dict]:
    """grid: tda_core.tuning.grid_points (each {method, option, value, default, scores}); each point's
    query scores are read from its folder in the layout (scores/{point['scores']})."""
    gt = GroundTruth.load(groundtruth_path, exp.hash)
    target = gt.subset.mean(axis=1)
    rows = []
    groups: dict[tuple, list[dict]] = {}
    for point in grid:
        groups.setdefault((point["method"], point["option"]), []).append(point)
    for (method, option), points in groups.items():
        row = {"method": method, "option": option, "values": [p["value"] for p in points],
               "labels": [value_text(p["value"]) for p in points], "variants": [p["scores"] for p in points],
               "default_index": next(i for i, p in enumerate(points) if p["default"]), "status": "ok"}
        preds = []
        for p in points:
            pr, failed = _predictions(exp, p["scores"], gt.masks)
            if pr is None:
                row.update(status="failed", reason=f"{p['scores']}: {failed}")
                break
            preds.append(pr)
        if row["status"] == "ok":
            row.update(tuning_result(preds, target, row["default_index"], n_boot=n_boot))
        rows.append(row)
    io.write_json(out, {**provenance(exp, "tune"), "experiment": exp.name, "tuning": rows})
    tuning_plot(exp.name, rows, plot)
    return rows


def _log_x(values: list) -> bool:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(nums) == len(values) and all(v > 0 for v in nums) and max(nums) / min(nums) >= 10


def tuning_plot(experiment: str, rows: list[dict], path) -> None:
    """One panel per (method, option): in-sample LDS [95% CI] per grid value, the default point and the
    value chosen on all data marked (its gain is the cross-fitted one of the table)."""
    from ..plots import panel_grid, save_figure

    fig, axes = panel_grid(len(rows), 3.6, 2.8, max_cols=3)
    for ax, row in zip(axes, rows):
        ax.set_title(f"{experiment}: {row['method']} {row['option']}", fontsize=8)
        if row["status"] != "ok":
            ax.text(0.5, 0.5, "failed", ha="center", va="center", transform=ax.transAxes)
            continue
        d_idx, s_idx = row["default_index"], row["selected"]
        shown = [i for i, v in enumerate(row["values"]) if not (i == d_idx and v is None)]  # None: a line
        numeric = all(isinstance(row["values"][i], (int, float)) and not isinstance(row["values"][i], bool)
                      for i in shown)
        order = sorted(shown, key=lambda i: row["values"][i]) if numeric else shown
        x = np.asarray([row["values"][i] for i in order], dtype=float) if numeric else np.arange(len(order))
        pts = [row["points"][i] for i in order]
        y = np.array([p["value"] for p in pts])
        err = np.nan_to_num(np.vstack([y - [p["ci_low"] for p in pts], [p["ci_high"] for p in pts] - y])).clip(min=0)
        ax.errorbar(x, y, yerr=err, marker="o", ms=3, lw=1, capsize=2, color="tab:blue")
        where = {i: k for k, i in enumerate(order)}
        if d_idx in where:
            ax.plot([x[where[d_idx]]], [y[where[d_idx]]], "s", color="k", ms=6, mfc="none", label="default")
        else:  # the default has no value on the axis (None: the method's own rule)
            dp = row["points"][d_idx]
            chosen = ", selected" if s_idx == d_idx else ""
            ax.axhline(dp["value"], color="k", ls="--", lw=1, label=f"default ({row['labels'][d_idx]}){chosen}")
            ax.axhspan(dp["ci_low"], dp["ci_high"], color="k", alpha=0.06)
        if s_idx in where:
            ax.plot([x[where[s_idx]]], [y[where[s_idx]]], "*", color="tab:red", ms=9, label="selected")
        if numeric and _log_x([row["values"][i] for i in shown]):
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(x, [row["labels"][i] for i in order], fontsize=6)
        elif all(float(v).is_integer() for v in x):
            ax.set_xticks(x, [row["labels"][i] for i in order], fontsize=6)
        ax.set_xlabel(row["option"], fontsize=7)
        ax.set_ylabel("LDS (all queries)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    save_figure(fig, path)


# -- its `tda` subcommands (tda_core/studies.py: this study's row names them) ----------------------------
def add_commands(stage) -> None:
    """This study's `tda` subcommands, added with the CLI's `stage` helper (tda_core.cli.build_parser)."""
    import json
    import logging

    from ..cli import experiment_of
    from ..errors import ConfigError

    log = logging.getLogger("tda")

    def cmd_tune(args):
        exp = experiment_of(args)
        grid = json.loads(args.grid) if args.grid else []
        if not isinstance(grid, list):
            raise ConfigError("--grid must be a JSON list of grid points (tda_core.tuning.grid_points)")
        for row in tune_experiment(exp, grid, args.groundtruth, args.out, args.plot):
            if row["status"] == "ok":
                log.info("%s %s: selected %s, held-out gain %.3f [%.3f, %.3f]", row["method"], row["option"],
                         row["labels"][row["selected"]], row["gain"], row["gain_ci_low"], row["gain_ci_high"])

    sp = stage("tune", cmd_tune, "tuning sensitivity: LDS over each method's option grid, chosen on held-out queries")
    sp.add_argument("--grid", required=True, help="the grid points as JSON (tda_core.tuning.grid_points)")
    sp.add_argument("--groundtruth", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--plot", required=True)
