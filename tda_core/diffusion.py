"""DDPM as a tda-bench task: epsilon-prediction training loss, fixed-draw denoising measurement, sampling.

The model is called as `call(pack_timestep(x_noisy, t))` (one tensor, see models/unet.py) and
predicts the added noise. Three per-example objectives, all vmap-safe (no data-dependent control
flow, no RNG inside):
  loss(call, x, y, aux)       training loss at the step's random (t, noise) draws, which the trainer
                              draws outside the vmapped step with `sample_aux`
  measure / attribution_loss  the denoising loss averaged over K FIXED (t, noise) draws, the same
                              for every model, every example and every call (common random numbers,
                              docs/design.md, section Notation), so differences between models are not draw noise
The noise-level schedule is diffusers' DDPMScheduler (`add_noise` for the forward process, `step`
for ancestral sampling in `generate`).
"""
from __future__ import annotations

import math

import torch

from .config import block_defaults
from .errors import ConfigError
from .models.unet import pack_timestep

Call = "Callable[[torch.Tensor], torch.Tensor]"

# Mirrors the `diffusion` block of tda_core/schemas/config.schema.yaml (used when the block is absent).
DEFAULTS = block_defaults("diffusion")  # the schema's (tda_core/schemas/config.schema.yaml)
# Mirrors the schema's `pictures` block (job-local: changing it retrains nothing).
PICTURE_DEFAULTS = block_defaults("pictures")
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashionmnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def make_scheduler(cfg: dict):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg["num_train_timesteps"], beta_schedule=cfg["beta_schedule"],
                         prediction_type="epsilon", clip_sample=True)


