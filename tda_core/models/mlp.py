from __future__ import annotations

import math

from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build_mlp(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in cfg["hidden"]:
        layers += [nn.Linear(width, h), _ACTIVATIONS[cfg["activation"]]()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)
