"""Build a model by config name: the model registry's row (tda_core/models/registry.py) names its builder."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import ExperimentSpec
from .registry import builder, model_entry

_CHECKED: set = set()  # (model config, input shape, outputs) that passed the dummy forward pass


def build_model(cfg: dict, in_shape: tuple[int, ...], n_out: int, seed: int) -> nn.Module:
    """Build the experiment's model with parameters initialised from `seed` (CPU generator). The builder gets
    the `model` block with the schema's defaults filled in (tda_core.spec): it restates none."""
    block = dict(ExperimentSpec.of(cfg).model)
    entry = model_entry(block["name"])  # its builder's module (and model library) imported only now
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder(entry.name)(block, in_shape, n_out).eval()
        if entry.checks_forward:
            _check_forward(model, block, in_shape, n_out)
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
