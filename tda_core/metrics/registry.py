"""The one registry of evaluation metrics: name -> "module:function"."""
from __future__ import annotations

import importlib

from ..errors import ConfigError

_METRICS: dict[str, str] = {
    "lds": "tda_core.metrics.lds:evaluate_lds",
}


def known_metrics() -> list[str]:
    return sorted(_METRICS)


def get_metric(name: str):
    if name not in _METRICS:
        raise ConfigError(f"unknown metric '{name}'; known: {', '.join(known_metrics())}")
    module, fn = _METRICS[name].split(":")
    return getattr(importlib.import_module(module), fn)
