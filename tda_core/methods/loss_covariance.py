"""Loss covariance: the Bayesian influence function (Kreer et al. 2025, "Bayesian Influence Functions
for Hessian-Free Data Attribution"), in the spirit of Daunce (Pan et al. 2025, covariance of losses
across perturbed models), around each trained full-data model theta* (the seed's final checkpoint).

Models theta_k, k = 1..K (n_samples), are drawn from the distribution localised at theta*

    p(w)  ~  exp(-beta N [L(w) + wd/2 |w|^2 + d/2 |w - theta*|^2]),

L = the mean attribution loss over the N training examples, wd = the optimizer's weight decay,
d = `localization` (in the curvature units of the mean loss), beta = the inverse temperature on the
summed loss. Including z_i (weight 1 in the summed loss, i.e. 1/N in the mean) adds beta L_i to the
exponent, and d E_p[f_q] / d eps_i = -beta Cov_p(L_i, f_q), so

    tau[q, i] = -beta Cov_k(L_i(theta_k), f_q(theta_k))                    (sign: methods/context.py)

with the sample covariance over the K models (normalised by K - 1); only forward passes evaluate
L_i (ctx.task.attribution_loss) and f_q (ctx.task.measure). For a quadratic loss (p Gaussian) this
is exactly -(1/N) v_q^T (H + wd + d)^{-1} g_i, the influence function with damping d: beta sets how
far the samples go (linear regime: small fluctuations), not the scale of tau.

Sampling (option `noise`):
  sgld      a stochastic-gradient Langevin chain started at theta*: per step, a mini-batch of
            batch_size examples (drawn with replacement; all N when batch_size >= N) estimates grad L, and
                w <- w - (step_size / 2) (grad L + wd w + d (w - theta*)) + sqrt(step_size / (beta N)) xi
            (SGLD on the energy above with step step_size / (beta N)); burn_in steps, then one model
            every `thin` steps. Needs one backward pass per step. Discretisation inflates the variance
            along curvature m by 1 / (1 - step_size m / 4), and mini-batch gradient noise adds
            (step_size / 2)^2 Var(grad) per step to the injected step_size / (beta N): keep both small.
  gaussian  theta* + N(0, I / (beta N (wd + d))): the same distribution with the loss curvature left
            out (forward passes only); its linear limit is -(1/N) v_q . g_i / (wd + d), grad_dot's.
Seeds: per_seed (each full-data model gets its own chain); the leaderboard's seed-averaged row is the
covariance pooled over the R chains. Options: methods/options.py LOSS_COVARIANCE.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.func import functional_call

from ..errors import TdaError
from .base import Method


def _salted_seed(ctx, opts) -> int:
    """The chain's seed: the full-data seed (through ctx.rng) and the option sample_seed."""
    base = int(ctx.rng("loss_covariance").integers(2**32))
    return int(np.random.SeedSequence([base, int(opts["sample_seed"])]).generate_state(1, np.uint64)[0] >> 1)


