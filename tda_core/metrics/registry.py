"""The one registry of evaluation metrics: one `MetricEntry` row per metric, read by the evaluate stage
(function, targets), the rows (seed rows, ranking direction, signal gate) and the board (order, label,
note, track). Adding a metric is its module plus one row here.

    lds            Spearman over random subsets between additive predictions and retrained models (lds.py)
    lds_fixed_seed the LDS against the fixed-seed ground truth (lds_fixed.py; groundtruth.track fixed_seed/both)
    dlds_*         distributional LDS (distributional.py)
    mislabel_auc   self-influence AUC against flipped labels (mislabel.py; target train_self)
    lds_kendall    the LDS with Kendall's tau-b (kendall.py; quanda's CIFAR LDS)
    randomization  model-randomization sanity check: |Spearman| between the trained and a re-initialised
                   model's scores, lower is better, passes below 0.5 (sanity.py; target randomized,
                   compared with the query scores)
Rows other stages write into their own bundles (function None: the evaluate stage does not compute them):
    loo_shift      leave-one-out study (tda_core/stages/loo.py)
    topk_drop      top-k removal, one metric topk_drop_k{k} per k (tda_core/removal.py)
    brittleness    the smallest k that flips a prediction (tda_core/removal.py)

Nothing here imports a metric module (or torch): Snakemake reads the targets while building the DAG.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..registry_rows import import_path

__all__ = [
    "MetricEntry", "METRICS", "PER_SEED", "PER_MODEL", "SEED_MEAN", "SEEDS", "AVERAGED", "CEILING", "SPLIT_HALF",
    "NO_GATE", "metric_entry", "known_metrics", "get_metric", "metric_target", "metric_reference", "metric_targets",
    "lower_is_better",
]

# How a method's scores become a metric's rows (tda_core.metrics.rows.canonical_variants)
PER_SEED = "per_seed"      # one row per seed's scores (per-seed), plus fixed-seed and seed-averaged
PER_MODEL = "per_model"    # as PER_SEED; a samples file: each sample against its own twin (randomization)
SEED_MEAN = "seed_mean"    # the seed-averaged scores (the predicted mean shift: dlds_mean)
SEEDS = "seeds"            # all seeds' scores together (a predicted distribution: dlds_variance, dlds_w2)
AVERAGED = "averaged"      # the seed-averaged scores, one row (mislabel AUC, LOO shifts)

# The low-signal gate (tda_core.metrics.signal)
CEILING = "ceiling"            # the noise ceiling of the seed-mean target
SPLIT_HALF = "split_half"      # the target measured on two halves of the seeds
NO_GATE = "none"               # no noisy target: `signal_note` says why


@dataclass(frozen=True)
class MetricEntry:
    """Everything the suite reads about one metric."""

    name: str
    function: str | None           # "module:function" the evaluate stage calls; None: another stage's rows
    label: str                     # the value column's name in the board's tables
    note: str                      # what a cell means, shown above the metric's tables ("" = none)
    target: str = "query"          # which scores it reads (tda_core.targets)
    reference: str | None = None   # a second target it compares with (the same method's files, same seeds)
    lower_is_better: bool = False  # ranked by -value (rows.rank_rows)
    track: str = ""                # the ground-truth track of its target: distributional, fixed_seed or ""
    seed_rows: str = AVERAGED      # how scores become rows (constants above)
    signal: str = NO_GATE          # its low-signal gate (constants above)
    signal_note: str = "no target reliability to check"  # the reason shown when signal is NO_GATE
    signal_from: str | None = None  # a metric whose target (and so reliability) it shares (lds_kendall: lds)
    ordered: bool = True           # has a place in the board's metric order (the row order below)
    check: str | None = None       # "module:function"(experiment name, resolved experiment): what it needs of
                                   # the config, checked at plan time (one-line ConfigError)


_ROWS = (
    MetricEntry("lds", "tda_core.metrics.lds:evaluate_lds", "LDS",
                "LDS: Spearman over random training subsets between the method's additive prediction "
                "(sum of its scores over the subset) and the retrained models' measurement averaged over seeds; "
                "mean over queries.",
                track="distributional", seed_rows=PER_SEED, signal=CEILING),
    MetricEntry("lds_fixed_seed", "tda_core.metrics.lds_fixed:evaluate_lds_fixed_seed", "lds_fixed_seed", "",
                track="fixed_seed", seed_rows=PER_SEED, signal_note="deterministic retraining: no target noise",
                check="tda_core.config:_check_fixed_track"),
    MetricEntry("dlds_mean", "tda_core.metrics.distributional:evaluate_dlds_mean", "dlds_mean",
                "d-TDA LDS of the mean influence E[X]-E[Y] (X: full-data models over seeds, Y: retrained). For a "
                "per-seed method it equals the LDS of its seed-averaged scores (compare the table 'classic vs "
                "distributional').",
                track="distributional", seed_rows=SEED_MEAN, signal=CEILING),
    MetricEntry("dlds_variance", "tda_core.metrics.distributional:evaluate_dlds_variance", "dlds_variance",
                "d-TDA LDS of the variance-increase influence Var(Y)-Var(X); n/a when one score array "
                "stands for every seed (it predicts no variance change).",
                track="distributional", seed_rows=SEEDS, signal=SPLIT_HALF, check="tda_core.config:_check_distributional"),
    MetricEntry("dlds_w2", "tda_core.metrics.distributional:evaluate_dlds_w2", "dlds_w2",
                "d-TDA LDS of the Wasserstein-2 distance between the full-data and the retrained distributions.",
                track="distributional", seed_rows=SEEDS, signal=SPLIT_HALF, check="tda_core.config:_check_distributional"),
    MetricEntry("mislabel_auc", "tda_core.metrics.mislabel:evaluate_mislabel_auc", "AUC",
                "ROC AUC of self-influence against the flipped labels (0.5 = chance); CI over examples.",
                target="train_self", signal_note="the flipped labels are known: no target noise",
                check="tda_core.config:_check_mislabel"),
    MetricEntry("loo_shift", None, "Pearson r",
                "Pearson r of predicted vs actual leave-one-out mean shifts over (point, query) pairs; "
                "split-half = the same r between two halves of the seeds (near 0: LOO is noise at this seed count).",
                signal=SPLIT_HALF),
    MetricEntry("topk_drop", None, "topk_drop",
                "Top-k removal: mean over the sampled queries and the fresh retrain seeds of f(z_q) of the retrained "
                "full-data model minus f(z_q) of the model retrained without the k training examples the method "
                "scores most positive for that query; higher is better; CI resamples queries and seeds.",
                signal_note="retrain-seed noise is resampled in its CI"),
    MetricEntry("brittleness", None, "brittleness",
                "Median smallest k (of the grid) whose removal flips a correct prediction (seed-mean margin < 0); "
                "lower is better (ranked so); queries that never flip count as above the largest k.",
                lower_is_better=True, signal_note="retrain-seed noise is resampled in its CI"),
    # after every ordered metric, in the order their bundles list them (the board's order so far)
    MetricEntry("lds_kendall", "tda_core.metrics.kendall:evaluate_lds_kendall", "lds_kendall",
                "LDS with Kendall's tau-b instead of Spearman (lower than the LDS on the same data; no ceiling).",
                seed_rows=PER_SEED, signal=CEILING, signal_from="lds", ordered=False),
    MetricEntry("randomization", "tda_core.metrics.sanity:evaluate_randomization", "randomization",
                "Model-randomization sanity check: |Spearman| between the scores of the trained model and of "
                "a re-initialised one, mean over queries (a sign flip is no change); lower is better (ranked "
                "so), passes below 0.5.",
                target="randomized", reference="query", lower_is_better=True, seed_rows=PER_MODEL,
                signal_note="compares the method's own scores: no retrained target", ordered=False),
)
METRICS: dict[str, MetricEntry] = {row.name: row for row in _ROWS}
TOPK_PREFIX = "topk_drop_k"  # the removal stage's per-k metrics: topk_drop_k{k}, rows of the topk_drop entry


def metric_entry(name: str) -> MetricEntry | None:
    """The row of `name` (a topk_drop_k{k} metric: the topk_drop row), or None for a name no row has."""
    if name.startswith(TOPK_PREFIX):
        return METRICS["topk_drop"]
    return METRICS.get(name)


def known_metrics() -> list[str]:
    """The metrics an experiment's `metrics:` may list (those the evaluate stage computes)."""
    return sorted(name for name, row in METRICS.items() if row.function is not None)


def _evaluated(name: str) -> MetricEntry:
    row = METRICS.get(name)
    if row is None or row.function is None:
        raise ConfigError(f"unknown metric '{name}'; known: {', '.join(known_metrics())}")
    return row


def get_metric(name: str):
    return import_path(_evaluated(name).function)


def metric_target(name: str) -> str:
    """Which scores a metric reads: "query" (scores/{method}/seed{r}) or a target of tda_core.targets
    (e.g. mislabel_auc: "train_self"). Imports nothing."""
    return _evaluated(name).target


def metric_reference(name: str) -> str | None:
    """The target a metric compares its own target's scores with (None for most). Imports nothing."""
    return _evaluated(name).reference


def metric_targets(name: str) -> list[str]:
    """Every target whose score files a metric reads: its own, then its reference's. Imports nothing."""
    return [metric_target(name)] + ([metric_reference(name)] if metric_reference(name) else [])


def lower_is_better(name: str) -> bool:
    row = metric_entry(name)
    return row is not None and row.lower_is_better
