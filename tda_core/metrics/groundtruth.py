"""What the metrics score against: the typed ground truth, built in one place from its files.

`GroundTruth` is the evaluate stage's: the subset measurements the gather stage writes
(groundtruth/measurements.npz, tda_core/stages/groundtruth.py) plus what a target other than the
queries needs (train_self: the self-queries and the label corruption; randomized: the reference
target's scores). `LooTruth` is the leave-one-out study's (loo/measurements.npz, tda_core/stages/loo.py).
A field a metric needs and the experiment lacks is None; `GroundTruth.need` says which metric wanted it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..scores import Scores

__all__ = ["GroundTruth", "LooTruth"]


@dataclass(frozen=True)
class GroundTruth:
    """The evaluate stage's ground truth of one experiment and target (None: not there)."""

    masks: np.ndarray | None = None        # [M, N] bool: training subset j keeps example i
    subset: np.ndarray | None = None       # [M, R', Q]: f(z_q) of the model trained on S_j with subset seed r'
    full: np.ndarray | None = None         # [R, Q]: f(z_q) of the full-data model of scoring seed r
    fixed: np.ndarray | None = None        # [M, R, Q]: the fixed-seed track (groundtruth.track fixed_seed / both)
    self_index: np.ndarray | None = None   # [K]: the training example each train_self query is
    corrupted: np.ndarray | None = None    # [N] bool: the labels dataset.label_noise flipped
    reference: Scores | None = None        # the same method's scores of the metric's reference target
    meta: dict = field(default_factory=dict)  # the measurements file's settings (groundtruth_steps, seeds, ...)

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict | None = None, **extras) -> GroundTruth:
        """From a measurements file's arrays (masks, subset, full, fixed; other keys are no field and
        are left out) and the target's extras (self_index, corrupted, reference)."""
        names = {f.name for f in fields(cls)} - {"meta"}
        return cls(**{k: v for k, v in arrays.items() if k in names}, **extras, meta=dict(meta or {}))

    @classmethod
    def load(cls, path, expect_hash: str, **extras) -> GroundTruth:
        """The measurements file at `path` (None: no subset measurements, only the extras)."""
        from .. import io  # torch: not for the metric modules, which import this one

        arrays, meta = io.load_npz(path, expect_hash=expect_hash) if path else ({}, {})
        return cls.from_arrays(arrays, meta, **extras)

    def need(self, name: str, metric: str):
        """Field `name`, or a ValueError naming the metric that needs it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{metric} needs the ground truth's '{name}', which this experiment does not have")
        return value


@dataclass(frozen=True)
class LooTruth:
    """The leave-one-out study's measurements: S seeds, K removed points, Q queries."""

    points: np.ndarray  # [K]: the removed training examples
    full: np.ndarray    # [S, Q]: the full-data models
    loo: np.ndarray     # [K, S, Q]: without point k, seed s (paired with full[s])
    meta: dict = field(default_factory=dict)  # the loo_train settings

    @classmethod
    def load(cls, path, expect_hash: str) -> LooTruth:
        from .. import io

        arrays, meta = io.load_npz(path, expect_hash=expect_hash)
        return cls(arrays["points"], arrays["full"], arrays["loo"], meta)
