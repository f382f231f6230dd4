"""d-TDA estimators (Mlodozeniec et al. 2025): per-seed predicted samples of the retrained distribution.

The trained model is a random variable theta ~ mu_D over seeds. For every full-data seed r, the
base estimator (IF, SOURCE or exact unrolling) is run on seed r's own model, giving tau_r; the
predicted sample of seed r's measurement after removing a set T is

    m(theta_r) - sum_{i in T} tau_r[q, i]         (Alg. 1; m(theta_r) = groundtruth["full"][r, q])

so mean, variance-increase and Wasserstein influences all follow from the stack [R, Q, N]
(format: methods/context.py). The mean over seeds is the ensemble estimator (if_ensemble, ...), and
seed 0's slice alone is the fixed-seed practice.
"""
from __future__ import annotations

import numpy as np

from .base import Method


class PerSeedSamples(Method):
    """Subclasses set `name` and `base` (a Method class); options are passed on to `base`."""

    base: type[Method]
    # registry row seed_usage="per_seed_samples": one job over all R full-data seeds, returning [R, Q, N]

    def __init__(self, **options):
        super().__init__(**options)
        self.estimator = self.base(**self.given)

    def score(self, ctx) -> np.ndarray:
        per_seed = []
        for r in ctx.seeds:
            per_seed.append(np.asarray(self.estimator.score(ctx.for_seeds([r])), dtype=np.float32))
            ctx.release(r)  # one seed's checkpoints in memory at a time
        return np.stack(per_seed)
