"""Optimisers written as pure functions of (params, grads, state, lr).

Pure functions can be vmapped over a stack of models and differentiated through (the `unrolled`
method replays them with autograd). Semantics follow torch.optim.SGD / torch.optim.Adam with
coupled (L2) weight decay.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SGD:
    momentum: float = 0.0
    weight_decay: float = 0.0

    def init(self, params: Params) -> dict:
        return {"momentum_buffer": {k: torch.zeros_like(v) for k, v in params.items()}}

    def step(self, params: Params, grads: Params, state: dict, lr) -> tuple[Params, dict]:
        new_p, new_buf = {}, {}
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p
            buf = self.momentum * state["momentum_buffer"][k] + g if self.momentum else g
            new_buf[k] = buf
            new_p[k] = p - lr * buf
        return new_p, {"momentum_buffer": new_buf}

    @property
    def effective_lr_scale(self) -> float:
        """SOURCE treats heavy-ball momentum beta as plain SGD with rate eta / (1 - beta)."""
        return 1.0 / (1.0 - self.momentum)


@dataclass(frozen=True)
class Adam:
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def init(self, params: Params) -> dict:
        zeros = lambda: {k: torch.zeros_like(v) for k, v in params.items()}  # noqa: E731
        return {"exp_avg": zeros(), "exp_avg_sq": zeros(), "step": torch.zeros(())}

    def step(self, params: Params, grads: Params, state: dict, lr) -> tuple[Params, dict]:
        b1, b2 = self.betas
        t = state["step"] + 1
        m, v, new_p = {}, {}, {}
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p
            m[k] = b1 * state["exp_avg"][k] + (1 - b1) * g
            v[k] = b2 * state["exp_avg_sq"][k] + (1 - b2) * g * g
            m_hat = m[k] / (1 - b1**t)
            v_hat = v[k] / (1 - b2**t)
            new_p[k] = p - lr * m_hat / (_safe_sqrt(v_hat) + self.eps)
        return new_p, {"exp_avg": m, "exp_avg_sq": v, "step": t}

    @property
    def effective_lr_scale(self) -> float:
        return 1.0


def _safe_sqrt(v: torch.Tensor) -> torch.Tensor:
    """sqrt(v) with derivative 0 (not inf) at v = 0, so differentiating through Adam (the `unrolled`
    method) gives no NaN for parameters whose gradient is exactly zero (e.g. always-blank pixels)."""
    positive = v > 0
    return torch.where(positive, v, torch.ones_like(v)).sqrt() * positive


def build_optimizer(train_cfg: dict):
    if train_cfg["optimizer"] == "adam":
        return Adam(tuple(train_cfg["betas"]), weight_decay=train_cfg["weight_decay"])
    return SGD(train_cfg["momentum"], train_cfg["weight_decay"])
