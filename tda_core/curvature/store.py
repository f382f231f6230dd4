"""On-disk cache of fitted curvature: {root}/{key}.pt (torch, atomic, stamped with the config hash).

The attribute stage roots a method's cache inside that method's own score directory
(results/{exp}/scores/{method}/_cache/, tda_core/stages/context.py): a declared output of the one job
that writes it, so no two concurrent jobs share a cache file. A cache file from another config is
ignored and re-fitted (never silently reused). The key must name everything the fit depends on
besides the config and the parameters' target view (kind, seed, checkpoints, sample count, ...).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ArtifactError
from .blocks import Curvature

log = logging.getLogger("tda")


@dataclass(frozen=True)
class CurvatureCache:
    """root None: no caching (every load_or_fit fits)."""

    root: Path | None
    config_hash: str = ""

    def path(self, key: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.+\-]+", key):
            raise ValueError(f"bad curvature cache key {key!r}")
        if self.root is None:
            raise ValueError("this curvature cache has no directory")
        return Path(self.root) / f"{key}.pt"

    def load_or_fit(self, key: str, fit: Callable[[], Curvature], cache: bool = True) -> Curvature:
        """The cached curvature under `key` if it was fitted for this config, else fit (and cache) it."""
        if not cache or self.root is None:
            return fit()
        path = self.path(key)
        if path.exists():
            try:
                return Curvature.load(path, expect_hash=self.config_hash)
            except ArtifactError as e:
                log.warning("re-fitting curvature: %s", e)
        curv = fit()
        curv.save(path, self.config_hash)
        return curv
