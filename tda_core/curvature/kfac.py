"""K-FAC factors (Martens & Grosse 2015; KFC for convolutions, Grosse & Martens 2016) via hooks.

For a layer out = W a (+ b) applied at T positions per example (T = 1 for a plain Linear on
[B, d]; T tokens for a Linear on [B, T, d] as in a ViT; T output positions of a Conv2d, with a
the unfolded patch), the per-example gradient is G_n = sum_t s_nt a_nt^T (s = d loss_n / d out_t,
a with a trailing 1 for the bias). K-FAC approximates the Fisher of vec(G) by A (x) S with
    A = mean over examples AND positions of a a^T          [d_in (+1), d_in (+1)]
    S = mean over examples of sum over positions of s s^T  [d_out, d_out]
(KFC's spatially-uncorrelated-derivatives approximation: E[vec G vec G^T] ~ T E_t[aa^T] (x) E_t[ss^T]).
Losses use targets sampled from the model's predictive distribution, so S estimates the true
Fisher (= GGN for cross-entropy), not the empirical Fisher.

Language models (tda_core.tasks.LanguageModelTask, right-padded sequences): a position whose target
is IGNORE_INDEX carries no loss, so its output gradient s is exactly 0 (causal attention: no real
position depends on it); its activation a is not 0, so A masks it out and averages over the real
positions only (as kronfluence's attention mask does). Padding therefore changes no factor.
transformers' Conv1D (GPT-2's attention and MLP projections: out = a W + b with W [in, out]) is
a Linear with the transposed weight; its block is marked `transposed` so the flat layout (W as
stored) maps onto G [d_out, d_in]. A weight shared by several modules (GPT-2's token embedding
and tied output head) is left to a diagonal block: one Kronecker factorisation per use would
cover it twice, and its per-example gradient is the sum over both uses.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..tasks import IGNORE_INDEX, LanguageModelTask


@dataclass
class KronSpec:
    module: str
    layer: nn.Module
    weight: str
    bias: str | None
    d_out: int
    d_in: int  # including the bias column
    transposed: bool = False  # weight stored [in, out] (transformers Conv1D)


def conv1d_type():
    """transformers' Conv1D class if transformers is loaded (no model can hold one otherwise)."""
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)


def shared_parameters(model: nn.Module) -> set[str]:
    """Names (every alias) of parameter tensors registered in more than one place (tied weights)."""
    aliases = defaultdict(list)
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases[id(p)].append(name)
    return {n for names in aliases.values() if len(names) > 1 for n in names}


def kron_specs(model: nn.Module, param_names) -> list[KronSpec]:
    """The modules K-FAC covers: nn.Linear, transformers' Conv1D, and nn.Conv2d with groups=1 and
    zero padding; not a module whose weight or bias is shared with another module (tied weights)."""
    names = set(param_names)
    shared = shared_parameters(model)
    conv1d = conv1d_type()
    specs = []
    for mname, m in model.named_modules():
        transposed = conv1d is not None and isinstance(m, conv1d)
        covered = transposed or isinstance(m, nn.Linear) or (
            isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros" and isinstance(m.padding, tuple)
        )
        w = f"{mname}.weight" if mname else "weight"
        b = f"{mname}.bias" if mname else "bias"
        if not covered or w not in names or w in shared or b in shared:
            continue
        b = b if m.bias is not None and b in names else None
        d_out = m.weight.shape[1] if transposed else m.weight.shape[0]
        d_in = m.weight.numel() // d_out + (1 if b else 0)
        specs.append(KronSpec(mname, m, w, b, d_out, d_in, transposed))
    return specs


def position_mask(task, targets: torch.Tensor) -> torch.Tensor | None:
    """[B, T] 1 at the positions that carry loss (language models: target not IGNORE_INDEX), else None."""
    if isinstance(task, LanguageModelTask):
        return (targets != IGNORE_INDEX).double()
    return None


