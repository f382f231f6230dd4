"""Losses and measurements, written for batched model calls so torch.func can vmap them.

A task turns `call(inputs) -> outputs` plus a batch into per-example values:
  loss(call, x, y, aux)      training loss per example (aux: the task's random draws, or None)
  attribution_loss(call,x,y) deterministic per-example loss whose gradient is g_i
  measure(call, x, y)        the measurement f(z_q, theta) of DESIGN.md section 1
  network_inputs(x)          what attribution_loss feeds the network for a batch (x itself for
                             classification; each image at the fixed noise draws for diffusion), so
                             curvature code can differentiate the network outputs that loss sees
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import ConfigError

Call = Callable[[torch.Tensor], torch.Tensor]


class ClassificationTask:
    def __init__(self, measurement: str = "margin"):
        if measurement not in ("margin", "loss"):
            raise ConfigError(f"measurement '{measurement}' does not apply to classification (use margin or loss)")
        self.measurement = measurement

    def sample_aux(self, n: int, generator: torch.Generator):
        return None

    def loss(self, call: Call, x, y, aux=None) -> torch.Tensor:
        return F.cross_entropy(call(x), y, reduction="none")

    def attribution_loss(self, call: Call, x, y) -> torch.Tensor:
        return self.loss(call, x, y)

    def network_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def measure(self, call: Call, x, y) -> torch.Tensor:
        logits = call(x)
        if self.measurement == "loss":
            return F.cross_entropy(logits, y, reduction="none")
        return margin(logits, y)

    def sample_fisher_targets(self, call: Call, x, generator: torch.Generator) -> torch.Tensor:
        """Labels drawn from the model's predictive distribution (true-Fisher curvature)."""
        probs = torch.softmax(call(x).detach(), dim=-1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(x.device)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of the true class minus log-sum-exp of the others (= log p / (1 - p))."""
    true = logits.gather(-1, y[..., None]).squeeze(-1)
    is_true = torch.arange(logits.shape[-1], device=logits.device) == y[..., None]  # vmap-safe one-hot
    others = logits.masked_fill(is_true, float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def build_task(exp: dict):
    if exp.get("kind", "classification") == "diffusion":
        from .diffusion import DiffusionTask

        return DiffusionTask(exp)
    return ClassificationTask(exp.get("measurement", "margin"))
