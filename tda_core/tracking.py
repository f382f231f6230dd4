"""Weights & Biases tracking: one run per job, grouped by experiment, job_type = stage.

mode: auto (online when WANDB_API_KEY is set, else offline), online, offline, none. Offline runs
land under {results_dir}/wandb/ and can be uploaded later with `wandb sync`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator


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


def resolve_mode(mode: str) -> str:
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


@contextlib.contextmanager
def tracked_run(tracking: dict, results_dir: str, experiment: str, job_type: str, name: str,
                config: dict | None = None) -> Iterator[_NoRun | _WandbRun]:
    mode = resolve_mode(tracking.get("mode", "auto"))
    if mode == "none" or os.environ.get("WANDB_MODE") == "disabled":
        yield _NoRun()
        return
    import wandb

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
