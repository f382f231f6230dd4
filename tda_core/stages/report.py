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


def merge_inputs(dirs: list) -> tuple[list[str], dict[str, list[str]]]:
    """The result bundles and the studies' board files of results folders (made on different machines):
    every experiment's metrics.json and each study's board file (tda_core.bundle.board_files: e.g.
    loo/results.json, pruning/summary.json, tuning.json), as tda_core.layout places them; bundles are
    metrics.json first, then the bundle studies' in the registry's order. A merged folder is untrusted: no
    symbolic link may lie on the path from the folder to one of those files (nothing outside the folder is
    read), and each must be a regular file (no FIFO, no device) of at most io.MAX_JSON_BYTES; anything
    else is one error."""
    from ..bundle import board_files, bundle_kinds

    kinds = board_files()
    bundles, studies = [], {k: [] for k in kinds if k not in bundle_kinds()}
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ConfigError(f"--merge {d}: not a folder (nor a .tar.gz / .zip archive of `tda export`)")
        found: dict[str, list[str]] = {k: [] for k in kinds}
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
            for kind, relative in kinds.items():
                if _merged_file(d, Path(layout.study_file(relative))):
                    found[kind].append(layout.study_file(relative))
        if not any(found[k] for k in bundle_kinds()):
            raise ConfigError(f"--merge {d}: no result bundles ("
                              f"{', '.join('*/' + kinds[k] for k in bundle_kinds())}) in it")
        bundles += [p for k in bundle_kinds() for p in found[k]]
        for k in studies:
            studies[k] += found[k]
    return bundles, studies


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


def leaderboard(metrics: list, studies: dict[str, list], images: list, merge_dirs: list, out_dir,
                tracking: dict) -> list[str]:
    """Render the board into out_dir (tda_core.layout: leaderboard.{csv,md,html,png} and the metric-agreement
    heatmap) and log it; returns the paths written. `metrics`: result bundles (metrics.json and the bundle
    studies' files); `studies`: {study: its board files} of the other studies (tda_core/studies.py:
    pruning summaries, tuning files). `merge_dirs`: results folders or archives of
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
            return _leaderboard(metrics, studies, images, folders, out_dir, tracking)
        except TdaError as e:  # name the archive, not the temporary folder it was unpacked into
            text = str(e)
            for tmp, label in renames.items():
                text = text.replace(f"--merge {tmp}", f"--merge {label[:-1]}").replace(tmp + "/", label)
            if text == str(e):
                raise
            raise type(e)(text) from None


def _leaderboard(metrics, studies, images, merge_dirs, out_dir, tracking) -> list[str]:
    from ..board import agreement_plot_path, write_all
    from ..tracking import tracked_run

    if not metrics and not merge_dirs:
        raise ConfigError("leaderboard: give --metrics FILE... or --merge DIR_OR_ARCHIVE...")
    merged_metrics, merged_studies = merge_inputs(merge_dirs or [])
    metrics = once(list(metrics or []) + merged_metrics)
    studies = {name: once(list((studies or {}).get(name) or []) + merged_studies.get(name, []))
               for name in dict.fromkeys([*(studies or {}), *merged_studies])}
    merge = bool(merge_dirs)
    out = Path(out_dir)
    board = ResultsLayout(str(out))
    images = expand_images(images or [])
    page: list = []
    df = write_all(metrics, board.leaderboard("csv"), board.leaderboard("md"), board.leaderboard("png"),
                   board.leaderboard("html"), images, studies, merge=merge, sections_out=page)
    with tracked_run(tracking, str(out), "leaderboard", "report", "leaderboard") as run:
        run.log_table("leaderboard", _for_wandb(df.drop(columns=["reason"])))
        for section in page:  # board.Section: its stable key names the W&B table (leaderboard/metric/lds/digits-mlp)
            if section.table is not None:
                run.log_table(f"leaderboard/{section.key}", _for_wandb(section.table.reset_index()))
        run.log_image("leaderboard_plot", board.leaderboard("png"))
        for img in images:
            run.log_image(_image_key(img, out), img)
    return [board.leaderboard(x) for x in ("csv", "md", "html", "png")] + [str(agreement_plot_path(
        board.leaderboard("png")))]
