"""Mislabel detection: rank training examples by self-influence, ROC AUC against the flipped labels.

Self-influence of z_i = how much training on z_i lowers its own loss: -tau[i, i] with the scores of
the `train_self` target (the training examples attribute themselves, measurement = loss; see
tda_core.targets). Mislabelled examples have to be memorised against the rest of the data, so they
should rank high. The ground truth is the seeded label corruption of dataset.label_noise
(Splits.corrupted); the evaluate stage adds it, and the indices of the self-queries, to the
GroundTruth (tda_core.metrics.groundtruth).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..errors import ConfigError
from ..scores import Scores
from .groundtruth import GroundTruth
from .stats import estimate


def self_influence(scores: np.ndarray, self_index: np.ndarray) -> np.ndarray:
    """[K]: -tau[k, self_index[k]] for scores [K, N] of K training examples attributed to all N."""
    return -scores[np.arange(len(self_index)), self_index]


def auc_bootstrap(labels: np.ndarray, ranking: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """ROC AUC with its percentile bootstrap 95% CI and replicates (examples resampled within each class).

    The draws come from fixed generators (np.random.default_rng([seed, 1]) for the corrupted,
    [seed, 2] for the clean examples) and depend only on the labels, so every method's replicates
    are computed on the same resampled examples: paired across methods. AUC = Mann-Whitney U / (n+ n-)
    with average ranks (ties count one half), as sklearn's roc_auc_score.
    """
    labels, ranking = np.asarray(labels, dtype=bool), np.asarray(ranking, dtype=np.float64)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)

    def auc(p_idx: np.ndarray, n_idx: np.ndarray) -> np.ndarray:
        ranks = rankdata(np.concatenate([ranking[p_idx], ranking[n_idx]], axis=-1), axis=-1)
        n_p, n_n = p_idx.shape[-1], n_idx.shape[-1]
        return (ranks[..., :n_p].sum(axis=-1) - n_p * (n_p + 1) / 2) / (n_p * n_n)

    p_draw = pos[np.random.default_rng([seed, 1]).integers(0, len(pos), size=(n_boot, len(pos)))]
    n_draw = neg[np.random.default_rng([seed, 2]).integers(0, len(neg), size=(n_boot, len(neg)))]
    reps = auc(p_draw, n_draw)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return {"value": float(auc(pos, neg)), "ci_low": float(lo), "ci_high": float(hi), "replicates": reps}


def evaluate_mislabel_auc(scores: Scores, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    index = np.asarray(groundtruth.need("self_index", "mislabel_auc"))
    labels = np.asarray(groundtruth.need("corrupted", "mislabel_auc"), dtype=bool)[index]
    if labels.all() or not labels.any():
        raise ConfigError("mislabel_auc needs both corrupted and clean training examples: "
                          "set dataset.label_noise in (0, 1) for this experiment")
    per_seed = np.stack([self_influence(s, index) for s in scores.seed_arrays()])
    boot = auc_bootstrap(labels, per_seed.mean(axis=0), n_boot=n_boot, seed=seed)  # d-TDA: averaged over seeds
    result = {**estimate(boot), "chance": 0.5, "n_examples": int(len(index)), "n_corrupted": int(labels.sum())}
    if len(per_seed) > 1:
        result["per_seed"] = [_auc(labels, s) for s in per_seed]
        result["variants"] = {"fixed-seed": estimate(auc_bootstrap(labels, per_seed[0], n_boot=n_boot, seed=seed))}
    return result


def _auc(labels: np.ndarray, ranking: np.ndarray) -> float:
    ranks = rankdata(ranking)
    n_p = int(labels.sum())
    return float((ranks[labels].sum() - n_p * (n_p + 1) / 2) / (n_p * (len(labels) - n_p)))


