"""grad_norm_dot: gradient similarity with each training gradient divided by its norm to a power,

    tau[q, i] = -v_q . g_i / |g_i|^power

(power 0 is grad_dot, power 1 the cosine up to |v_q|): examples with large gradients (outliers,
mislabelled points) count less than in grad_dot.
"""
import numpy as np

from tda_core.methods.base import Method
from tda_core.methods.options import Option


class GradNormDot(Method):
    name = "grad_norm_dot"  # = the entry point's name: score folder and leaderboard row
    seed_usage = "per_seed"  # one score file per full-data seed (or "pooled" / "per_seed_samples")
    options = {
        "power": Option(1.0, "divide each training gradient by its norm to this power (0: grad_dot)"),
        "eps": Option(1e-12, "added to the norms"),
    }

    def score(self, ctx) -> np.ndarray:  # ctx: an AttributionContext (tda_core/methods/context.py)
        g = ctx.train_grads(ctx.seed)  # [N, P]
        v = ctx.query_grads(ctx.seed)  # [Q, P]
        norms = (g.norm(dim=1) + self.opts["eps"]) ** self.opts["power"]
        return (-(v @ g.T) / norms[None, :]).cpu().numpy().astype(np.float32)
