"""Losses and measurements, written for batched model calls so torch.func can vmap them.

A task turns `call(inputs) -> outputs` plus a batch into per-example values:
  loss(call, x, y, aux)      training loss per example (aux: the task's random draws, or None)
  attribution_loss(call,x,y) deterministic per-example loss whose gradient is g_i
  measure(call, x, y)        the measurement f(z_q, theta) of docs/design.md, section Notation
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


class DeterministicLossTask:
    """What the tasks without random draws share: no aux draws in training, the training loss is the
    attribution loss, and the network sees the examples themselves."""

    def sample_aux(self, n: int, generator: torch.Generator):
        return None

    def attribution_loss(self, call: Call, x, y) -> torch.Tensor:
        return self.loss(call, x, y)

    def network_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ClassificationTask(DeterministicLossTask):
    def __init__(self, measurement: str = "margin"):
        if measurement not in ("margin", "loss"):
            raise ConfigError(f"measurement '{measurement}' does not apply to classification (use margin or loss)")
        self.measurement = measurement

    def loss(self, call: Call, x, y, aux=None) -> torch.Tensor:
        return F.cross_entropy(call(x), y, reduction="none")

    def measure(self, call: Call, x, y) -> torch.Tensor:
        logits = call(x)
        if self.measurement == "loss":
            return F.cross_entropy(logits, y, reduction="none")
        return margin(logits, y)

    def sample_fisher_targets(self, call: Call, x, generator: torch.Generator) -> torch.Tensor:
        """Labels drawn from the model's predictive distribution (true-Fisher curvature)."""
        probs = torch.softmax(call(x).detach(), dim=-1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(x.device)


class RegressionTask(DeterministicLossTask):
    """Squared error with the Gaussian likelihood's scaling: loss = 0.5 ||f(x) - y||^2 (the negative
    log-likelihood of y ~ N(f(x), I) up to a constant), so the GGN has the identity as output Hessian
    and the true Fisher samples y ~ N(f, I). Outputs [B, k]; y [B] (k = 1) or [B, k]."""

    def __init__(self, measurement: str = "loss"):
        if measurement not in ("loss", "prediction"):
            raise ConfigError(f"measurement '{measurement}' does not apply to regression (use loss or prediction)")
        self.measurement = measurement

    def loss(self, call: Call, x, y, aux=None) -> torch.Tensor:
        out = call(x)
        return 0.5 * (out - y.reshape(out.shape).to(out.dtype)).pow(2).flatten(1).sum(-1)

    def measure(self, call: Call, x, y) -> torch.Tensor:
        if self.measurement == "loss":
            return self.loss(call, x, y)
        return call(x).flatten(1).sum(-1)  # the prediction (summed over outputs if k > 1)

    def sample_fisher_targets(self, call: Call, x, generator: torch.Generator) -> torch.Tensor:
        """y ~ N(f(x), I): the model's predictive distribution (true-Fisher curvature)."""
        out = call(x).detach()
        noise = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
        return out + noise

    def expected_fisher_rows(self, call: Call, x, chunk_size: int = 256):
        """(inputs, targets, weights) whose weighted losses give exactly the GGN J^T J: for k outputs,
        2k rows per example with targets f -/+ sqrt(k) e_j and weight 1/(2k) (sum w s s^T = I)."""
        with torch.no_grad():
            out = torch.cat([call(x[s : s + chunk_size]) for s in range(0, len(x), chunk_size)])
        flat = out.flatten(1)
        k = flat.shape[1]
        eye = torch.eye(k, dtype=flat.dtype, device=flat.device) * k**0.5
        shifts = torch.cat([eye, -eye])  # [2k, k]
        targets = (flat[None] + shifts[:, None]).reshape(2 * k * len(x), *out.shape[1:])
        xs = x.repeat(2 * k, *([1] * (x.ndim - 1)))
        return xs, targets, torch.full((len(xs),), 1.0 / (2 * k), dtype=torch.float64, device=x.device)


IGNORE_INDEX = -100  # target of a padded position (transformers' convention): it adds nothing to any loss


class LanguageModelTask(DeterministicLossTask):
    """Next-token prediction on token sequences: x = input ids [B, T] (int64), y = target ids [B, T], the
    inputs shifted by one, IGNORE_INDEX where the position is padding. Sequences are right-padded, so
    with causal attention a padded position changes no real position's output, and masking its target
    removes it from every loss, measurement and curvature fit (no attention mask is needed).

    measurement:
      loss             the query sequence's mean token loss over its real positions (default)
      last_token_loss  the loss of the query's last real token alone: a per-token measurement
    """

    MEASUREMENTS = ("loss", "last_token_loss")

    def __init__(self, measurement: str = "loss"):
        if measurement not in self.MEASUREMENTS:
            raise ConfigError(f"measurement '{measurement}' does not apply to language models "
                              f"(use {' or '.join(self.MEASUREMENTS)})")
        self.measurement = measurement

    @staticmethod
    def token_losses(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-position negative log-likelihood [B, T], mask of real positions [B, T]); vmap-safe."""
        mask = y != IGNORE_INDEX
        logp = torch.log_softmax(logits.float() if logits.dtype == torch.float16 else logits, dim=-1)
        nll = -logp.gather(-1, torch.where(mask, y, torch.zeros_like(y))[..., None]).squeeze(-1)
        return nll * mask, mask

    def loss(self, call: Call, x, y, aux=None) -> torch.Tensor:
        nll, mask = self.token_losses(call(x), y)
        return nll.sum(-1) / mask.sum(-1).clamp_min(1)

    def measure(self, call: Call, x, y) -> torch.Tensor:
        if self.measurement == "loss":
            return self.loss(call, x, y)
        nll, mask = self.token_losses(call(x), y)
        positions = torch.arange(mask.shape[-1], device=mask.device)
        last = (mask * positions).amax(-1, keepdim=True)  # index of the last real target
        return nll.gather(-1, last).squeeze(-1)

    def sample_fisher_targets(self, call: Call, x, generator: torch.Generator, y=None) -> torch.Tensor:
        """Next tokens drawn from the model's predictive distribution at every position (true Fisher);
        positions whose target `y` is padding stay IGNORE_INDEX."""
        logits = call(x).detach()
        probs = torch.softmax(logits.double(), dim=-1).reshape(-1, logits.shape[-1])
        draws = torch.multinomial(probs.cpu(), 1, generator=generator).reshape(logits.shape[:-1]).to(x.device)
        return draws if y is None else torch.where(y == IGNORE_INDEX, torch.full_like(draws, IGNORE_INDEX), draws)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of the true class minus log-sum-exp of the others (= log p / (1 - p))."""
    true = logits.gather(-1, y[..., None]).squeeze(-1)
    is_true = torch.arange(logits.shape[-1], device=logits.device) == y[..., None]  # vmap-safe one-hot
    others = logits.masked_fill(is_true, float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def build_task(cfg: dict):
    """The experiment's task by its kind, measuring its `measurement` (its default depends on the kind:
    tda_core.spec)."""
    from .spec import ExperimentSpec

    spec = ExperimentSpec.of(cfg)
    if spec.kind == "diffusion":
        from .diffusion import DiffusionTask

        return DiffusionTask(cfg)
    if spec.kind == "language_model":
        return LanguageModelTask(spec.measurement)
    if spec.kind == "regression":
        return RegressionTask(spec.measurement)
    return ClassificationTask(spec.measurement)
