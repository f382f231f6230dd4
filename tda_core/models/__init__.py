"""Model builders, by config name. Add a model: a builder function here plus its schema keys."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .mlp import build_mlp


def _build_vit(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    from .vit import build_vit  # timm is imported only by ViT experiments (seconds per job otherwise)

    return build_vit(cfg, in_shape, n_out)


_BUILDERS = {"mlp": build_mlp, "vit": _build_vit}


def register_builder(name: str, fn) -> None:
    _BUILDERS[name] = fn


def build_model(exp: dict, in_shape: tuple[int, ...], n_out: int, seed: int) -> nn.Module:
    """Build the experiment's model with parameters initialised from `seed` (CPU generator)."""
    name = exp["model"]["name"]
    if name == "unet":
        from .unet import build_unet  # diffusers is imported only by diffusion experiments

        _BUILDERS.setdefault("unet", build_unet)
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model '{name}'; known: {', '.join(sorted(_BUILDERS))}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _BUILDERS[name](exp["model"], in_shape, n_out)
    return model.eval()  # no dropout / batch-norm updates: training is functional
