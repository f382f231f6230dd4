"""Where a dataset's files are: dataset.path, absolute or relative to data_dir (shared by every source)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError


def data_path(ds: dict, data_dir: str) -> Path:
    """dataset.path, absolute or relative to data_dir."""
    if not ds.get("path"):
        raise ConfigError(f"dataset '{ds['name']}' needs dataset.path")
    p = Path(ds["path"]).expanduser()
    p = p if p.is_absolute() else Path(data_dir) / p
    if not p.exists():
        raise ConfigError(f"dataset {ds['name']}: {p} does not exist")
    return p
