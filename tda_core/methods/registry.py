"""The one registry of attribution methods: name -> "module:Class" (imported on first use).

Adding a method = one new file in tda_core/methods/ plus one line here; every experiment that
lists it, and the leaderboard, pick it up.
"""
from __future__ import annotations

import importlib

from ..errors import ConfigError

_METHODS: dict[str, str] = {
    "random": "tda_core.methods.random_scores:RandomScores",
    "grad_dot": "tda_core.methods.grad_dot:GradDot",
    "grad_cos": "tda_core.methods.grad_cos:GradCos",
    "tracin": "tda_core.methods.tracin:TracIn",
    "if_exact": "tda_core.methods.if_exact:IfExact",
    "if_kfac": "tda_core.methods.if_kfac:IfKfac",
    "if_ekfac": "tda_core.methods.if_ekfac:IfEkfac",
    "if_ensemble": "tda_core.methods.if_ensemble:IfEnsemble",
    "source": "tda_core.methods.source:Source",
    "source_fast": "tda_core.methods.source_fast:SourceFast",
    "source_ensemble": "tda_core.methods.source_ensemble:SourceEnsemble",
    "unrolled": "tda_core.methods.unrolled:Unrolled",
    "trak": "tda_core.methods.trak:Trak",
    "dtda_if": "tda_core.methods.dtda_if:DtdaIf",
    "dtda_source": "tda_core.methods.dtda_source:DtdaSource",
    "dtda_unrolled": "tda_core.methods.dtda_unrolled:DtdaUnrolled",
    "if_ekfac_kronfluence": "tda_core.methods.if_ekfac_kronfluence:IfEkfacKronfluence",
    "trak_traker": "tda_core.methods.trak_traker:TrakTraker",
}


def known_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str):
    """The method class registered as `name`."""
    if name not in _METHODS:
        raise ConfigError(f"unknown method '{name}'; known: {', '.join(known_methods())}")
    module, cls = _METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)
