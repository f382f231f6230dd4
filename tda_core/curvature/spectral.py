"""Spectral filters: functions of one curvature block's eigenvalues -> multipliers (same shape).

IF, SOURCE and truncated unrolling differ only in the filter applied between query and train
gradients (docs/design.md, section Estimators). `Curvature.precondition(vectors, f)` rotates each block into its
eigenbasis, multiplies by f(lam) elementwise and rotates back, i.e. computes f(H) @ vector.
A filter receives the whole eigenvalue tensor of one block, so per-layer damping (a multiple of
the block's mean eigenvalue) needs no extra bookkeeping.
"""
from __future__ import annotations

from typing import Callable

import torch

SpectralFilter = Callable[[torch.Tensor], torch.Tensor]

_MIN_DAMPING = 1e-8  # floor so a block whose curvature is all zero still gives finite values


def damped_inverse(damping: float | None = None, damping_rel: float = 0.1) -> SpectralFilter:
    """IF filter 1 / (lam + d): d = `damping` if given, else `damping_rel` x mean(lam) of the block."""

    def f(lam: torch.Tensor) -> torch.Tensor:
        d = float(damping) if damping is not None else max(damping_rel * float(lam.mean()), _MIN_DAMPING)
        return 1.0 / (lam.clamp_min(0) + d)

    return f


def source_response(c: float) -> SpectralFilter:
    """SOURCE segment response (1 - exp(-c lam)) / lam, with its limit c at lam -> 0 (no damping).

    c = eta K: the segment's (effective) learning rate times its number of steps.
    """

    def f(lam: torch.Tensor) -> torch.Tensor:
        lam = lam.clamp_min(0)
        x = c * lam
        small = x < 1e-6
        safe = torch.where(small, torch.ones_like(lam), lam)
        return torch.where(small, c * (1 - 0.5 * x), -torch.expm1(-x) / safe)

    return f


def propagator(c: float) -> SpectralFilter:
    """SOURCE segment Jacobian exp(-c lam) (gradient flow on the local quadratic for time c)."""
    return lambda lam: torch.exp(-c * lam.clamp_min(0))


def identity() -> SpectralFilter:
    return lambda lam: torch.ones_like(lam)


def power(p: float) -> SpectralFilter:
    """lam ** p (p = 1 gives the curvature itself, e.g. for checks against a dense matrix)."""
    return lambda lam: lam.clamp_min(0) ** p