def sample_params(ctx, seed: int, opts: dict):
    """Yield the K sampled parameter dicts (on ctx.device, detached) of the seed's chain, in order."""
    model = ctx.model(seed)
    theta = {k: v.detach().clone() for k, v in ctx.params(seed).items()}
    buffers = {k: v.to(ctx.device) for k, v in model.named_buffers()}
    n = ctx.n_train
    wd = ctx.trajectory(seed).weight_decay
    beta, d = float(opts["beta"]), float(opts["localization"])
    if beta <= 0 or d < 0 or wd + d <= 0:
        raise TdaError(f"loss_covariance: need beta > 0 and localization + weight decay > 0 "
                       f"(beta {beta}, localization {d}, weight decay {wd})")
    K = int(opts["n_samples"])
    if K < 2 or int(opts["thin"]) < 1 or int(opts["burn_in"]) < 0 or int(opts["batch_size"]) < 1 \
            or float(opts["step_size"]) <= 0:
        raise TdaError(f"loss_covariance: need n_samples >= 2, thin >= 1, burn_in >= 0, batch_size >= 1 and "
                       f"step_size > 0 (n_samples {K}, thin {opts['thin']}, burn_in {opts['burn_in']}, "
                       f"batch_size {opts['batch_size']}, step_size {opts['step_size']})")
    gen = torch.Generator(device=ctx.device).manual_seed(_salted_seed(ctx, opts))
    if opts["noise"] == "gaussian":
        sigma = 1.0 / math.sqrt(beta * n * (wd + d))
        for _ in range(K):
            yield {k: v + sigma * torch.randn(v.shape, generator=gen, device=v.device, dtype=v.dtype)
                   for k, v in theta.items()}
        return
    step, thin, burn_in = float(opts["step_size"]), int(opts["thin"]), int(opts["burn_in"])
    noise = math.sqrt(step / (beta * n))
    x, y = ctx.train_x.to(ctx.device), ctx.train_y.to(ctx.device)
    batch = int(opts["batch_size"])
    w = {k: v.clone() for k, v in theta.items()}
    for t in range(burn_in + K * thin):
        if batch >= n:  # the exact gradient: mini-batch noise adds to the injected noise (more variance)
            idx = torch.arange(n, device=ctx.device)
        else:
            idx = torch.randint(n, (batch,), generator=gen, device=ctx.device)
        wg = {k: v.requires_grad_(True) for k, v in w.items()}
        call = lambda inp: functional_call(model, (wg, buffers), (inp,))  # noqa: E731
        loss = ctx.task.attribution_loss(call, x[idx], y[idx]).mean()
        if not torch.isfinite(loss):
            raise TdaError(f"loss_covariance: the SGLD chain diverged at step {t} (mini-batch loss {float(loss)}); "
                           f"lower step_size (now {step}) or raise beta")
        grads = torch.autograd.grad(loss, list(wg.values()))
        with torch.no_grad():
            w = {k: v - (step / 2) * (g + wd * v + d * (v - theta[k]))
                 + noise * torch.randn(v.shape, generator=gen, device=v.device, dtype=v.dtype)
                 for (k, v), g in zip(wg.items(), grads)}
        if t >= burn_in and (t - burn_in) % thin == thin - 1:
            yield {k: v.detach() for k, v in w.items()}


def _values(ctx, model, params, buffers, fn, x, y) -> torch.Tensor:
    """[n] fn(call, x, y) per example, float64, forward passes only, in chunks."""
    call = lambda inp: functional_call(model, (params, buffers), (inp,))  # noqa: E731
    with torch.no_grad():
        return torch.cat([fn(call, x[s : s + ctx.chunk_size].to(ctx.device), y[s : s + ctx.chunk_size].to(ctx.device))
                          .double() for s in range(0, len(x), ctx.chunk_size)])


def losses_and_measurements(ctx, model, params) -> tuple[torch.Tensor, torch.Tensor]:
    """([N] training losses L_i, [Q] measurements f_q) at `params`."""
    buffers = {k: v.to(ctx.device) for k, v in model.named_buffers()}
    return (_values(ctx, model, params, buffers, ctx.task.attribution_loss, ctx.train_x, ctx.train_y),
            _values(ctx, model, params, buffers, ctx.task.measure, ctx.query_x, ctx.query_y))


class LossCovariance(Method):
    name = "loss_covariance"  # options: methods/options.py LOSS_COVARIANCE

    def score(self, ctx) -> np.ndarray:
        seed = ctx.seed
        model = ctx.model(seed)
        # centred at theta*'s values: the covariance is unchanged and float32 losses lose less to cancellation
        loss0, f0 = losses_and_measurements(ctx, model, ctx.params(seed))
        k = 0
        s_l = torch.zeros_like(loss0)
        s_f = torch.zeros_like(f0)
        s_fl = torch.zeros(len(f0), len(loss0), dtype=torch.float64, device=loss0.device)
        for params in sample_params(ctx, seed, self.opts):
            loss, f = losses_and_measurements(ctx, model, params)
            if not (torch.isfinite(loss).all() and torch.isfinite(f).all()):
                raise TdaError(f"loss_covariance: non-finite loss at sample {k}; lower step_size or raise beta")
            loss, f = loss - loss0, f - f0
            s_l += loss
            s_f += f
            s_fl += f[:, None] * loss[None, :]
            k += 1
        cov = (s_fl - s_f[:, None] * s_l[None, :] / k) / (k - 1)
        return (-float(self.opts["beta"]) * cov).cpu().numpy().astype(np.float32)
