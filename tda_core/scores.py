"""The one reader of a method's score files, and the one decoder of their shape.

A method writes, per target (tda_core/layout.py names the files), according to its registry row's
seed usage (tda_core/methods/registry.py):

    per_seed          R files seed{r}, [Q, N] each (seed r's model)
    pooled            one file seedall, [Q, N] (one estimator from all R models)
    per_seed_samples  one file seedall, [R, Q, N] (seed r's own scores in [r]; the d-TDA estimators)

`load_scores` returns them as a `Scores` record whose `array` is always [R, Q, N] (R = 1 for pooled)
together with the usage, so no reader guesses the layout from ndim or from how many files it got.
The metrics (tda_core/metrics/*) take the record itself and ask it for what they read:
`seed_arrays` (one [Q, N] per seed), `prediction_rows` (what an additive prediction sums) and
`structure` (how its rows are labelled).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ArtifactError
from .layout import SEED_USAGES, ScoreFile, score_files

__all__ = ["Scores", "load_scores", "method_scores"]


@dataclass(frozen=True)
class Scores:
    """One method's scores of one target: `array` [R, Q, N] (pooled: [1, Q, N]), or None with
    `failed_reason` when any of its attributions failed (a failed row, never a missing one)."""

    method: str
    target: str
    usage: str
    sidecars: list = field(default_factory=list)
    array: np.ndarray | None = None
    failed_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_reason is None

    @classmethod
    def from_arrays(cls, arrays, usage: str = "per_seed", method: str = "m", target: str = "query") -> Scores:
        """A record of in-memory arrays (tests, notebooks), given as the score files hold them: a list of
        [Q, N] (per_seed: one per seed; pooled: the one) or the one [R, Q, N] of per_seed_samples
        (a bare array counts as one file)."""
        if usage not in SEED_USAGES:
            raise ValueError(f"seed usage must be one of {', '.join(SEED_USAGES)}, not {usage!r}")
        files = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
        return cls(method, target, usage, [], stack(files, usage))

    @property
    def structure(self) -> str:
        """per_seed (R > 1 files [Q, N]), samples (one [R, Q, N]) or one (a single [Q, N]: pooled, by a
        pooled method, or single, the only seed's model; `usage` tells these two apart)."""
        if self.usage == "per_seed_samples":
            return "samples"
        return "per_seed" if self.usage == "per_seed" and len(self.array) > 1 else "one"

    def seed_arrays(self) -> list[np.ndarray]:
        """[Q, N] float64 per scoring seed (a samples file gives R of them; pooled: the one array that
        stands for every seed)."""
        return [np.asarray(a, dtype=np.float64) for a in self.array]

    def prediction_rows(self) -> list[np.ndarray]:
        """The arrays an additive prediction reads: each per-seed file as is, the pooled one, a samples
        file averaged over its seeds (the estimator's seed-averaged scores), in the files' dtype."""
        if self.usage == "per_seed_samples":
            return [np.mean(self.array, axis=0)]
        return list(self.array)


def load_scores(files: list[ScoreFile], usage: str, expect_hash: str) -> Scores:
    """Read one method's score files of one target (sidecars first: a failed one fails the whole)."""
    from . import io

    if not files:
        raise ArtifactError("no score files were given")
    if usage not in SEED_USAGES:
        raise ValueError(f"seed usage must be one of {', '.join(SEED_USAGES)}, not {usage!r}")
    head = files[0]
    sidecars = [io.read_json(f.path(".json")) for f in files]
    failed = [s for s in sidecars if s.get("status") != "ok"]
    if failed:
        return Scores(head.method, head.target, usage, sidecars, None, failed[0].get("reason", "unknown"))
    for s in sidecars:
        io.check_hash(s.get("method", head.method), s.get("config_hash"), expect_hash)
    arrays = [io.load_npy(f.path(".npy")) for f in files]
    return Scores(head.method, head.target, usage, sidecars, stack(arrays, usage, [f.path(".npy") for f in files]))


def stack(arrays: list, usage: str, names: list | None = None) -> np.ndarray:
    """The files' arrays as [R, Q, N], checked against the usage's shape."""
    names = names or [f"array {i}" for i in range(len(arrays))]
    want = 3 if usage == "per_seed_samples" else 2
    for a, name in zip(arrays, names):
        if np.ndim(a) != want:
            raise ArtifactError(f"{name}: {usage} scores must be {'[R, Q, N]' if want == 3 else '[Q, N]'}, "
                                f"got shape {np.shape(a)}")
    if usage == "per_seed_samples":
        if len(arrays) != 1:
            raise ArtifactError(f"a per_seed_samples method writes one score file, got {len(arrays)}")
        return np.asarray(arrays[0])
    if usage == "pooled" and len(arrays) != 1:
        raise ArtifactError(f"a pooled method writes one score file, got {len(arrays)}")
    return np.stack([np.asarray(a) for a in arrays])


def method_scores(exp, method: str, target: str = "query", directory=None) -> Scores:
    """A method's scores of `target` for experiment `exp` (api.Experiment), from its score folder
    (default: the layout's scores/{method}); the seed usage comes from the method's registry row."""
    from .methods.registry import method_entry

    usage = method_entry(method).seed_usage
    directory = directory if directory is not None else exp.layout.score_dir(method)
    return load_scores(score_files(directory, method, target, usage, exp.cfg["seeds"]), usage, exp.hash)
