"""TRAK (Park et al. 2023), pure torch, ensembled over the R full-data seeds.

For each full-data model theta_r (one shared seeded projection R, k = proj_dim):
    Phi_r = [grad_theta phi(z_i; theta_r)]_i R      [N, k]  phi = the model output function
    x_r(q) = grad_theta f(z_q; theta_r) R           [Q, k]  f = the experiment's measurement
    S_r    = x_r (Phi_r^T Phi_r + lambda I)^{-1} Phi_r^T
    tau    = mean_r S_r  *  mean_r Q_r              (TRAK Algorithm 1: ensemble, then reweight)
Classification: phi = margin log p/(1-p) and Q = diag(1 - p_i) (p_i = probability of the true label),
the derivative of the loss -log p = log(1 + e^-phi) w.r.t. phi up to sign, so Phi^T Q = -G_loss^T R.
Other tasks: phi = the training loss itself and Q = -1. In both cases
    tau = v^T R (Phi^T Phi + lambda I)^{-1} R^T (-g_i)
a Gauss-Newton step in the projected space: tau > 0 means training on z_i raises f(z_q) and the scale
is that of f (like -(1/N) v^T H^{-1} g_i with N H ~ Phi^T Phi; TRAK leaves out the p(1 - p) curvature
weights, so the absolute scale is approximate).

Options (declared in methods/options.py TRAK): proj_dim (256), proj_type (rademacher | gaussian), proj_seed (0), damping_rel (0.0: lambda
as a multiple of the mean eigenvalue of Phi^T Phi; 0 = pseudo-inverse), rcond (eigenvalues of
Phi^T Phi below rcond x the largest are dropped; default 1e-12 for float32 features, whose exactly
singular directions sit near eps32^2 ~ 1e-14, and 1e-15 for float64), dtype (float32 | float64:
the precision of the gradients; float64 only for exactness checks on small models).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

from ..gradients import per_example_grads
from ..projection import RandomProjector
from ..tasks import ClassificationTask, margin
from .base import Method


def _margin(call, x, y):
    return margin(call(x), y)


_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_RCOND = {torch.float32: 1e-12, torch.float64: 1e-15}


def ridge_inverse(phi: torch.Tensor, damping_rel: float = 0.0, rcond: float = 1e-12) -> torch.Tensor:
    """(Phi^T Phi + lambda I)^{-1} in float64 via eigh; lambda = damping_rel x mean eigenvalue.

    With lambda = 0 the pseudo-inverse (eigenvalues below rcond x max dropped), the lambda -> 0 limit
    on the range of Phi^T (k > N or k > P leaves Phi^T Phi singular).
    """
    xtx = phi.double().T @ phi.double()
    lam, vec = torch.linalg.eigh(xtx)
    lam = lam.clamp_min(0) + damping_rel * float(lam.clamp_min(0).mean())
    keep = lam > rcond * float(lam.max())
    inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    return (vec * inv) @ vec.T


class Trak(Method):
    name = "trak"  # registry row seed_usage="pooled": one score file from all full-data seeds

    def score(self, ctx) -> np.ndarray:
        o = self.opts  # declared in methods/options.py TRAK (checked, defaults filled)
        dtype = _DTYPES[o["dtype"]]
        rcond = float(_RCOND[dtype] if o["rcond"] is None else o["rcond"])
        n_params = sum(p.numel() for p in ctx.model(ctx.seeds[0]).parameters())
        proj = RandomProjector(n_params, int(o["proj_dim"]), int(o["proj_seed"]), o["proj_type"])
        # floating inputs follow the gradients' precision; token ids (language models) stay int64
        train_x, query_x = (x.to(dtype) if x.is_floating_point() else x for x in (ctx.train_x, ctx.query_x))
        classification = isinstance(ctx.task, ClassificationTask)
        total, reweight = None, torch.zeros(ctx.n_train, dtype=torch.float64, device=ctx.device)
        for seed in ctx.seeds:
            model = ctx.model(seed).to(dtype)
            params = {k: v.to(dtype) for k, v in ctx.params(seed).items()}
            if classification:
                phi_fn = _margin
                reweight += 1 - self._true_class_prob(model, params, train_x, ctx.train_y, ctx.chunk_size)
            else:
                phi_fn = ctx.task.attribution_loss
                reweight -= 1
            phi = per_example_grads(model, params, phi_fn, train_x, ctx.train_y, ctx.chunk_size, proj,
                                    desc="trak features")
            x = per_example_grads(model, params, ctx.task.measure, query_x, ctx.query_y, ctx.chunk_size, proj)
            part = (x.double() @ ridge_inverse(phi, float(o["damping_rel"]), rcond)) @ phi.double().T
            total = part if total is None else total + part
        r = len(ctx.seeds)
        return ((total / r) * (reweight / r)[None, :]).cpu().numpy().astype(np.float32)

    @staticmethod
    def _true_class_prob(model, params, x, y, chunk_size) -> torch.Tensor:
        device = next(iter(params.values())).device
        buffers = {k: v.to(device) for k, v in model.named_buffers()}
        out = []
        with torch.no_grad():
            for i in range(0, len(x), chunk_size):
                logits = functional_call(model, (params, buffers), (x[i : i + chunk_size].to(device),))
                p = torch.softmax(logits.double(), -1)
                out.append(p.gather(-1, y[i : i + chunk_size, None].to(device)).squeeze(-1))
        return torch.cat(out)
