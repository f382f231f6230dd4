"""LoGra (Choe et al. 2024, "What is Your Data Worth to GPT? LLM-Scale Data Valuation with Influence
Functions"): influence functions on gradients projected through each layer's factorisation.

A layer out = W a (+ b) applied at T positions (T = 1 on [B, d] inputs, T tokens on [B, T, d]) has the
per-example gradient G_n = sum_t s_nt a_nt^T (s = d loss_n / d out_t; a with a trailing 1 for the
bias, so the bias is the last column). LoGra projects both factors before the outer product,

    G~_n = sum_t (P_out^T s_nt) (P_in^T a_nt)^T  =  P_out^T G_n P_in          [k_out, k_in]

from forward / backward hooks (the layer input and the gradient of its output), so the [P]
per-example gradient is never formed. Row-major, vec(G~) = (P_out kron P_in)^T vec(G). Then, per layer
(block-diagonal, as LoGra and dattri), with the raw second moment of the projected gradients
F_l = (1/N) sum_i g~_il g~_il^T (the empirical Fisher of the mean loss, projected):

    tau[q, i] = -(1/N) sum_l v~_ql^T (F_l + lambda_l I)^{-1} g~_il          (1/N, sign: methods/context.py)

lambda_l = damping_rel x the mean eigenvalue of F_l (trace / dim, dattri's adaptive damping), or the
absolute `damping`. v~ = the same projection of the gradient of the measurement f at the query.

Layers: nn.Linear and transformers' Conv1D (GPT-2; weight [in, out], out = a W + b: the same G~ with
G its transpose) whose weight is a parameter under its own name; every other parameter (embeddings,
LayerNorm, Conv2d, lone biases, a tied lm_head) is left out. P_in [d_in, k_in] and P_out [d_out, k_out]
are seeded Gaussian RandomProjector matrices per layer and side (entries N(0, 1/k)); a side whose
dimension is at most proj_dim is kept whole (identity, exact). Options: methods/options.py LOGRA.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..errors import TdaError
from ..projection import RandomProjector
from .base import Method


@dataclass
class LograLayer:
    module: str
    layer: nn.Module
    bias: bool
    d_in: int  # including the bias column
    d_out: int
    transposed: bool  # Conv1D: weight [in, out]


def _conv1d_class():
    """transformers' Conv1D if transformers is already imported (a model that has one imported it)."""
    if "transformers" not in sys.modules:
        return None
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - older layouts
        from transformers.modeling_utils import Conv1D
    return Conv1D


def logra_layers(model: nn.Module, param_names) -> list[LograLayer]:
    names = set(param_names)
    conv1d = _conv1d_class()
    out = []
    for mname, m in model.named_modules():
        linear, transposed = isinstance(m, nn.Linear), conv1d is not None and isinstance(m, conv1d)
        w = f"{mname}.weight" if mname else "weight"
        if not (linear or transposed) or w not in names:
            continue
        b = f"{mname}.bias" if mname else "bias"
        has_bias = getattr(m, "bias", None) is not None and b in names
        d_out, d_in = m.weight.shape[::-1] if transposed else m.weight.shape
        out.append(LograLayer(mname, m, has_bias, int(d_in) + int(has_bias), int(d_out), transposed))
    return out


def logra_projections(layers: list[LograLayer], proj_dim: int, seed: int, device) -> list[tuple]:
    """(P_in [d_in, k_in], P_out [d_out, k_out]) per layer; None = that side kept whole."""
    def side(d, salt):
        if d <= proj_dim:
            return None
        return RandomProjector(d, proj_dim, seed * 1_000_003 + salt, "gaussian").dense(device)

    return [(side(l.d_in, 2 * j), side(l.d_out, 2 * j + 1)) for j, l in enumerate(layers)]