def _input_rows(spec: KronSpec, inp: torch.Tensor) -> torch.Tensor:
    """[B, T, d_in]: the layer's input at every position (patches for a conv), 1 appended for the bias."""
    m = spec.layer
    if isinstance(m, nn.Conv2d):
        a = F.unfold(inp, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride).transpose(1, 2)
    else:
        a = inp.reshape(inp.shape[0], -1, inp.shape[-1])
    if spec.bias:
        a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
    return a


def _output_rows(spec: KronSpec, g: torch.Tensor) -> torch.Tensor:
    """[B, T, d_out]: gradient w.r.t. the layer's output at every position."""
    if isinstance(spec.layer, nn.Conv2d):
        return g.flatten(2).transpose(1, 2)
    return g.reshape(g.shape[0], -1, g.shape[-1])


@dataclass
class Factors:
    A: dict[str, torch.Tensor]  # module -> [d_in, d_in] float64
    S: dict[str, torch.Tensor]  # module -> [d_out, d_out] float64


def fit_factors(model: nn.Module, params: dict, specs: list[KronSpec], task, x: torch.Tensor,
                targets: torch.Tensor, chunk_size: int = 256, weights: torch.Tensor | None = None) -> Factors:
    """A and S of every spec at `params`, with the loss of each row at its given (sampled) target.

    weights: per-row weights w (default 1); S = sum_rows w s s^T / sum w, so rows that stand for one
    example's several targets (repeated inputs) average out. A is the plain mean over rows and
    positions (rows of one example share their activations); for a language model, over the
    positions whose target is not IGNORE_INDEX (position_mask).

    A module applied several times in one forward (weight sharing) contributes each call as more
    positions, consistent with its per-example gradient being the sum over all uses.
    """
    buffers = {k: v.to(x.device) for k, v in model.named_buffers()}
    p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    A = {s.module: torch.zeros(s.d_in, s.d_in, dtype=torch.float64, device=x.device) for s in specs}
    S = {s.module: torch.zeros(s.d_out, s.d_out, dtype=torch.float64, device=x.device) for s in specs}
    rows = {s.module: 0.0 for s in specs}
    chunk_mask = [None]  # [B, T] real positions of the current chunk (language models), else None

    def make_hook(spec):
        def hook(_module, inputs, output):
            a = _input_rows(spec, inputs[0].detach()).double()
            mask = chunk_mask[0]
            if mask is not None and a.shape[:2] == mask.shape:  # padded positions: no activation row
                a = a * mask[..., None]
                rows[spec.module] += float(mask.sum())
            else:
                rows[spec.module] += a.shape[0] * a.shape[1]
            A[spec.module] += torch.einsum("bti,btj->ij", a, a)

            def on_grad(g):
                s = _output_rows(spec, g.detach()).double()
                S[spec.module] += torch.einsum("bti,btj->ij", s, s)

            output.register_hook(on_grad)

        return hook

    handles = [s.layer.register_forward_hook(make_hook(s)) for s in specs]
    try:
        for start in range(0, len(x), chunk_size):
            xb, yb = x[start : start + chunk_size], targets[start : start + chunk_size]
            chunk_mask[0] = position_mask(task, yb)
            call = lambda inp: functional_call(model, (p, buffers), (inp,))  # noqa: E731
            # Sum (not mean) over the chunk: each example's output gradient is its own d loss_n / d out
            # (times sqrt(w), so that s s^T carries w).
            loss = task.loss(call, xb, yb)
            if weights is not None:
                loss = loss * weights[start : start + chunk_size].to(loss).sqrt()
            loss.sum().backward()
    finally:
        for h in handles:
            h.remove()
    n = float(weights.sum()) if weights is not None else len(x)
    return Factors({k: v / max(rows[k], 1) for k, v in A.items()}, {k: v / n for k, v in S.items()})


def eigh64(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of a symmetric matrix in float64 (eigenvalues clamped at 0)."""
    M = M.double()
    evals, evecs = torch.linalg.eigh(0.5 * (M + M.T))
    return evals.clamp_min(0), evecs
