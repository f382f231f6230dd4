"""i.i.d. normal scores: the floor of every leaderboard (its LDS CI should cover 0)."""
import numpy as np

from .base import Method


class RandomScores(Method):
    name = "random"
    stage_aware = True  # it reads no model and no training example: there are no stages to follow

    def score(self, ctx) -> np.ndarray:
        return ctx.rng("random").standard_normal((ctx.n_query, ctx.n_train)).astype(np.float32)
