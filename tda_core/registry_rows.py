"""What the registries of rows (metrics, datasets, model families) share: a row by name with a one-line
error naming the known ones, and the object a row's "module:name" path points to. Imports nothing heavy."""
from __future__ import annotations

import importlib

from .errors import ConfigError


def row_of(rows: dict, name: str, what: str):
    """rows[name], or ConfigError "unknown {what} '{name}'; known: ..." (sorted)."""
    if name not in rows:
        raise ConfigError(f"unknown {what} '{name}'; known: {', '.join(sorted(rows))}")
    return rows[name]


def import_path(path: str):
    """The object at "module:name" (imports the module)."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)
