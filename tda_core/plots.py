"""Evaluation plots (matplotlib, Agg): the pruning curve and the leave-one-out scatter, and the
figure helpers every plot of the package uses (pyplot, panel_grid, save_figure)."""
from __future__ import annotations

import numpy as np

from . import io


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_grid(n: int, panel_width: float, panel_height: float, max_cols: int = 4):
    """A figure of n panels in rows of at most max_cols; the unused cells are blanked."""
    n = max(1, n)
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(panel_width * cols, panel_height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def save_figure(fig, path, dpi: int = 110):
    """tight_layout, then an atomic PNG write (tda_core.io), then close the figure; returns path."""
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return path


def _ci_err(r: dict, key: str = "test_accuracy") -> tuple[float, float]:
    """(below, above) the mean: the 95% CI over retrain seeds, 0 where there is none."""
    m, lo, hi = r[f"{key}_mean"], r.get(f"{key}_ci_low", np.nan), r.get(f"{key}_ci_high", np.nan)
    return (float(np.nan_to_num(m - lo)), float(np.nan_to_num(hi - m)))


def pruning_curve(rows: list[dict], experiment: str, path) -> None:
    """Test accuracy (mean, 95% CI over retrain seeds) vs p: one line per method and variant, plus baselines."""
    fig, ax = pyplot().subplots(figsize=(5.5, 4))
    full = [r for r in rows if r["method"] == "full data" and r["status"] == "ok"]
    if full:
        m, (below, above) = full[0]["test_accuracy_mean"], _ci_err(full[0])
        ax.axhline(m, color="k", lw=1, label="full data (retrained)")
        if below or above:
            ax.axhspan(m - below, m + above, color="k", alpha=0.08)
    lines: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["method"] != "full data":
            lines.setdefault((r["method"], r["variant"]), []).append(r)
    # every curve starts at the full-data baseline (p = 0); its CI is the shaded band
    start = [{"p": 0.0, "test_accuracy_mean": full[0]["test_accuracy_mean"]}] if full else []
    spread = max((r["p"] for r in rows), default=1.0) * 0.006  # small x offsets keep error bars apart
    for k, ((method, variant), pts) in enumerate(sorted(lines.items())):
        pts = sorted((r for r in pts if r["status"] == "ok"), key=lambda r: r["p"])
        label = method if variant == "baseline" else f"{method} ({variant})"
        if not pts:
            ax.plot([], [], label=f"{label}: failed", color="lightgrey")
            continue
        pts = start + pts
        style = {"color": "k", "ls": "--"} if method == "random removal" else {"ls": "-" if variant == "dtda" else ":"}
        err = np.array([_ci_err(r) for r in pts]).T  # [2, n]: below, above
        ax.errorbar([r["p"] + (k - len(lines) / 2) * spread * (r["p"] > 0) for r in pts],
                    [r["test_accuracy_mean"] for r in pts], yerr=err, marker="o", capsize=3, label=label, **style)
    n = max((r.get("n_seeds", 0) for r in rows), default=0)
    ax.set_xlabel("training examples removed (%)")
    ax.set_ylabel(f"test accuracy (mean, 95% CI over {n} retrain seeds)")
    ax.set_title(f"{experiment}: pruning by attribution (fresh seeds, step-matched)", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def loo_scatter(results: list[dict], experiment: str, path) -> None:
    """Predicted vs actual leave-one-out mean shift per method (error bars: 1 SE over seeds)."""
    ok = [r for r in results if r.get("status") == "ok" and "predicted" in r]
    fig, axes = panel_grid(len(ok), 3.4, 3.2)
    for ax, r in zip(axes, ok):
        pred, actual, se = (np.asarray(r[k]).ravel() for k in ("predicted", "actual", "actual_se"))
        ax.errorbar(pred, actual, yerr=se, fmt="o", ms=2, alpha=0.5, elinewidth=0.5)
        lim = np.nanmax(np.abs(np.concatenate([actual + se, actual - se]))) if len(actual) else 1.0
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_ylim(-1.05 * lim, 1.05 * lim)
        title = r["method"] + (f" = {r['aliases']}" if r.get("aliases") else "")
        ax.set_title(f"{title}: r={r['value']:.2f} (split-half {r.get('split_half_reliability', float('nan')):.2f})",
                     fontsize=7)
        ax.set_xlabel("predicted mean shift", fontsize=8)
        ax.set_ylabel("actual mean shift (+- 1 SE)", fontsize=8)
    fig.suptitle(f"{experiment}: leave-one-out ({ok[0]['n_seeds'] if ok else '?'} seeds)", fontsize=9)
    save_figure(fig, path)


def removal_curve(rows: list[dict], experiment: str, path) -> None:
    """Top-k removal: mean drop of f(z_q) (95% bootstrap CI) vs k, one line per method (random removal
    dashed); beside it, the fraction of correctly classified queries whose prediction flipped by k."""
    drops = [r for r in rows if str(r.get("metric", "")).startswith("topk_drop_k")]
    flips = [r for r in rows if r.get("metric") == "brittleness" and r.get("status") == "ok"
             and r.get("value") is not None]
    fig, axes = panel_grid(2 if flips else 1, 4.8, 3.8)
    ax = axes[0]
    lines: dict[str, list[dict]] = {}
    for r in drops:
        for name in [r["method"]] + [a.split(" (")[0] for a in filter(None, (r.get("aliases") or "").split(", "))]:
            lines.setdefault(name, []).append(r)
    for name, pts in sorted(lines.items()):
        pts = sorted((r for r in pts if r.get("status") == "ok"), key=lambda r: r["k"])
        if not pts:
            ax.plot([], [], label=f"{name}: failed", color="lightgrey")
            continue
        v = np.array([r["value"] for r in pts])
        err = np.array([[r["value"] - r["ci_low"], r["ci_high"] - r["value"]] for r in pts]).T.clip(min=0)
        style = {"color": "k", "ls": "--"} if name == "random-removal" else {}
        ax.errorbar([r["k"] for r in pts], v, yerr=err, marker="o", capsize=3, label=name, **style)
    ax.axhline(0, color="grey", lw=0.5)
    _k_axis(ax, sorted({r["k"] for r in drops}))
    ax.set_xlabel("k (training examples removed per query)")
    ax.set_ylabel("drop of f(z_q): full - retrained (mean, 95% CI)")
    ax.set_title(f"{experiment}: top-k removal (fresh seeds)", fontsize=9)
    ax.legend(fontsize=6)
    if flips:
        ax = axes[1]
        for r in sorted(flips, key=lambda r: r["method"]):
            ax.plot(r["ks"], r["flipped_fraction"], marker="o", label=r["method"],
                    **({"color": "k", "ls": "--"} if r["method"] == "random-removal" else {}))
        _k_axis(ax, flips[0]["ks"])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("k")
        ax.set_ylabel("fraction of correct queries flipped")
        ax.set_title(f"{experiment}: brittleness", fontsize=9)
        ax.legend(fontsize=6)
    save_figure(fig, path)


def _k_axis(ax, ks) -> None:
    """A log k axis ticked at the grid's k (plain numbers, no minor ticks)."""
    ax.set_xscale("log")
    ax.minorticks_off()
    if ks:
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
