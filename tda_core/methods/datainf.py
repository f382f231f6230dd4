"""DataInf (Kwon et al. 2024, "DataInf: Efficiently Estimating Data Influence in LoRA-tuned LLMs and
Diffusion Models"), at the seed's final checkpoint.

Per layer l, the damped empirical Fisher (1/N) sum_i g_il g_il^T + lambda_l I is inverted in closed
form by swapping the inverse and the mean: the mean of the Sherman-Morrison inverses of the rank-one
terms,

    (F_l + lambda_l I)^{-1}  ~  (1/(N lambda_l)) sum_i (I - g_il g_il^T / (lambda_l + |g_il|^2)),

and layers are independent (block-diagonal), so

    tau[q, k] = -(1/N) sum_l v_ql^T (F_l + lambda_l I)^{-1} g_kl       (1/N, sign: methods/context.py)
              = -(1/N) sum_l (1/lambda_l) [v_ql . g_kl - (1/N) sum_i c_il (v_ql . g_il)(g_il . g_kl)],
    c_il = 1 / (lambda_l + |g_il|^2).

Layers (option `layers`): `modules` (default, as dattri's IFAttributorDataInf: the parameters of one
module, e.g. a Linear's weight and bias, form one layer) or `parameters` (every parameter tensor, as
DataInf's code does with the LoRA A and B matrices). lambda_l = damping_rel x mean_i |g_il|^2 / d_l,
the mean squared gradient entry of the layer (DataInf's default, damping_rel 0.1), or the absolute
`damping` for every layer (dattri's `regularization`).

Memory: only [chunk, P] gradients, three passes over the training set (norms and v . g; the weighted
sum sum_i c_il (v_ql . g_il) g_il; the scores), unless the N x P gradients fit in `keep_gradients`
numbers, when they are computed once and kept.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import TdaError
from ..gradients import param_slices
from .base import Method


def layer_slices(params: dict, layers: str) -> list[slice]:
    """Columns of each layer in the flat gradient layout (modules: consecutive parameters of one module)."""
    slices = param_slices(params)
    if layers == "parameters":
        return list(slices.values())
    groups: dict[str, slice] = {}
    for name, sl in slices.items():
        module = name.rpartition(".")[0]
        prev = groups.get(module)
        if prev is not None and prev.stop != sl.start:
            raise TdaError(f"datainf: the parameters of module '{module}' are not consecutive; use layers: parameters")
        groups[module] = sl if prev is None else slice(prev.start, sl.stop)
    return list(groups.values())


def datainf_scores(grad_chunks, V: torch.Tensor, cols: list[slice], n_train: int, damping_rel: float,
                   damping: float | None) -> torch.Tensor:
    """[Q, N] DataInf scores (float64) from `grad_chunks()`, a function returning an iterator over the
    [chunk, P] training gradients in order, and the [Q, P] query gradients V."""
    V = V.double()
    L = len(cols)
    sq = []  # [chunk, L] squared norms per layer
    dots = []  # [Q, chunk, L] v_ql . g_il
    for g in grad_chunks():
        g = g.double()
        sq.append(torch.stack([g[:, c].pow(2).sum(1) for c in cols], 1))
        dots.append(torch.stack([V[:, c] @ g[:, c].T for c in cols], 2))
    sq, dots = torch.cat(sq), torch.cat(dots, 1)  # [N, L], [Q, N, L]
    if damping is not None:
        lam = torch.full((L,), float(damping), dtype=torch.float64, device=V.device)
    else:
        dims = torch.tensor([c.stop - c.start for c in cols], dtype=torch.float64, device=V.device)
        lam = damping_rel * sq.mean(0) / dims
    if float(lam.min()) <= 0:
        raise TdaError("datainf: a layer has zero damping (all its gradients vanish and damping_rel is 0); "
                       "set damping > 0")
    weights = dots / (lam + sq)[None]  # [Q, N, L] c_il (v_ql . g_il)
    W = torch.zeros_like(V)  # per layer: sum_i c_il (v_ql . g_il) g_il
    start = 0
    for g in grad_chunks():
        g = g.double()
        w = weights[:, start : start + len(g)]
        for l, c in enumerate(cols):
            W[:, c] += w[:, :, l] @ g[:, c]
        start += len(g)
    U = torch.zeros_like(V)  # the transformed queries (F + lambda)^{-1} v, per layer
    for l, c in enumerate(cols):
        U[:, c] = (V[:, c] - W[:, c] / n_train) / lam[l]
    out = [U @ g.double().T for g in grad_chunks()]
    return -torch.cat(out, 1) / n_train


class DataInf(Method):
    name = "datainf"  # options: methods/options.py DATAINF

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        params = ctx.params(seed)
        cols = layer_slices(params, self.opts["layers"])
        n_params = sum(p.numel() for p in params.values())

        def compute():
            for start in range(0, ctx.n_train, ctx.chunk_size):
                rows = slice(start, start + ctx.chunk_size)
                yield ctx.train_grads(seed, params, x=ctx.train_x[rows], y=ctx.train_y[rows])

        if ctx.n_train * n_params <= int(self.opts["keep_gradients"]):
            kept = list(compute())
            grad_chunks = lambda: iter(kept)  # noqa: E731
        else:
            grad_chunks = compute
        V = ctx.query_grads(seed, params)
        tau = datainf_scores(grad_chunks, V, cols, ctx.n_train, float(self.opts["damping_rel"]), self.opts["damping"])
        return tau.cpu().numpy().astype(np.float32)
