"""Exact influence function (small models): the damped GGN built densely, then a Cholesky solve.

    GGN = (1/N) sum_n J_n^T H_n J_n   (J_n = d outputs / d theta, H_n = d^2 loss_n / d outputs^2)
    tau[q, i] = -(1/N) v_q^T (GGN + (wd + damping) I)^{-1} g_i
The GGN equals the Hessian of the mean loss up to the residual term (it is the Hessian for a
model linear in its parameters, e.g. logistic regression), and is positive semi-definite, so with
weight decay or damping the solve is well posed. damping = `damping` if given, else `damping_rel`
x mean GGN eigenvalue (trace / P); default 0.1 to match if_ekfac's per-layer default.
This is the reference EK-FAC is tested against; refused above `max_params` (dense P x P).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg.blas import dsyrk, ssyrk
from torch.func import functional_call, hessian, jacrev, vmap

from .base import Method


def dense_ggn(model, params: dict, loss_fn, x: torch.Tensor, y: torch.Tensor, chunk_size: int = 256,
              network_inputs=None) -> torch.Tensor:
    """[P, P] float64 GGN of the mean of loss_fn(call, x, y) (flat layout of tda_core.gradients).

    `network_inputs(x)` (default: x itself) is what loss_fn feeds the network for a batch x; the
    outputs J and H are taken at are the network's outputs on those inputs, flattened per example
    (e.g. a diffusion loss's K noised copies of an image: K x C x H x W outputs per example)."""
    params = {k: v.detach() for k, v in params.items()}
    buffers = {k: v.to(x.device) for k, v in model.named_buffers()}
    names = list(params)
    P = sum(v.numel() for v in params.values())
    out = None if x.device.type == "cpu" else torch.zeros(P, P, dtype=torch.float64, device=x.device)

    network_inputs = network_inputs or (lambda xb: xb)
    with torch.no_grad():
        out_shape = functional_call(model, (params, buffers), (network_inputs(x[:1]),)).shape

    def outputs(p, xi):  # flat network outputs of one example
        return functional_call(model, (p, buffers), (network_inputs(xi[None]),)).reshape(-1)

    def out_hessian(z, xi, yi):  # d^2 loss / d outputs^2 at one example
        return hessian(lambda zz: loss_fn(lambda _inp: zz.reshape(out_shape), xi[None], yi[None])[0])(z)

    acc = None  # upper triangle of sum R^T R, accumulated by BLAS syrk on CPU (half a gemm)
    for s in range(0, len(x), chunk_size):
        xb, yb = x[s : s + chunk_size], y[s : s + chunk_size]
        J = vmap(jacrev(outputs), in_dims=(None, 0))(params, xb)
        J = torch.cat([J[k].reshape(len(xb), -1, params[k].numel()) for k in names], dim=2)  # [n, C, P]
        z = vmap(outputs, in_dims=(None, 0))(params, xb)
        H = vmap(out_hessian)(z, xb, yb).double()  # [n, C, C]
        # H = B B^T (B from its eigendecomposition, PSD part), so GGN = sum (B^T J)^T (B^T J).
        evals, evecs = torch.linalg.eigh(H)
        evals = evals.clamp_min(0)
        # Directions with zero curvature in every example (softmax's shift invariance) add nothing.
        null = int((evals <= 1e-12 * evals.amax(-1, keepdim=True).clamp_min(1e-300)).all(0).sum())
        B = (evecs * evals.sqrt()[:, None, :])[:, :, null:]
        R = (B.transpose(1, 2).to(J.dtype) @ J).reshape(-1, P)
        if x.device.type == "cpu":
            syrk = dsyrk if R.dtype == torch.float64 else ssyrk
            acc = syrk(1.0, R.numpy().T, beta=0.0 if acc is None else 1.0, c=acc, trans=0, overwrite_c=1)
        else:
            out += (R.T @ R).double()
    if acc is not None:
        out = torch.from_numpy(acc).double().triu_()
        out += out.triu(1).T
    return out.div_(len(x))


def exact_if_scores(model, params, task, x, y, xq, yq, weight_decay: float = 0.0, damping: float | None = None,
                    damping_rel: float = 0.1, chunk_size: int = 256) -> torch.Tensor:
    """[Q, N] exact IF scores of the (damped) GGN of the mean training loss."""
    from ..gradients import per_example_grads

    ggn = dense_ggn(model, params, task.attribution_loss, x, y, chunk_size, task.network_inputs)
    d = float(damping) if damping is not None else damping_rel * float(ggn.trace()) / len(ggn)
    ggn.diagonal().add_(weight_decay + d)
    chol = torch.linalg.cholesky(ggn)
    V = per_example_grads(model, params, task.measure, xq, yq, chunk_size).double()
    G = per_example_grads(model, params, task.attribution_loss, x, y, chunk_size).double()
    HinvV = torch.cholesky_solve(V.T, chol)  # [P, Q]
    return -(HinvV.T @ G.T) / len(x)


class IfExact(Method):
    name = "if_exact"
    max_params = 20000  # options (registry row): methods/options.py IF_EXACT

    def score(self, ctx) -> np.ndarray:
        dev = ctx.device
        total = 0
        for seed in ctx.seeds:
            total = total + exact_if_scores(
                ctx.model(seed), ctx.params(seed), ctx.task, ctx.train_x.to(dev), ctx.train_y.to(dev),
                ctx.query_x.to(dev), ctx.query_y.to(dev), ctx.trajectory(seed).weight_decay,
                self.opts["damping"], self.opts["damping_rel"], ctx.chunk_size)
        return (total / len(ctx.seeds)).cpu().numpy().astype(np.float32)
