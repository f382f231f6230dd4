"""Diffusion pictures (docs/design.md, section Evaluation): influential training images per query, and samples by seed.

influence_query{q}.png  the query image, then per method (one row each) its top-k training images
                        with the most positive scores (training on them RAISES the query's denoising
                        loss) and the top-k most negative (they LOWER it: the proponents)
samples.png             DDPM samples of every full-data seed's model from the same fixed noise: one
                        row per seed plus a row of the per-pixel standard deviation over seeds, so
                        the picture shows how much the generated distribution depends on the seed
Per-seed methods are shown with their scores averaged over the seeds' score files.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..diffusion import PICTURE_DEFAULTS
from ..plots import pyplot, save_figure
from ..scores import method_scores
from ..tracking import tracked_run
from .common import score_dir_of

log = logging.getLogger("tda")


def diffusion_pictures(exp, methods: list[str], score_dirs: dict | None, pictures: dict, out_dir,
                       tracking: dict) -> list[Path]:
    """`score_dirs` maps a method to its score folder (default: the layout's scores/{method})."""
    opts = {**PICTURE_DEFAULTS, **(pictures or {})}
    s = exp.splits
    n_queries = min(opts["n_queries"], len(s.query_x))
    out_dir = Path(out_dir)
    scores = seed_averaged_scores(exp, methods, score_dirs)
    paths = []
    for q in range(n_queries):
        fig = influence_figure(s.query_x[q], s.train_x, {m: v[q] for m, v in scores.items()}, opts["top_k"],
                               title=f"{exp.name}: query {q} (score > 0: training on it raises the query's "
                                     f"denoising loss; < 0: lowers it)")
        paths.append(save_figure(fig, out_dir / f"influence_query{q}.png", dpi=120))
    samples = generate_by_seed(exp, range(exp.cfg["seeds"]), opts["n_samples"], opts["sample_seed"])
    paths.append(save_figure(samples_figure(samples, title=f"{exp.name}: samples of each full-data seed from the same "
                                                      f"noise (seed {opts['sample_seed']})"),
                       out_dir / "samples.png", dpi=120))
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "pictures", f"{exp.name}/pictures",
                     {"experiment": exp.name, **opts}) as run:
        for p in paths:
            run.log_image(f"pictures/{p.stem}", p)
    return paths


def seed_averaged_scores(exp, methods: list[str], score_dirs: dict | None) -> dict[str, np.ndarray]:
    """method -> [Q, N] query scores averaged over its seeds (per-seed files, or the per-seed samples
    of d-TDA estimators); failed methods are left out."""
    out = {}
    for method in methods:
        scores = method_scores(exp, method, "query", score_dir_of(exp, method, score_dirs))
        if not scores.ok:
            log.warning("pictures: %s left out (%s)", method, scores.failed_reason)
            continue
        out[method] = np.mean(scores.array, axis=0)
    return out


def generate_by_seed(exp, seeds, n: int, sample_seed: int) -> np.ndarray:
    """[R, n, C, H, W] samples of each seed's final model, all from the same noise."""
    out = []
    for seed in seeds:
        model = exp.build_model(seed).to(exp.device)
        params = {k: v.to(exp.device) for k, v in exp.load_checkpoints(seed)[-1]["params"].items()}
        out.append(exp.task.generate(exp.caller(model, params), n, sample_seed, exp.device).cpu().numpy())
    return np.stack(out)


def to_display(img) -> np.ndarray:
    """[C, H, W] in [-1, 1] -> [H, W] (grey) or [H, W, 3] in [0, 1]."""
    a = (np.asarray(img, dtype=np.float32) + 1.0) / 2.0
    a = np.clip(a, 0.0, 1.0)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _show(ax, img, caption=None, color="black"):
    ax.imshow(to_display(img), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if caption:
        ax.set_xlabel(caption, fontsize=6, color=color, labelpad=1)


def score_header(which: str, shown: np.ndarray) -> str:
    """A column header that follows the sign convention (score > 0: training on the image raises the
    query's loss) for the scores actually shown: the highest scores of a method may all be negative."""
    if np.all(shown > 0):
        return f"{which} scores (> 0: raise the loss)"
    if np.all(shown < 0):
        return f"{which} scores (all < 0: lower the loss)"
    return f"{which} scores (> 0 raise, < 0 lower the loss)"


def influence_figure(query_img, train_x, scores: dict[str, np.ndarray], top_k: int, title: str = ""):
    """Rows: methods. Columns: the query, the top-k positive, the top-k negative training images."""
    methods = list(scores) or ["(no method scores)"]
    k = min(top_k, len(train_x))
    cols = 1 + 2 * k
    fig, axes = pyplot().subplots(len(methods), cols, figsize=(0.9 * cols + 0.6, 1.05 * len(methods) + 0.6),
                             squeeze=False)
    for r, method in enumerate(methods):
        _show(axes[r, 0], query_img, "query")
        axes[r, 0].set_ylabel(method, fontsize=8, rotation=0, ha="right", va="center")
        tau = scores.get(method)
        if tau is None:
            for ax in axes[r, 1:]:
                ax.axis("off")
            continue
        order = np.argsort(tau, kind="stable")
        pos, neg = order[::-1][:k], order[:k]
        for j, i in enumerate(pos):
            _show(axes[r, 1 + j], train_x[i], f"#{i} {tau[i]:+.2g}", "tab:red")
        for j, i in enumerate(neg):
            _show(axes[r, 1 + k + j], train_x[i], f"#{i} {tau[i]:+.2g}", "tab:blue")
        axes[r, 1].set_title(score_header(f"{k} highest", tau[pos]), fontsize=7, loc="left", color="tab:red")
        axes[r, 1 + k].set_title(score_header(f"{k} lowest", tau[neg]), fontsize=7, loc="left", color="tab:blue")
    fig.suptitle(title, fontsize=8)
    return fig


def samples_figure(samples: np.ndarray, title: str = ""):
    """samples [R, n, C, H, W]: one row per seed, then the per-pixel std over seeds."""
    n_seeds, n = samples.shape[:2]
    rows = n_seeds + (1 if n_seeds > 1 else 0)
    fig, axes = pyplot().subplots(rows, n, figsize=(0.8 * n + 0.8, 0.85 * rows + 0.5), squeeze=False)
    for r in range(n_seeds):
        for j in range(n):
            _show(axes[r, j], samples[r, j])
        axes[r, 0].set_ylabel(f"seed {r}", fontsize=8, rotation=0, ha="right", va="center")
    if n_seeds > 1:
        std = samples.std(axis=0).mean(axis=1)  # [n, H, W], averaged over channels
        vmax = float(std.max()) or 1.0
        for j in range(n):
            axes[-1, j].imshow(std[j], cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
            axes[-1, j].set_xticks([])
            axes[-1, j].set_yticks([])
        axes[-1, 0].set_ylabel("std over\nseeds", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=8)
    return fig
