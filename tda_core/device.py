"""Device choice from the config (`device: auto|cpu|cuda|cuda:N|mps`).

On CUDA, TF32 matmuls/convolutions are switched off: attribution (per-example gradients, curvature,
scores) and the ground-truth measurements are meant to be float32, and TF32 would silently cut
their mantissa to 10 bits. Reduced precision is opt-in, and only for training forward passes
(`precision: bf16|fp16`, autocast in tda_core.training.trainer.make_loss_fn).
Under SLURM, CUDA_VISIBLE_DEVICES holds the allocated GPUs only, so `auto` -> cuda:0 is the
job's own GPU.
"""
from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; an explicit device that is absent is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' requested but CUDA is not available (use device: auto)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' requested but only {torch.cuda.device_count()} CUDA device(s) "
                              "are visible (CUDA_VISIBLE_DEVICES)")
        full_fp32_on_cuda()
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but not available")
    return torch.device(name)


def full_fp32_on_cuda() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