class DiffusionTask:
    def __init__(self, exp: dict):
        if exp.get("measurement", "denoising_loss") != "denoising_loss":
            raise ConfigError(f"experiment '{exp.get('name', '?')}' (kind: diffusion) needs measurement: "
                              f"denoising_loss, not '{exp['measurement']}'")
        name = exp["dataset"]["name"]
        if name not in IMAGE_SHAPES:
            raise ConfigError(f"kind: diffusion has no image shape for dataset '{name}'")
        self.cfg = {**DEFAULTS, **(exp.get("diffusion") or {})}
        self.image_shape = IMAGE_SHAPES[name]
        self.n_timesteps = self.cfg["num_train_timesteps"]
        self.scheduler = make_scheduler(self.cfg)
        self.draw_t, self.draw_noise = fixed_draws(self.cfg["measure_draws"], self.n_timesteps, self.image_shape,
                                                   self.cfg["draw_seed"])

    @property
    def n_draws(self) -> int:
        return len(self.draw_t)

    # -- training ------------------------------------------------------------------------------
    def sample_aux(self, n: int, generator: torch.Generator) -> dict:
        """The step's randomness for n examples: uniform timesteps and unit Gaussian noise."""
        t = torch.randint(0, self.n_timesteps, (n,), generator=generator)
        return {"t": t, "noise": torch.randn((n, *self.image_shape), generator=generator)}

    def loss(self, call, x, y, aux=None) -> torch.Tensor:
        """[B] epsilon-prediction MSE at the draws in `aux`; without aux, the fixed-draw loss."""
        if aux is None:
            return self.attribution_loss(call, x, y)
        return self._denoising_loss(call, x, aux["t"], aux["noise"], aux["noise"])

    # -- attribution and measurement -----------------------------------------------------------
    def attribution_loss(self, call, x, y) -> torch.Tensor:
        """[B] denoising loss averaged over the K fixed draws. If y is a float tensor [B, K, *image]
        (from `sample_fisher_targets`) it replaces the noise as the regression target."""
        targets = y if torch.is_tensor(y) and y.is_floating_point() and y.dim() == 2 + len(self.image_shape) else None
        return self._fixed_draw_loss(call, x, targets)

    def measure(self, call, x, y) -> torch.Tensor:
        """f(z_q, theta): [B] denoising loss of each image at the K fixed draws (common random numbers)."""
        return self._fixed_draw_loss(call, x, None)

    def sample_fisher_targets(self, call, x, generator: torch.Generator) -> torch.Tensor:
        """Pseudo-targets [B, K, *image] whose loss gradients have the GGN of `attribution_loss` as
        their expected outer product (the sampled Fisher of the Gaussian likelihood behind the MSE).

        The per-example loss is (1/(K D)) sum_k ||f_k - eps_k||^2 (D pixels), whose GGN is
        (2/(K D)) sum_k J_k^T J_k. With targets f_k + s u_k, u ~ N(0, I), the gradient is
        -(2 s/(K D)) sum_k J_k^T u_k, with expected outer product (4 s^2/(K D)^2) sum_k J_k^T J_k:
        equal to the GGN for s^2 = K D / 2.
        """
        b, k, d = x.shape[0], self.n_draws, math.prod(self.image_shape)
        with torch.no_grad():
            pred = call(self._fixed_inputs(x)).reshape(b, k, *self.image_shape)
        u = torch.randn(pred.shape, generator=generator).to(pred.device)
        return pred + math.sqrt(k * d / 2.0) * u

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, call, n: int, seed: int = 0, device="cpu") -> torch.Tensor:
        """[n, *image] DDPM ancestral samples in [-1, 1]. The starting noise and every step's noise
        come from `seed`, so models trained with different seeds see the same noise."""
        gen = torch.Generator().manual_seed(seed)
        scheduler = make_scheduler(self.cfg)  # set_timesteps mutates the scheduler: use a fresh one
        scheduler.set_timesteps(self.n_timesteps)
        sample = torch.randn((n, *self.image_shape), generator=gen).to(device)
        for t in scheduler.timesteps:
            t_batch = torch.full((n,), int(t), device=device)
            eps = call(pack_timestep(sample, t_batch))
            sample = scheduler.step(eps, int(t), sample, generator=gen).prev_sample
        return sample.clamp(-1.0, 1.0)

    def network_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What `attribution_loss` feeds the UNet: every image at every fixed draw."""
        return self._fixed_inputs(x)

    # -- internals -----------------------------------------------------------------------------
    def _fixed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """[B * K, C + 1, H, W]: every image noised at every fixed draw (image-major order)."""
        b, k = x.shape[0], self.n_draws
        xk = x[:, None].expand(b, k, *x.shape[1:]).reshape(b * k, *x.shape[1:])
        noise = self.draw_noise.to(x.device)[None].expand(b, *self.draw_noise.shape).reshape(b * k, *x.shape[1:])
        t = self.draw_t.to(x.device).repeat(b)
        return pack_timestep(self.scheduler.add_noise(xk, noise, t), t)

    def _fixed_draw_loss(self, call, x, targets) -> torch.Tensor:
        b, k = x.shape[0], self.n_draws
        pred = call(self._fixed_inputs(x))
        if targets is None:
            targets = self.draw_noise.to(x.device)[None].expand(b, *self.draw_noise.shape)
        per_draw = ((pred - targets.reshape(pred.shape)) ** 2).reshape(b, k, -1).mean(-1)
        return per_draw.mean(-1)

    def _denoising_loss(self, call, x, t, noise, target) -> torch.Tensor:
        noisy = self.scheduler.add_noise(x, noise, t)
        pred = call(pack_timestep(noisy, t))
        return ((pred - target) ** 2).reshape(x.shape[0], -1).mean(-1)


def fixed_draws(k: int, n_timesteps: int, image_shape, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K (timestep, noise) draws from `seed`: timesteps stratified over [0, T) (one per stratum, so
    every noise level is covered even for small K), noise unit Gaussian."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(k, generator=gen, dtype=torch.float64)
    t = ((torch.arange(k, dtype=torch.float64) + u) * n_timesteps / k).long().clamp(max=n_timesteps - 1)
    return t, torch.randn((k, *image_shape), generator=gen)
