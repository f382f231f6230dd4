"""Influence functions with (E)K-FAC curvature, shared by if_kfac, if_ekfac, if_ensemble (and d-TDA).

    tau[q, i] = -(1/N) v_q^T (H + wd I + damping)^{-1} g_i
H: K-FAC / EK-FAC of the GGN (true Fisher) of the MEAN training loss at the seed's final
checkpoint; wd: the optimiser's (coupled L2) weight decay, part of the trained objective's
Hessian; damping: per layer, `damping_rel` x the layer's mean eigenvalue unless `damping` (an
absolute value) is given. The minus sign and 1/N follow the convention of methods/base.py: the
predicted change of f(z_q) from including z_i with weight 1/N in the mean loss (methods/context.py).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..curvature import Curvature, filters, fit_curvature
from .base import Method


def seed_curvature(ctx, seed: int, kind: str, ckpt_indices: list[int], opts: dict, average_weights: bool = False,
                   grad_scale: torch.Tensor | None = None, tag: str = "", pool: np.ndarray | None = None) -> Curvature:
    """(E)K-FAC at the seed's checkpoints `ckpt_indices` (statistics averaged, or weights averaged
    when `average_weights`) of the mean loss over the training examples `pool` (indices; None = all),
    read from ctx.cache (the experiment's shared fit, written by its fit_curvature job, else the
    method's own score directory) or fitted and cached there. The key names everything the fit depends
    on besides the config and the params' target view; the shared fit's folder is named by the curvature
    options (registry.curvature_fit)."""
    ckpts = ctx.checkpoints(seed)
    idx = [i % len(ckpts) for i in ckpt_indices]
    fisher = f"_s{opts['n_fisher_samples']}_f{opts['fisher_seed']}" if opts["fisher"] == "sampled" else "_expected"
    pool_key = "" if pool is None else "_pool" + hashlib.sha1(np.asarray(pool, np.int64).tobytes()).hexdigest()[:12]
    key = f"{kind}_seed{seed}_ckpt{'-'.join(map(str, idx))}{'_wavg' if average_weights else ''}{fisher}{pool_key}{tag}"

    def fit():
        plist = [ctx.params(seed, i) for i in idx]
        if average_weights:
            plist = [{k: torch.stack([p[k] for p in plist]).mean(0) for k in plist[0]}]
        return fit_curvature(ctx.model(seed), plist, ctx.task, ctx.train_x.to(ctx.device), kind=kind,
                             seed=1000 * int(opts["fisher_seed"]) + seed, n_samples=opts["n_fisher_samples"],
                             chunk_size=ctx.chunk_size, grad_scale=grad_scale, fisher=opts["fisher"], index=pool,
                             y=ctx.train_y.to(ctx.device))  # language models: padding stays out of the fit

    # a grad_scale must be named by `tag` to be cached (the key has to identify everything fitted)
    return ctx.cache.load_or_fit(key, fit, cache=bool(opts["cache"]) and (grad_scale is None or bool(tag)))


def final_curvature(ctx, seed: int, kind: str, opts: dict) -> Curvature:
    """(E)K-FAC of the seed's final model (the experiment's fit_curvature job runs this very function)."""
    return seed_curvature(ctx, seed, kind, [-1], opts)


def if_scores(ctx, seed: int, kind: str, opts: dict) -> torch.Tensor:
    """[Q, N] influence scores of one seed's final model."""
    curv = final_curvature(ctx, seed, kind, opts).shifted(ctx.trajectory(seed).weight_decay)
    params = ctx.params(seed)
    V = ctx.query_grads(seed, params).double()
    G = ctx.train_grads(seed, params).double()
    f = filters.damped_inverse(damping=opts["damping"], damping_rel=opts["damping_rel"])
    return -(curv.precondition(V, f) @ G.T) / ctx.n_train


class KroneckerIF(Method):
    """Base of if_kfac / if_ekfac: subclasses set `name` and `kind`."""

    kind = "ekfac"  # options (registry rows): methods/options.py IF

    def score(self, ctx) -> np.ndarray:
        total = sum(if_scores(ctx, s, self.kind, self.opts) for s in ctx.seeds)
        return (total / len(ctx.seeds)).cpu().numpy().astype(np.float32)
