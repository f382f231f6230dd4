"""The curvature object: a block-diagonal (over layers) eigendecomposed curvature matrix.

Blocks, in the flat parameter layout of tda_core.gradients (order of model.named_parameters()):
  KronBlock  one nn.Linear / nn.Conv2d / transformers Conv1D: its gradient as a matrix
             G [d_out, d_in (+1 bias column)] (a Conv1D stores its weight as [in, out], so its flat
             slice holds G's weight part transposed: `transposed`),
             curvature Q (diag lam) Q^T with Q = Q_S (x) Q_A, i.e. G -> Q_S^T G Q_A in the eigenbasis.
             lam [d_out, d_in] is eS eA^T for K-FAC, the re-fitted diagonal for EK-FAC.
  DiagBlock  every other parameter (LayerNorm, embeddings, pos_embed / cls_token, lone biases, a
             weight shared by several modules such as GPT-2's tied token embedding / output head):
             a diagonal curvature (identity eigenbasis), lam = the Fisher diagonal.
Cross-layer curvature is ignored (block-diagonal approximation), as in K-FAC / EK-FAC.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .. import io
from ..errors import ArtifactError
from .spectral import SpectralFilter


@dataclass
class KronBlock:
    module: str
    weight: str  # parameter names in the flat layout
    bias: str | None
    d_out: int
    d_in: int  # columns of the gradient matrix, including the bias column
    QA: torch.Tensor  # [d_in, d_in] float64, eigenvectors of A (columns)
    QS: torch.Tensor  # [d_out, d_out] float64, eigenvectors of S
    lam: torch.Tensor  # [d_out, d_in] float64 eigenvalues in the Q_S (x) Q_A basis
    eA: torch.Tensor | None = None  # K-FAC factor eigenvalues (kept for K-FAC / diagnostics)
    eS: torch.Tensor | None = None
    transposed: bool = False  # weight stored [in, out] (transformers Conv1D): flat slice = W-part of G^T

    @property
    def names(self) -> list[str]:
        return [self.weight] + ([self.bias] if self.bias else [])


@dataclass
class DiagBlock:
    name: str  # one parameter tensor
    lam: torch.Tensor  # [numel] float64

    @property
    def names(self) -> list[str]:
        return [self.name]


@dataclass
class Curvature:
    kind: str  # "kfac" | "ekfac"
    slices: dict[str, slice]  # flat layout
    blocks: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        return max(s.stop for s in self.slices.values())

    def check_coverage(self) -> None:
        """Every parameter belongs to exactly one block (nothing silently dropped)."""
        names = [n for b in self.blocks for n in b.names]
        if sorted(names) != sorted(self.slices):
            missing = set(self.slices) - set(names)
            raise ValueError(f"curvature blocks do not cover the parameters exactly (missing {sorted(missing)})")

    # -- the one operation every second-order method uses --------------------------------------
    def precondition(self, vectors: torch.Tensor, spectral_filter: SpectralFilter,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """f(H) @ v for each row v of `vectors` [n, P]: rotate into each block's eigenbasis,
        multiply by spectral_filter(lam), rotate back. Returns [n, P] in the input's dtype."""
        if vectors.ndim != 2 or vectors.shape[1] != self.n_params:
            raise ValueError(f"expected vectors [n, {self.n_params}], got {tuple(vectors.shape)}")
        out = torch.empty_like(vectors)
        for b in self.blocks:
            mult = spectral_filter(b.lam).to(dtype=dtype, device=vectors.device)
            if isinstance(b, DiagBlock):
                s = self.slices[b.name]
                out[:, s] = (vectors[:, s].to(dtype) * mult).to(vectors.dtype)
                continue
            G = self.as_matrix(b, vectors).to(dtype)
            QA, QS = b.QA.to(dtype=dtype, device=vectors.device), b.QS.to(dtype=dtype, device=vectors.device)
            rot = QS.T @ G @ QA  # [n, d_out, d_in] in the eigenbasis
            self._write_matrix(b, out, (QS @ (rot * mult) @ QA.T).to(vectors.dtype))
        return out

    def as_matrix(self, b: KronBlock, vectors: torch.Tensor) -> torch.Tensor:
        """[n, d_out, d_in]: the block's slice of flat vectors as gradient matrices (bias = last column)."""
        n = vectors.shape[0]
        flat = vectors[:, self.slices[b.weight]]
        W = flat.reshape(n, -1, b.d_out).transpose(1, 2) if b.transposed else flat.reshape(n, b.d_out, -1)
        if b.bias is None:
            return W
        return torch.cat([W, vectors[:, self.slices[b.bias]].reshape(n, b.d_out, 1)], dim=2)

    def _write_matrix(self, b: KronBlock, out: torch.Tensor, M: torch.Tensor) -> None:
        n = M.shape[0]
        W = M if b.bias is None else M[:, :, :-1]
        out[:, self.slices[b.weight]] = (W.transpose(1, 2) if b.transposed else W).reshape(n, -1)
        if b.bias is not None:
            out[:, self.slices[b.bias]] = M[:, :, -1]

    # -- modified copies -----------------------------------------------------------------------
    def shifted(self, shift: float | torch.Tensor) -> "Curvature":
        """H + D for a scalar D (e.g. weight decay) or a flat diagonal [P] (kept only on the
        diagonal of each block's eigenbasis: exact for scalars, the best diagonal otherwise)."""
        new = []
        for b in self.blocks:
            if isinstance(shift, (int, float)):
                add = torch.full_like(b.lam, float(shift))
            elif isinstance(b, DiagBlock):
                add = shift[self.slices[b.name]].to(b.lam)
            else:  # diag(Q^T D Q) for Q = Q_S (x) Q_A and D the block's slice as a matrix
                D = self.as_matrix(b, shift.reshape(1, -1).to(torch.float64))[0]
                add = (b.QS**2).T @ D @ (b.QA**2)
            new.append(replace(b, lam=b.lam + add))
        return replace(self, blocks=new)

    def dense(self) -> torch.Tensor:
        """The full [P, P] matrix (small models only; for tests and diagnostics)."""
        eye = torch.eye(self.n_params, dtype=torch.float64)
        return self.precondition(eye, lambda lam: lam)

    # -- persistence ---------------------------------------------------------------------------
    def state(self) -> dict:
        blocks = []
        for b in self.blocks:
            d = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in vars(b).items()}
            d["type"] = "kron" if isinstance(b, KronBlock) else "diag"
            blocks.append(d)
        return {"kind": self.kind, "slices": {k: [s.start, s.stop] for k, s in self.slices.items()},
                "blocks": blocks, "meta": self.meta}

    @classmethod
    def from_state(cls, state: dict) -> "Curvature":
        blocks = []
        for d in state["blocks"]:
            d = dict(d)
            kind = d.pop("type")
            blocks.append(KronBlock(**d) if kind == "kron" else DiagBlock(**d))
        slices = {k: slice(a, b) for k, (a, b) in state["slices"].items()}
        return cls(state["kind"], slices, blocks, state.get("meta", {}))

    def save(self, path, config_hash: str | None = None) -> None:
        io.save_torch(path, {"config_hash": config_hash, "curvature": self.state()})

    @classmethod
    def load(cls, path, expect_hash: str | None = None) -> "Curvature":
        blob = io.load_torch(path, expect_hash=expect_hash)
        if "curvature" not in blob:
            raise ArtifactError(f"{path} holds no curvature")
        return cls.from_state(blob["curvature"])
