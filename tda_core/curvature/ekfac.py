"""Fitting K-FAC / EK-FAC curvature over a training set, at one or several sets of parameters.

EK-FAC (George et al. 2018): keep K-FAC's eigenbasis Q = Q_S (x) Q_A, but re-fit the diagonal
    lam[o, i] = mean_n ( Q_S^T G_n Q_A )[o, i]^2
from per-example gradients G_n (at sampled targets) rotated into that basis: the exact diagonal
of Q^T F Q, hence never worse than K-FAC's eS eA^T in Frobenius norm. Parameters outside
Linear/Conv2d layers get the Fisher diagonal mean_n g_n^2 (the same construction in the identity
basis): LayerNorm, embeddings, pos_embed / cls_token, lone biases are never dropped.

Several parameter sets (SOURCE: the checkpoints of one segment): A and S are averaged over
them and eigendecomposed once; lam is re-fitted at each in that shared basis and averaged.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.func import functional_call

from ..errors import ConfigError, TdaError
from ..tasks import ClassificationTask, LanguageModelTask
from ..gradients import param_slices, per_example_grads
from .blocks import Curvature, DiagBlock, KronBlock
from .kfac import eigh64, fit_factors, kron_specs


def sample_targets(task, model, params, x, generator: torch.Generator, chunk_size: int = 256,
                   y: torch.Tensor | None = None) -> torch.Tensor:
    """One target per example drawn from the model's predictive distribution at `params`.

    y: the examples' own targets, handed to tasks whose sampler takes them (LanguageModelTask: the
    padded positions of y stay IGNORE_INDEX, so they carry no loss in the fit)."""
    if not hasattr(task, "sample_fisher_targets"):
        raise TdaError(f"{type(task).__name__} cannot sample Fisher targets; K-FAC/EK-FAC need them")
    call = _caller(model, params, x.device)
    takes_y = y is not None and "y" in inspect.signature(task.sample_fisher_targets).parameters
    with torch.no_grad():
        return torch.cat([task.sample_fisher_targets(call, x[s : s + chunk_size], generator,
                                                     **({"y": y[s : s + chunk_size]} if takes_y else {}))
                          for s in range(0, len(x), chunk_size)])


def fisher_rows(task, model, params, x, fisher: str, n_samples: int, generator, chunk_size: int = 256, y=None):
    """(inputs, targets, weights) whose weighted per-row losses define the Fisher of the mean loss.

    sampled:  each example repeated n_samples times, targets drawn from the model, weight 1/n_samples
              (y: the examples' own targets, for tasks that keep padding out of the draws)
    expected: classification: each example once per class c, weight p_c (the exact
              expectation over the model's predictive distribution, i.e. the GGN, without Monte-Carlo
              noise; costs as much as n_samples = number of classes); regression: 2k rows per
              example (RegressionTask.expected_fisher_rows), the GGN with identity output Hessian;
              not for language models (one row per position and vocabulary entry: use sampled)
    """
    if fisher == "sampled":
        xs = x.repeat(n_samples, *([1] * (x.ndim - 1)))
        ys = None if y is None else y.repeat(n_samples, *([1] * (y.ndim - 1)))
        t = sample_targets(task, model, params, xs, generator, chunk_size, y=ys)
        return xs, t, torch.full((len(xs),), 1.0 / n_samples, dtype=torch.float64, device=x.device)
    if fisher != "expected":
        raise TdaError(f"unknown fisher '{fisher}' (sampled or expected)")
    if isinstance(task, LanguageModelTask):
        raise ConfigError("fisher: expected is not supported for language models (use fisher: sampled)")
    call = _caller(model, params, x.device)
    if hasattr(task, "expected_fisher_rows"):  # regression: the GGN with identity output Hessian
        return task.expected_fisher_rows(call, x, chunk_size)
    if not isinstance(task, ClassificationTask):
        raise TdaError("fisher='expected' needs a classification or regression task; use fisher='sampled'")
    with torch.no_grad():
        probs = torch.cat([torch.softmax(call(x[s : s + chunk_size]), -1) for s in range(0, len(x), chunk_size)])
    n_classes = probs.shape[1]
    xs = x.repeat(n_classes, *([1] * (x.ndim - 1)))
    t = torch.arange(n_classes, device=x.device).repeat_interleave(len(x))
    return xs, t, probs.T.reshape(-1).double()


def _caller(model, params, device):
    buffers = {k: v.to(device) for k, v in model.named_buffers()}
    return lambda inp: functional_call(model, (params, buffers), (inp,))


def fit_curvature(
    model: nn.Module,
    params_list: list[dict[str, torch.Tensor]] | dict[str, torch.Tensor],
    task,
    x: torch.Tensor,
    kind: str = "ekfac",
    seed: int = 0,
    n_samples: int = 1,
    chunk_size: int = 256,
    grad_scale: torch.Tensor | None = None,
    fisher: str = "sampled",
    index=None,
    y: torch.Tensor | None = None,
) -> Curvature:
    """K-FAC or EK-FAC curvature of the mean training loss (true Fisher = GGN for cross-entropy).

    params_list: one parameter dict, or several whose statistics are averaged (SOURCE segments).
    n_samples:   sampled targets per example (Monte-Carlo samples of the Fisher).
    fisher:      "sampled" (default) or "expected" (classification: exact expectation over classes).
    grad_scale:  flat [P] vector s; EK-FAC then fits diag(s) F diag(s) in K-FAC's basis of F
                 (used for Adam's preconditioner, see tda_core/methods/source.py).
    index:       int indices into x: the curvature of the mean loss over x[index] only (one
                 training stage's pool, SOURCE on multi-stage runs); None = all of x.
    y:           the examples' targets, for tasks whose Fisher sampler needs them: a language
                 model's padded positions (IGNORE_INDEX in y) get no sampled target, hence no loss
                 and no factor rows. Needed whenever the sequences are padded.
    """
    if kind not in ("kfac", "ekfac"):
        raise TdaError(f"unknown curvature kind '{kind}' (kfac or ekfac)")
    if grad_scale is not None and kind != "ekfac":
        raise TdaError("grad_scale needs kind='ekfac' (K-FAC eigenvalues cannot absorb it)")
    if index is not None:
        x = x[torch.as_tensor(index, device=x.device)]
        y = None if y is None else y[torch.as_tensor(index, device=y.device)]
    y = None if y is None else y.to(x.device)
    if isinstance(params_list, dict):
        params_list = [params_list]
    params_list = [{k: v.detach().to(x.device) for k, v in p.items()} for p in params_list]
    slices = param_slices(params_list[0])
    specs = kron_specs(model, slices)
    gen = torch.Generator().manual_seed(int(seed))

    # Pass 1: factors at every parameter set, averaged; one eigendecomposition per layer.
    rows, A, S = [], {}, {}
    for params in params_list:
        xs, t, w = fisher_rows(task, model, params, x, fisher, n_samples, gen, chunk_size, y=y)
        rows.append((xs, t, w))
        fac = fit_factors(model, params, specs, task, xs, t, chunk_size, weights=w)
        for k in fac.A:
            A[k] = A.get(k, 0) + fac.A[k] / len(params_list)
            S[k] = S.get(k, 0) + fac.S[k] / len(params_list)
    blocks: list = []
    for s in specs:
        eA, QA = eigh64(A[s.module])
        eS, QS = eigh64(S[s.module])
        blocks.append(KronBlock(s.module, s.weight, s.bias, s.d_out, s.d_in, QA, QS, torch.outer(eS, eA), eA, eS,
                                 transposed=s.transposed))
    covered = {n for b in blocks for n in b.names}
    blocks += [DiagBlock(n, torch.zeros(slices[n].stop - slices[n].start, dtype=torch.float64, device=x.device))
               for n in slices if n not in covered]
    curv = Curvature(kind, slices, blocks, {"seed": seed, "n_samples": n_samples, "fisher": fisher,
                                            "n_points": len(params_list), "n_examples": len(x)})
    curv.check_coverage()

    # Pass 2: per-example gradients at the same targets -> EK-FAC eigenvalues and the diagonal blocks.
    lam = _second_moments(curv, model, params_list, task, rows, chunk_size, grad_scale, kron=(kind == "ekfac"))
    for b in curv.blocks:
        if isinstance(b, DiagBlock) or kind == "ekfac":
            b.lam = lam[id(b)]
    return curv


def _second_moments(curv, model, params_list, task, rows, chunk_size, grad_scale, kron):
    """weighted mean over rows (one example = total weight 1) and parameter sets of squared
    per-example gradients, per block (rotated into the eigenbasis for Kronecker blocks when `kron`)."""
    loss = lambda call, xb, yb: task.loss(call, xb, yb)  # noqa: E731
    acc = {id(b): torch.zeros_like(b.lam) for b in curv.blocks}
    total = 0.0
    for params, (xs, t, w) in zip(params_list, rows):
        total += float(w.sum())
        for start in range(0, len(xs), chunk_size):
            g = per_example_grads(model, params, loss, xs[start : start + chunk_size],
                                  t[start : start + chunk_size], chunk_size).double()
            g = g * w[start : start + chunk_size, None].to(g).sqrt()
            if grad_scale is not None:
                g = g * grad_scale.to(g)
            for b in curv.blocks:
                if isinstance(b, DiagBlock):
                    acc[id(b)] += (g[:, curv.slices[b.name]] ** 2).sum(0)
                elif kron:
                    rot = b.QS.T.to(g) @ curv.as_matrix(b, g) @ b.QA.to(g)
                    acc[id(b)] += (rot**2).sum(0)
    return {k: v / total for k, v in acc.items()}
