"""Gradient similarity: tau[q, i] = -v_q . g_i at the final checkpoint (one SGD step's effect)."""
import numpy as np

from .base import Method


class GradDot(Method):
    name = "grad_dot"

    def score(self, ctx) -> np.ndarray:
        g = ctx.train_grads(ctx.seed)
        v = ctx.query_grads(ctx.seed)
        return self.combine(v, g).cpu().numpy().astype(np.float32)

    @staticmethod
    def combine(v, g):
        return -(v @ g.T)
