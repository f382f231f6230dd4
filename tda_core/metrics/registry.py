"""The one registry of evaluation metrics: name -> "module:function"."""
from __future__ import annotations

import importlib

from ..errors import ConfigError

_METRICS: dict[str, str] = {
    "lds": "tda_core.metrics.lds:evaluate_lds",
    "lds_fixed_seed": "tda_core.metrics.lds_fixed:evaluate_lds_fixed_seed",
    "dlds_mean": "tda_core.metrics.distributional:evaluate_dlds_mean",
    "dlds_variance": "tda_core.metrics.distributional:evaluate_dlds_variance",
    "dlds_w2": "tda_core.metrics.distributional:evaluate_dlds_w2",
    "mislabel_auc": "tda_core.metrics.mislabel:evaluate_mislabel_auc",
}


# Metrics that read scores other than the query target (tda_core.targets). Declared here, not on the
# metric function, so that metric_target imports no metric module (and no torch) while Snakemake
# builds the DAG.
_TARGETS: dict[str, str] = {
    "mislabel_auc": "train_self",
}


def known_metrics() -> list[str]:
    return sorted(_METRICS)


def get_metric(name: str):
    if name not in _METRICS:
        raise ConfigError(f"unknown metric '{name}'; known: {', '.join(known_metrics())}")
    module, fn = _METRICS[name].split(":")
    return getattr(importlib.import_module(module), fn)


def metric_target(name: str) -> str:
    """Which scores a metric reads: "query" (scores/{method}/seed{r}) or a target of tda_core.targets
    (declared in _TARGETS above, e.g. mislabel_auc: "train_self"). Imports nothing."""
    if name not in _METRICS:
        raise ConfigError(f"unknown metric '{name}'; known: {', '.join(known_metrics())}")
    return _TARGETS.get(name, "query")