def logra_features(model: nn.Module, params: dict, layers: list[LograLayer], projections: list[tuple], fn,
                   x: torch.Tensor, y: torch.Tensor, chunk_size: int = 256) -> torch.Tensor:
    """[n, sum_l k_out k_in]: each example's projected layer gradients P_out^T G_n P_in, flattened
    row-major and concatenated in the order of `layers`, of fn(call, x, y) ([B] per-example values)."""
    device = next(iter(params.values())).device
    buffers = {k: v.to(device) for k, v in model.named_buffers()}
    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    index = {id(l.layer): j for j, l in enumerate(layers)}
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (layer, projected input, output) per call

    def hook(module, inputs, output):
        j = index[id(module)]
        a = inputs[0].detach()
        a = a.reshape(a.shape[0], -1, a.shape[-1])
        if layers[j].bias:
            a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
        p_in = projections[j][0]
        seen.append((j, a if p_in is None else a @ p_in.to(a.dtype), output))

    handles = [l.layer.register_forward_hook(hook) for l in layers]
    chunks = []
    try:
        for start in range(0, len(x), chunk_size):
            seen.clear()
            xb, yb = x[start : start + chunk_size].to(device), y[start : start + chunk_size].to(device)
            call = lambda inp: functional_call(model, (p, buffers), (inp,))  # noqa: E731
            # the sum over the chunk: each example's output gradient is its own d fn_n / d out
            total = fn(call, xb, yb).sum()
            grads = torch.autograd.grad(total, [out for _, _, out in seen], allow_unused=True)
            blocks = [None] * len(layers)
            for (j, a, out), s in zip(seen, grads):
                if s is None:
                    s = torch.zeros_like(out)
                s = s.detach().reshape(s.shape[0], -1, s.shape[-1])
                p_out = projections[j][1]
                s = s if p_out is None else s @ p_out.to(s.dtype)
                g = torch.einsum("bto,bti->boi", s, a).flatten(1)  # a module used twice: its calls add up
                blocks[j] = g if blocks[j] is None else blocks[j] + g
            for j, b in enumerate(blocks):
                if b is None:  # the layer did not run for this input
                    k_in = layers[j].d_in if projections[j][0] is None else projections[j][0].shape[1]
                    k_out = layers[j].d_out if projections[j][1] is None else projections[j][1].shape[1]
                    blocks[j] = torch.zeros(len(xb), k_out * k_in, device=device, dtype=total.dtype)
            chunks.append(torch.cat(blocks, 1))
    finally:
        for h in handles:
            h.remove()
        seen.clear()
    out = torch.cat(chunks)
    return out if out.dtype == torch.float64 else out.float()


def block_sizes(layers: list[LograLayer], projections: list[tuple]) -> list[int]:
    sizes = []
    for l, (p_in, p_out) in zip(layers, projections):
        sizes.append((l.d_in if p_in is None else p_in.shape[1]) * (l.d_out if p_out is None else p_out.shape[1]))
    return sizes


def logra_scores(phi: torch.Tensor, psi: torch.Tensor, sizes: list[int], damping_rel: float,
                 damping: float | None, names: list[str] | None = None) -> torch.Tensor:
    """[Q, N] -(1/N) sum_l psi_l (F_l + lambda_l I)^{-1} phi_l^T (float64), F_l = phi_l^T phi_l / N."""
    phi, psi = phi.double(), psi.double()
    n = len(phi)
    total = torch.zeros(len(psi), n, dtype=torch.float64, device=phi.device)
    start = 0
    for j, size in enumerate(sizes):
        g, v = phi[:, start : start + size], psi[:, start : start + size]
        start += size
        fisher = g.T @ g / n
        lam = float(damping) if damping is not None else damping_rel * float(torch.trace(fisher)) / size
        if lam <= 0:
            name = names[j] if names else str(j)
            raise TdaError(f"logra: layer '{name}' has zero gradients on every training example (not called "
                           "through its forward?) and so zero damping; set damping > 0")
        damped = fisher + lam * torch.eye(size, dtype=torch.float64, device=phi.device)
        total -= torch.linalg.solve(damped, v.T).T @ g.T / n
    return total


class LoGra(Method):
    name = "logra"  # options: methods/options.py LOGRA

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        model, params = ctx.model(seed), ctx.params(seed)
        layers = logra_layers(model, params)
        if not layers:
            raise TdaError("logra: the model has no nn.Linear or Conv1D layer with its own weight parameter")
        projections = logra_projections(layers, int(self.opts["proj_dim"]), int(self.opts["proj_seed"]), ctx.device)
        phi = logra_features(model, params, layers, projections, ctx.task.attribution_loss, ctx.train_x, ctx.train_y,
                             ctx.chunk_size)
        psi = logra_features(model, params, layers, projections, ctx.task.measure, ctx.query_x, ctx.query_y,
                             ctx.chunk_size)
        tau = logra_scores(phi, psi, block_sizes(layers, projections), float(self.opts["damping_rel"]),
                           self.opts["damping"], [l.module for l in layers])
        return tau.cpu().numpy().astype(np.float32)
