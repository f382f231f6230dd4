"""Build a model by config name: the model registry's row (tda_core/models/registry.py) names its builder."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .registry import builder, model_entry

_CHECKED: set = set()  # (model config, input shape, outputs) that passed the dummy forward pass


def build_model(cfg: dict, in_shape: tuple[int, ...], n_out: int, seed: int) -> nn.Module:
    """Build the experiment's model with parameters initialised from `seed` (CPU generator)."""
    entry = model_entry(cfg["model"]["name"])  # its builder's module (and model library) imported only now
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(entry.name)(cfg["model"], in_shape, n_out).eval()
        if entry.checks_forward:
            _check_forward(model, cfg["model"], in_shape, n_out)
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
