"""On-disk cache of fitted curvature: {root}/{key}.pt (torch, atomic, stamped with the config hash).

Two folders, read in this order:
  shared  the experiment's fit of these curvature options, results/{exp}/curvature/{fit key}/ (tda_core/
          layout.py), written by its one fit_curvature job (tda_core/stages/curvature.py) before any
          attribute job that reads it starts (a declared input of theirs): consumers only read it.
  root    the method's own cache, inside its score directory (results/{exp}/scores/{method}/_cache/): a
          declared output of the one attribute job that writes it. A fit missing from the shared folder
          (library use outside the workflow; a target whose parameters are not the trained model's, such as
          randomized, which gets no shared folder) is fitted in the job and cached here.
A file from another config is ignored and re-fitted (never silently reused). The key must name everything
the fit depends on besides the config and the parameters' target view (kind, seed, checkpoints, sample
count, ...).
"""
from __future__ import annotations

import dataclasses
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
    """root None: no caching (every load_or_fit fits, unless the shared folder holds the fit)."""

    root: Path | None
    config_hash: str = ""
    shared: Path | None = None  # read-only: the experiment's shared fit (module docstring)
    # keys read from the shared folder (not fitted here): the attribute stage adds their fit time to the cost
    shared_reads: list = dataclasses.field(default_factory=list, compare=False)

    @staticmethod
    def check_key(key: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.+\-]+", key):
            raise ValueError(f"bad curvature cache key {key!r}")
        return key

    def path(self, key: str) -> Path:
        if self.root is None:
            raise ValueError("this curvature cache has no directory")
        return Path(self.root) / f"{self.check_key(key)}.pt"

    def without_shared(self) -> "CurvatureCache":
        """This cache without the shared folder (a target whose parameters are not the trained model's)."""
        return dataclasses.replace(self, shared=None)

    def load_or_fit(self, key: str, fit: Callable[[], Curvature], cache: bool = True) -> Curvature:
        """The shared fit under `key` if there is one for this config, else the cached one, else fit (and
        cache) it."""
        if not cache:
            return fit()
        if self.shared is not None:
            shared = Path(self.shared) / f"{self.check_key(key)}.pt"
            if shared.exists():
                try:
                    curv = Curvature.load(shared, expect_hash=self.config_hash)
                    log.info("curvature %s: read the shared fit in %s", key, self.shared)
                    self.shared_reads.append(key)
                    return curv
                except ArtifactError as e:
                    log.warning("ignoring the shared curvature fit: %s", e)
            elif Path(self.shared).is_dir():
                log.warning("curvature %s is not in the shared fit %s: fitting it in this job", key, self.shared)
            else:  # no fit_curvature job for this key (the workflow schedules one only for >= 2 readers)
                log.info("curvature %s: no shared fit (%s): fitting it in this job", key, self.shared)
        if self.root is None:
            return self._fit(key, fit)
        path = self.path(key)
        if path.exists():
            try:
                return Curvature.load(path, expect_hash=self.config_hash)
            except ArtifactError as e:
                log.warning("re-fitting curvature: %s", e)
        curv = self._fit(key, fit)
        curv.save(path, self.config_hash)
        return curv

    @staticmethod
    def _fit(key: str, fit: Callable[[], Curvature]) -> Curvature:
        curv = fit()
        log.info("curvature %s: fitted", key)
        return curv
