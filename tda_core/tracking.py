"""Weights & Biases tracking: one run per job, grouped by experiment, job_type = stage.

mode: auto (online when WANDB_API_KEY is set, else offline), online, offline, none, record. Offline runs
land under {results_dir}/wandb/ and can be uploaded later with `wandb sync`. record starts no W&B run: each
run is written, when it ends, as one plain JSON file {results_dir}/tracking/{job_type}/{name}.json (what
was logged, for tests and for reading a run without W&B; see _RecordedRun).

Tracking changes no number, so the workflow keeps it out of the rules' params (a params change
makes Snakemake rerun a job): the Snakefile writes the config's `tracking` block to the undeclared
side file {results_dir}/.tracking.json (write_settings), and `tda` reads it (read_settings) when no
--tracking is given. A file under results_dir reaches jobs anywhere, SLURM nodes included.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

from .errors import ArtifactError
from .layout import ResultsLayout


class _NoRun:
    """Stands in for a wandb run when tracking is off."""

    def log(self, *a, **k) -> None: ...

    def log_table(self, *a, **k) -> None: ...

    def log_image(self, *a, **k) -> None: ...

    def summary_update(self, *a, **k) -> None: ...


class _WandbRun:
    def __init__(self, run):
        self.run = run

    def log(self, metrics: dict[str, Any]) -> None:
        self.run.log(metrics)

    def summary_update(self, metrics: dict[str, Any]) -> None:
        self.run.summary.update(metrics)

    def log_table(self, key: str, dataframe) -> None:
        import wandb

        self.run.log({key: wandb.Table(dataframe=dataframe)})

    def log_image(self, key: str, path: str | Path) -> None:
        import wandb

        self.run.log({key: wandb.Image(str(path))})


class _RecordedRun:
    """mode record: keeps what a job logs and writes it, when the run ends, to one JSON file (record_path):
    {project, entity, group, job_type, name, config, summary, history, tables, images, exit_code}.

    history is the list of the dicts passed to log, in order; summary holds only what summary_update set
    (W&B also copies each log call's last values into its summary; this record keeps the two apart);
    tables are {key: {"columns": [...], "data": [[...]]}}; images are {key: path}. Values are made
    JSON-safe: numpy scalars and arrays become numbers and lists, NaN and infinities null. exit_code is 0,
    or 1 when the job raised inside the run. A rerun of the same job_type and name replaces the file."""

    def __init__(self, path: Path, head: dict):
        self.path, self.head = path, head
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.tables: dict[str, dict] = {}
        self.images: dict[str, str] = {}

    def log(self, metrics: dict[str, Any]) -> None:
        self.history.append(_json_safe(dict(metrics)))

    def summary_update(self, metrics: dict[str, Any]) -> None:
        self.summary.update(_json_safe(dict(metrics)))

    def log_table(self, key: str, dataframe) -> None:
        self.tables[key] = {"columns": [str(c) for c in dataframe.columns],
                            "data": _json_safe(dataframe.astype(object).values.tolist())}

    def log_image(self, key: str, path: str | Path) -> None:
        self.images[key] = str(path)

    def finish(self, exit_code: int) -> None:
        from .io import write_json  # torch is imported there: keep this module torch-free (the Snakefile's)

        write_json(self.path, {**self.head, "summary": self.summary, "history": self.history,
                               "tables": self.tables, "images": self.images, "exit_code": exit_code})


def _json_safe(value):
    """`value` as plain JSON: numpy scalars and arrays as Python numbers and lists, NaN / inf / pd.NA /
    NaT as null, dict keys as strings, anything else unknown as its str()."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # a numpy array or scalar (not imported here)
        value = value.tolist()
        if isinstance(value, list):
            return _json_safe(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    try:
        import pandas as pd

        if pd.isna(value):  # pd.NA, pd.NaT
            return None
    except (ImportError, TypeError, ValueError):
        pass
    return str(value)


def _safe_name(name: str) -> str:
    """A run name as one file name: '/' and other unsafe characters %-escaped (reversible, so two names
    never share a file); a name too long for a file system is cut and given a hash of the whole."""
    safe = urllib.parse.quote(name, safe="-_.=+,@") or "_"
    if safe.startswith("."):
        safe = "%2E" + safe[1:]
    if len(safe) > 200:
        safe = safe[:180] + "-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return safe


def record_path(results_dir: str | os.PathLike, job_type: str, name: str) -> Path:
    """Where mode record writes the run `name` of `job_type`: {results_dir}/tracking/{job_type}/{name}.json."""
    return Path(ResultsLayout(str(results_dir)).tracking_record(_safe_name(job_type), _safe_name(name)))


def settings_path(results_dir: str | os.PathLike) -> Path:
    return Path(ResultsLayout(str(results_dir)).tracking_settings)


def write_settings(results_dir: str | os.PathLike, tracking: dict) -> bool:
    """Write `tracking` to {results_dir}/.tracking.json unless it already holds it; True if written.
    Atomic (temporary file + rename) and torch-free: the Snakefile calls it while parsing."""
    path = settings_path(results_dir)
    text = json.dumps(tracking, sort_keys=True, indent=2) + "\n"
    try:
        if path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def read_settings(results_dir: str | os.PathLike) -> dict:
    """The tracking settings the workflow wrote for `results_dir`; {} (mode auto) if there are none."""
    path = settings_path(results_dir)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read the tracking settings {path}: {e}") from None
    if not isinstance(value, dict):
        raise ArtifactError(f"{path} must hold a JSON object (the config's tracking block)")
    return value


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


def share_service(tracking: dict) -> bool:
    """Start one W&B service in this process for the jobs it spawns; True if started.

    wandb.setup() exports WANDB_SERVICE, which child processes inherit: each job's wandb.init then
    connects to this service instead of starting its own (about 0.5 s of a job's 1.3 s W&B start-up,
    paid by every job otherwise). For local execution only (the Snakefile's onstart): a cluster job
    runs on another host, where that socket does not exist (tracked_run drops a stale one)."""
    if resolve_mode(tracking.get("mode", "auto")) in ("none", "record") or os.environ.get("WANDB_MODE") == "disabled":
        return False
    if os.environ.get("WANDB_SERVICE"):
        return False
    try:
        import wandb

        wandb.setup()
    except Exception:  # noqa: BLE001 - tracking is optional: jobs then start their own service
        return False
    return bool(os.environ.get("WANDB_SERVICE"))


def _drop_unreachable_service() -> None:
    """Forget an inherited WANDB_SERVICE whose unix socket is not on this host (a SLURM job started from
    a shell that had one, or a service that has exited): wandb.init would fail to connect instead of
    starting its own."""
    value = os.environ.get("WANDB_SERVICE", "")
    parts = value.split("-", 3)
    if len(parts) == 4 and parts[2] == "unix" and not os.path.exists(parts[3]):
        del os.environ["WANDB_SERVICE"]


@contextlib.contextmanager
def tracked_run(tracking: dict, results_dir: str, experiment: str, job_type: str, name: str,
                config: dict | None = None) -> Iterator[_NoRun | _WandbRun | _RecordedRun]:
    mode = resolve_mode(tracking.get("mode", "auto"))
    if mode == "record":  # no W&B at all, so WANDB_MODE does not apply
        run = _RecordedRun(record_path(results_dir, job_type, name), {
            "project": tracking.get("project", "tda-bench"), "entity": tracking.get("entity"), "group": experiment,
            "job_type": job_type, "name": name, "config": _json_safe(dict(config or {}))})
        ok = False
        try:
            yield run
            ok = True
        finally:
            run.finish(exit_code=0 if ok else 1)
        return
    if mode == "none" or os.environ.get("WANDB_MODE") == "disabled":
        yield _NoRun()
        return
    import wandb

    _drop_unreachable_service()
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=tracking.get("project", "tda-bench"),
        entity=tracking.get("entity"),
        dir=results_dir,
        mode=mode,
        group=experiment,
        job_type=job_type,
        name=name,
        config=config or {},
        settings=wandb.Settings(silent=True, console="off"),
    )
    ok = False
    try:
        yield _WandbRun(run)
        ok = True
    finally:
        run.finish(exit_code=0 if ok else 1)
