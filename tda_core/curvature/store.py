"""On-disk cache of fitted curvature: results/{experiment}/curvature/{key}.pt (torch, atomic).

A cache file carries the experiment's config hash; one from another config is ignored and
re-fitted (never silently reused). The key must name everything the fit depends on besides
the config (kind, seed, checkpoints, sample count, ...).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable

from ..errors import ArtifactError
from .blocks import Curvature

log = logging.getLogger("tda")


def curvature_path(exp, key: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.+\-]+", key):
        raise ValueError(f"bad curvature cache key {key!r}")
    return Path(exp.layout.curvature(key))


def load_or_fit(exp, key: str, fit: Callable[[], Curvature], cache: bool = True) -> Curvature:
    """The cached curvature under `key` if it was fitted for this config, else fit (and cache) it."""
    if not cache:
        return fit()
    path = curvature_path(exp, key)
    if path.exists():
        try:
            return Curvature.load(path, expect_hash=exp.hash)
        except ArtifactError as e:
            log.warning("re-fitting curvature: %s", e)
    curv = fit()
    curv.save(path, exp.hash)
    return curv
