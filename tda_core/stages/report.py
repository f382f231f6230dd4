"""Stage 6: the leaderboard job -- its inputs (given files, or whole results folders merged), the
rendered board (tda_core.leaderboard) and its W&B run."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..layout import ExperimentLayout, ResultsLayout


def merge_inputs(dirs: list) -> tuple[list[str], list[str], list[str]]:
    """Bundles, pruning summaries and tuning files of results folders (made on different machines): every
    experiment's metrics.json, loo/results.json, pruning/summary.json and tuning.json, as tda_core.layout
    places them."""
    metrics, pruning, tuning = [], [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ConfigError(f"--merge {d}: not a folder")
        every = ExperimentLayout(".", "*")  # the layout's relative paths, any experiment
        found = sorted(d.glob(every.metrics)) + sorted(d.glob(every.loo_results))
        found += sorted(d.glob(every.removal_results))  # top-k removal bundles
        if not found:
            raise ConfigError(f"--merge {d}: no result bundles (*/metrics.json or */loo/results.json) in it")
        metrics += [str(f) for f in found]
        pruning += [str(f) for f in sorted(d.glob(every.pruning_summary))]
        tuning += [str(f) for f in sorted(d.glob(every.tuning))]
    return metrics, pruning, tuning


def once(paths: list) -> list:
    """Each file once (a file named twice, e.g. --merge DIR DIR, or also in --metrics, is read once)."""
    seen: dict = {}
    for p in paths:
        seen.setdefault(Path(p).resolve(), p)
    return list(seen.values())


def expand_images(images: list) -> list[str]:
    """A folder stands for the PNGs in it (e.g. the pictures folder of a diffusion experiment)."""
    return [str(f) for img in images for f in (sorted(Path(img).glob("*.png")) if Path(img).is_dir() else [img])]


def _for_wandb(df):
    """Missing numbers as None (wandb.Table columns must keep one type; '' in a number column fails)."""
    return df.astype(object).where(df.notna(), None)


def _image_key(img, out_dir: Path) -> str:
    """plots/<the image's path under the results folder, without suffix> (its own name if outside)."""
    p = Path(img)
    try:
        rel = p.resolve().relative_to(out_dir.resolve())
    except ValueError:
        rel = Path(p.name)
    return "plots/" + rel.with_suffix("").as_posix()


def leaderboard(metrics: list, pruning: list, images: list, merge_dirs: list, out_dir, tracking: dict,
                tuning: list | None = None):
    """Render the board into out_dir (tda_core.layout: leaderboard.{csv,md,html,png}) and log it;
    returns the Markdown text."""
    from ..leaderboard import load_bundles, sections, write_all
    from ..tracking import tracked_run

    if not metrics and not merge_dirs:
        raise ConfigError("leaderboard: give --metrics FILE... or --merge DIR...")
    merged_metrics, merged_pruning, merged_tuning = merge_inputs(merge_dirs or [])
    metrics = once(list(metrics or []) + merged_metrics)
    pruning = once(list(pruning or []) + merged_pruning)
    tuning = once(list(tuning or []) + merged_tuning)
    merge = bool(merge_dirs)
    out = Path(out_dir)
    board = ResultsLayout(str(out))
    images = expand_images(images or [])
    df = write_all(metrics, board.leaderboard("csv"), board.leaderboard("md"), board.leaderboard("png"),
                   board.leaderboard("html"), images, pruning, merge=merge, tuning_paths=tuning)
    with tracked_run(tracking, str(out), "leaderboard", "report", "leaderboard") as run:
        run.log_table("leaderboard", _for_wandb(df.drop(columns=["reason"])))
        for _, title, _, table in sections(df, load_bundles(metrics, pruning, merge=merge), pruning, tuning):
            if table is not None:
                key = "".join(c if c.isalnum() else "_" for c in title)
                run.log_table(f"leaderboard/{key}", _for_wandb(table.reset_index()))
        run.log_image("leaderboard_plot", board.leaderboard("png"))
        for img in images:
            run.log_image(_image_key(img, out), img)
    return Path(board.leaderboard("md")).read_text()
