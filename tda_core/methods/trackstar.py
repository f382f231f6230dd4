"""TrackStar (Chang et al. 2024, "Scalable Influence and Fact Tracing for Large Language Model
Pretraining"), at the seed's final checkpoint:

    phi(z)  = (g(z) / (sqrt(v) + eps)) R           optimizer-corrected, projected gradient [k]
    w(z)    = (R_ac + lambda I)^{-1/2} phi(z)        whitened (option whiten)
    tau[q, i] = -w(z_q) . w(z_i) / (|w(z_q)| |w(z_i)|)

g = gradient of the attribution loss (training examples) or of the measurement f (queries); v = the
optimizer's second moment: Adam's bias-corrected exp_avg_sq at the final checkpoint; for SGD runs,
which keep none, its estimate mean_i g_i^2 over the training set (one extra gradient pass).
R = RandomProjector(P, proj_dim) (proj_dim None: no projection, for exact checks on small models).
R_ac = (1/N) Phi^T Phi, the autocorrelation of the projected training gradients (TrackStar's
Hessian stand-in; the paper mixes in evaluation-set gradients, not done here); lambda = damping_rel x
its mean eigenvalue (the paper's k << N needs none; here k can exceed N). The score is a cosine: its
sign follows the convention (minus: a step on z_i moves theta by -eta g_i), its scale is not in units
of f. Options: methods/options.py TRACKSTAR.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import TdaError
from ..gradients import flatten
from ..projection import RandomProjector
from ..training.optim import Adam
from .base import Method


def second_moment(ctx, seed: int, params: dict) -> tuple[torch.Tensor, str]:
    """Flat [P] second-moment estimate v (float64) and where it came from."""
    traj = ctx.trajectory(seed)
    if isinstance(traj.optimizer, Adam):
        state = traj.checkpoints[-1].opt_state
        if not state or "exp_avg_sq" not in state or float(state["step"]) < 1:
            raise TdaError("trackstar: the final checkpoint has no Adam second moment (exp_avg_sq) to precondition with")
        b2 = traj.optimizer.betas[1]
        v = flatten(state["exp_avg_sq"]).double() / (1 - b2 ** float(state["step"]))
        return v.to(ctx.device), "adam exp_avg_sq (bias-corrected)"
    total = None
    for start in range(0, ctx.n_train, ctx.chunk_size):
        rows = slice(start, start + ctx.chunk_size)
        g = ctx.train_grads(seed, params, x=ctx.train_x[rows], y=ctx.train_y[rows]).double()
        part = (g * g).sum(0)
        total = part if total is None else total + part
    return total / ctx.n_train, "mean squared training gradient (no optimizer second moment)"


def inverse_sqrt(phi: torch.Tensor, damping_rel: float) -> torch.Tensor:
    """(Phi^T Phi / N + lambda I)^{-1/2} in float64, lambda = damping_rel x the mean eigenvalue."""
    phi = phi.double()
    lam, vec = torch.linalg.eigh(phi.T @ phi / len(phi))
    lam = lam.clamp_min(0)
    lam = lam + damping_rel * float(lam.mean())
    if float(lam.min()) <= 0:
        raise TdaError("trackstar: the gradient autocorrelation is singular; set damping_rel > 0")
    return (vec * lam.rsqrt()) @ vec.T


def trackstar_features(ctx, seed: int, opts: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm features of the training examples [N, k] and of the queries [Q, k] (float64)."""
    params = ctx.params(seed)
    n_params = sum(p.numel() for p in params.values())
    v, _ = second_moment(ctx, seed, params)
    eps = float(opts["eps"]) if opts["eps"] is not None else float(getattr(ctx.trajectory(seed).optimizer, "eps", 1e-8))
    scale = (1.0 / (v.sqrt() + eps)).to(next(iter(params.values())).dtype)
    proj = None
    if opts["proj_dim"] is not None:
        proj = RandomProjector(n_params, int(opts["proj_dim"]), int(opts["proj_seed"]), opts["proj_type"])

    def correct_and_project(g):  # row by row, one fixed map for train and query gradients
        g = g * scale.to(g.dtype)
        return proj(g) if proj is not None else g

    phi = ctx.train_grads(seed, params, projector=correct_and_project).double()
    psi = ctx.query_grads(seed, params, projector=correct_and_project).double()
    if opts["whiten"]:
        w = inverse_sqrt(phi, float(opts["damping_rel"]))
        phi, psi = phi @ w, psi @ w
    return torch.nn.functional.normalize(phi, dim=1), torch.nn.functional.normalize(psi, dim=1)


class TrackStar(Method):
    name = "trackstar"  # options: methods/options.py TRACKSTAR

    def score(self, ctx) -> np.ndarray:
        phi, psi = trackstar_features(ctx, ctx.seed, self.opts)
        return (-(psi @ phi.T)).cpu().numpy().astype(np.float32)
