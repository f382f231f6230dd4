"""The one registry of evaluation metrics: name -> "module:function".

    lds            Spearman over random subsets between additive predictions and retrained models (lds.py)
    lds_kendall    the same with Kendall's tau-b (kendall.py; quanda's CIFAR LDS)
    dlds_*         distributional LDS (distributional.py)
    mislabel_auc   self-influence AUC against flipped labels (mislabel.py; target train_self)
    randomization  model-randomization sanity check: |Spearman| between the trained and a re-initialised
                   model's scores, lower is better, passes below 0.5 (sanity.py; target randomized,
                   compared with the query scores)
"""
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
    "lds_kendall": "tda_core.metrics.kendall:evaluate_lds_kendall",
    "randomization": "tda_core.metrics.sanity:evaluate_randomization",
}


# Metrics that read scores other than the query target (tda_core.targets). Declared here, not on the
# metric function, so that metric_target imports no metric module (and no torch) while Snakemake
# builds the DAG.
_TARGETS: dict[str, str] = {
    "mislabel_auc": "train_self",
    "randomization": "randomized",
}

# Metrics that compare their target's scores with another target's: the evaluate stage passes the
# latter as groundtruth["reference_scores"] (the same method's files, same seeds).
_REFERENCES: dict[str, str] = {
    "randomization": "query",
}

# Metrics where a lower value is better: rank_rows (tda_core.metrics.rows) ranks them by -value.
# brittleness: the bundle metric of the removal stage (tda_core.removal), the smallest k that flips a
# prediction; not computed by the evaluate stage, so not in _METRICS.
_LOWER_IS_BETTER = {"randomization", "brittleness"}


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


def metric_reference(name: str) -> str | None:
    """The target a metric compares its own target's scores with (None for most). Imports nothing."""
    metric_target(name)
    return _REFERENCES.get(name)


def metric_targets(name: str) -> list[str]:
    """Every target whose score files a metric reads: its own, then its reference's. Imports nothing."""
    return [metric_target(name)] + ([metric_reference(name)] if metric_reference(name) else [])


def lower_is_better(name: str) -> bool:
    return name in _LOWER_IS_BETTER
