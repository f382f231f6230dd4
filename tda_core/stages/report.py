"""Stage 5: the leaderboard job -- its inputs (given files, or whole results folders merged), the
rendered board (tda_core.board) and its W&B run."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ..errors import ArtifactError, ConfigError, TdaError
from ..layout import ExperimentLayout, ResultsLayout


def merge_inputs(dirs: list) -> tuple[list[str], list[str], list[str]]:
    """Bundles, pruning summaries and tuning files of results folders (made on different machines): every
    experiment's metrics.json, loo/results.json, removal/results.json, pruning/summary.json and
    tuning.json, as tda_core.layout places them. A merged folder is untrusted: no symbolic link may lie
    on the path from the folder to one of those files (nothing outside the folder is read), and each must
    be a regular file (no FIFO, no device) of at most io.MAX_JSON_BYTES; anything else is one error."""
    from ..bundle import BOARD_FILES

    metrics, pruning, tuning = [], [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ConfigError(f"--merge {d}: not a folder (nor a .tar.gz / .zip archive of `tda export`)")
        found: dict[str, list[str]] = {k: [] for k in BOARD_FILES}
        for name in sorted(os.listdir(d)):
            entry = d / name
            st = os.lstat(entry)
            if stat.S_ISLNK(st.st_mode):
                if entry.is_dir():  # a linked folder would lead the merge outside DIR
                    raise ArtifactError(f"--merge {d}: {entry} is a symbolic link to a folder; a merged folder may "
                                        "hold no links (copy the folder in)")
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            layout = ExperimentLayout(str(d), name)
            for kind in BOARD_FILES:
                if _merged_file(d, Path(getattr(layout, kind))):
                    found[kind].append(getattr(layout, kind))
        if not (found["metrics"] or found["loo_results"] or found["removal_results"]):
            raise ConfigError(f"--merge {d}: no result bundles (*/metrics.json, */loo/results.json or "
                              "*/removal/results.json) in it")
        metrics += found["metrics"] + found["loo_results"] + found["removal_results"]
        pruning += found["pruning_summary"]
        tuning += found["tuning"]
    return metrics, pruning, tuning


def _merged_file(root: Path, path: Path) -> bool:
    """Whether `path` (under `root`) is there; ArtifactError for a link on the way or a non-regular file."""
    from .. import io

    current = root
    parts = path.relative_to(root).parts
    for i, part in enumerate(parts):
        current = current / part
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.S_ISLNK(st.st_mode):
            raise ArtifactError(f"--merge {root}: {current} is a symbolic link; a merged folder may hold no links "
                                "(copy the file in)")
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return False
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"--merge {root}: {current} is {io.file_kind(st.st_mode)}, not a regular file; refused")
    if st.st_size > io.MAX_JSON_BYTES:
        raise ArtifactError(f"--merge {root}: {current} is {st.st_size / 2**20:.1f} MiB, more than the "
                            f"{io.MAX_JSON_BYTES / 2**20:g} MiB a bundle may have (tda_core.io.MAX_JSON_BYTES); "
                            "refused")
    return True


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
                tuning: list | None = None) -> list[str]:
    """Render the board into out_dir (tda_core.layout: leaderboard.{csv,md,html,png} and the metric-agreement
    heatmap) and log it; returns the paths written. `merge_dirs`: results folders or archives of
    `tda export` (checked against their manifest, unpacked into a temporary folder; errors name the
    archive and the member)."""
    from ..bundle import is_archive, unpack_archive

    with contextlib.ExitStack() as stack:
        folders, renames = [], {}
        for source in merge_dirs or []:
            if is_archive(source):
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tda-merge-"))
                unpack_archive(source, tmp)
                folders.append(tmp)
                renames[tmp] = f"{source}:"
            else:
                folders.append(source)
        try:
            return _leaderboard(metrics, pruning, images, folders, out_dir, tracking, tuning)
        except TdaError as e:  # name the archive, not the temporary folder it was unpacked into
            text = str(e)
            for tmp, label in renames.items():
                text = text.replace(f"--merge {tmp}", f"--merge {label[:-1]}").replace(tmp + "/", label)
            if text == str(e):
                raise
            raise type(e)(text) from None


def _leaderboard(metrics, pruning, images, merge_dirs, out_dir, tracking, tuning) -> list[str]:
    from ..board import agreement_plot_path, write_all
    from ..tracking import tracked_run

    if not metrics and not merge_dirs:
        raise ConfigError("leaderboard: give --metrics FILE... or --merge DIR_OR_ARCHIVE...")
    merged_metrics, merged_pruning, merged_tuning = merge_inputs(merge_dirs or [])
    metrics = once(list(metrics or []) + merged_metrics)
    pruning = once(list(pruning or []) + merged_pruning)
    tuning = once(list(tuning or []) + merged_tuning)
    merge = bool(merge_dirs)
    out = Path(out_dir)
    board = ResultsLayout(str(out))
    images = expand_images(images or [])
    page: list = []
    df = write_all(metrics, board.leaderboard("csv"), board.leaderboard("md"), board.leaderboard("png"),
                   board.leaderboard("html"), images, pruning, merge=merge, tuning_paths=tuning, sections_out=page)
    with tracked_run(tracking, str(out), "leaderboard", "report", "leaderboard") as run:
        run.log_table("leaderboard", _for_wandb(df.drop(columns=["reason"])))
        for section in page:  # board.Section; the W&B table names stay those from the titles
            if section.table is not None:
                key = "".join(c if c.isalnum() else "_" for c in section.title)
                run.log_table(f"leaderboard/{key}", _for_wandb(section.table.reset_index()))
        run.log_image("leaderboard_plot", board.leaderboard("png"))
        for img in images:
            run.log_image(_image_key(img, out), img)
    return [board.leaderboard(x) for x in ("csv", "md", "html", "png")] + [str(agreement_plot_path(
        board.leaderboard("png")))]
