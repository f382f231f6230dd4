"""Per-example gradients with torch.func (functional_call + vmap(grad)), chunked, flattened.

The flattened layout (parameter order of `model.named_parameters()`) is shared by every method and
by the curvature code, so `flat[:, slices[name]]` is the gradient of one parameter tensor.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

PerExampleFn = Callable  # fn(call, x, y) -> [B] values


def param_slices(params: dict[str, torch.Tensor]) -> dict[str, slice]:
    out, start = {}, 0
    for name, p in params.items():
        out[name] = slice(start, start + p.numel())
        start += p.numel()
    return out


def flatten(tensors: dict[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
    lead = next(iter(tensors.values())).shape[:batch_dims]
    return torch.cat([t.reshape(*lead, -1) for t in tensors.values()], dim=-1)


def per_example_grads(
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    fn: PerExampleFn,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk_size: int = 256,
    projector: Callable[[torch.Tensor], torch.Tensor] | None = None,
    desc: str | None = None,
) -> torch.Tensor:
    """[n, P] gradients of fn at each example (or [n, k] after `projector`), float32 (float64 stays float64)."""
    device = next(iter(params.values())).device
    buffers = {k: v.to(device) for k, v in model.named_buffers()}
    params = {k: v.detach() for k, v in params.items()}

    def single(p, xi, yi):
        call = lambda inp: functional_call(model, (p, buffers), (inp,))  # noqa: E731
        return fn(call, xi[None], yi[None])[0]

    per_example = vmap(grad(single), in_dims=(None, 0, 0))
    chunks = []
    starts = range(0, len(x), chunk_size)
    for s in tqdm(starts, desc=desc, leave=False, disable=None if desc else True):
        g = flatten(per_example(params, x[s : s + chunk_size].to(device), y[s : s + chunk_size].to(device)), 1)
        chunks.append(projector(g) if projector is not None else g)
    out = torch.cat(chunks)
    return out if out.dtype == torch.float64 else out.float()
