"""Model builders, by config name. Add a model: a builder function here plus its schema keys."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .mlp import build_mlp


def _build_vit(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    from .vit import build_vit  # timm is imported only by ViT experiments (seconds per job otherwise)

    return build_vit(cfg, in_shape, n_out)


def _build_timm(cfg, in_shape, n_out):
    from .by_name import build_timm

    return build_timm(cfg, in_shape, n_out)


def _build_torchvision(cfg, in_shape, n_out):
    from .by_name import build_torchvision

    return build_torchvision(cfg, in_shape, n_out)


def _build_resnet9(cfg, in_shape, n_out):
    from .resnet9 import build_resnet9

    return build_resnet9(cfg, in_shape, n_out)


_BUILDERS = {"mlp": build_mlp, "vit": _build_vit, "timm": _build_timm, "torchvision": _build_torchvision,
             "resnet9": _build_resnet9}
_CHECKED: set = set()  # (model config, input shape, outputs) that passed the dummy forward pass


def register_builder(name: str, fn) -> None:
    _BUILDERS[name] = fn


def build_model(exp: dict, in_shape: tuple[int, ...], n_out: int, seed: int) -> nn.Module:
    """Build the experiment's model with parameters initialised from `seed` (CPU generator)."""
    name = exp["model"]["name"]
    if name == "unet":
        from .unet import build_unet  # diffusers is imported only by diffusion experiments

        _BUILDERS.setdefault("unet", build_unet)
    if name == "gpt2":
        from .gpt import build_gpt2  # transformers is imported only by language-model experiments

        _BUILDERS.setdefault("gpt2", build_gpt2)
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model '{name}'; known: {', '.join(sorted(_BUILDERS))}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _BUILDERS[name](exp["model"], in_shape, n_out).eval()
        # the UNet's input carries the timestep channel (tda_core.models.unet); GPT-2 takes token ids and
        # checks its own shapes (tda_core.models.gpt)
        if name not in ("unet", "gpt2"):
            _check_forward(model, exp["model"], in_shape, n_out)
    # eval mode everywhere: dropout / drop-path off, BatchNorm uses its (never updated) running
    # statistics, so every example's output depends on that example only (see docs/data.md)
    return model


def _check_forward(model: nn.Module, cfg: dict, in_shape: tuple[int, ...], n_out: int) -> None:
    """One dummy example through the model, once per (config, shape): incompatibilities fail in one line."""
    key = (repr(sorted(cfg.items())), tuple(in_shape), n_out)
    if key in _CHECKED:
        return
    label = cfg["name"] + (f" {cfg['arch']}" if cfg.get("arch") else "")
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *in_shape))
    except Exception as e:  # noqa: BLE001 - any failure of the dummy pass is a config problem
        lines = str(e).strip().splitlines()
        raise ConfigError(f"model {label} cannot take inputs of shape {list(in_shape)} (one example): "
                          f"{type(e).__name__}: {lines[0] if lines else ''}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (1, n_out):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"model {label} returns {shape} for inputs of shape {list(in_shape)}; expected [1, {n_out}]")
    _CHECKED.add(key)
