"""Seeded random projections of flat gradients, generated block by block (no dense P x k matrix).

    proj = RandomProjector(n_params, k=256, seed=0, kind="rademacher")   # or "gaussian"
    phi = proj(g)          # [n, P] -> [n, k] = g @ R, R[j, :] ~ iid N(0, 1/k) or +-1/sqrt(k)

Rows of R are drawn in blocks of `block_rows` parameters, each from its own generator seeded by
(seed, block index), so R is the same whatever the chunking of examples, and only one block
(block_rows x k) is ever materialised. Blocks are cached while the whole matrix stays under
`cache_entries` numbers (small models); larger models regenerate them for every chunk of examples.
The same seed gives the same R on the same device type (CPU and CUDA generators differ).
"""
from __future__ import annotations

import torch

from .errors import ConfigError

KINDS = ("rademacher", "gaussian")


class RandomProjector:
    def __init__(self, n_params: int, k: int, seed: int = 0, kind: str = "rademacher", block_rows: int = 8192,
                 cache_entries: int = 2**26):
        if kind not in KINDS:
            raise ConfigError(f"unknown projection '{kind}'; known: {', '.join(KINDS)}")
        if k < 1:
            raise ConfigError(f"projection dimension must be >= 1, not {k}")
        self.n_params, self.k, self.seed, self.kind = n_params, k, int(seed), kind
        self.block_rows = block_rows
        self.cache = n_params * k <= cache_entries
        self._blocks: dict[tuple[int, str], torch.Tensor] = {}

    def block(self, b: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Rows [b * block_rows, ...) of R, as a [rows, k] tensor."""
        key = (b, str(device))
        if key in self._blocks:
            return self._blocks[key].to(dtype)
        rows = min(self.block_rows, self.n_params - b * self.block_rows)
        gen = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + b)
        if self.kind == "gaussian":
            r = torch.randn(rows, self.k, generator=gen, device=device, dtype=torch.float32)
        else:
            r = torch.randint(0, 2, (rows, self.k), generator=gen, device=device).float().mul_(2).sub_(1)
        r /= self.k**0.5
        if self.cache:
            self._blocks[key] = r
        return r.to(dtype)

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        if g.shape[-1] != self.n_params:
            raise ValueError(f"projector built for {self.n_params} parameters got vectors of {g.shape[-1]}")
        out = torch.zeros(*g.shape[:-1], self.k, device=g.device, dtype=g.dtype)
        for b, start in enumerate(range(0, self.n_params, self.block_rows)):
            out += g[..., start : start + self.block_rows] @ self.block(b, g.device, g.dtype)
        return out

    def dense(self, device="cpu") -> torch.Tensor:
        """The whole [P, k] matrix (tests and small models only)."""
        return torch.cat([self.block(b, torch.device(device)) for b in range(-(-self.n_params // self.block_rows))])
