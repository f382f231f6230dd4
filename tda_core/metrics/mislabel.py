"""Mislabel detection: rank training examples by self-influence, ROC AUC against the flipped labels.

Self-influence of z_i = how much training on z_i lowers its own loss: -tau[i, i] with the scores of
the `train_self` target (the training examples attribute themselves, measurement = loss; see
tda_core.targets). Mislabelled examples have to be memorised against the rest of the data, so they
should rank high. The ground truth is the seeded label corruption of dataset.label_noise
(Splits.corrupted); the evaluate stage adds it, and the indices of the self-queries, to the
ground-truth dict.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .distributional import scores_per_seed


def self_influence(scores: np.ndarray, self_index: np.ndarray) -> np.ndarray:
    """[K]: -tau[k, self_index[k]] for scores [K, N] of K training examples attributed to all N."""
    return -scores[np.arange(len(self_index)), self_index]


def roc_auc_with_ci(labels: np.ndarray, ranking: np.ndarray, n_boot: int = 500, seed: int = 0):
    """ROC AUC and its percentile bootstrap 95% CI (examples resampled within each class)."""
    from sklearn.metrics import roc_auc_score

    value = float(roc_auc_score(labels, ranking))
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boots.append(roc_auc_score(labels[idx], ranking[idx]))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return value, float(lo), float(hi)


def evaluate_mislabel_auc(scores_by_seed: list[np.ndarray], groundtruth: dict) -> dict:
    index = np.asarray(groundtruth["self_index"])
    labels = np.asarray(groundtruth["corrupted"], dtype=bool)[index]
    if labels.all() or not labels.any():
        raise ConfigError("mislabel_auc needs both corrupted and clean training examples: "
                          "set dataset.label_noise in (0, 1) for this experiment")
    per_seed = np.stack([self_influence(s, index) for s in scores_per_seed(scores_by_seed)])
    value, lo, hi = roc_auc_with_ci(labels, per_seed.mean(axis=0))  # d-TDA: averaged over seeds
    result = {"value": value, "ci_low": lo, "ci_high": hi, "chance": 0.5,
              "n_examples": int(len(index)), "n_corrupted": int(labels.sum())}
    if len(per_seed) > 1:
        from sklearn.metrics import roc_auc_score

        result["per_seed"] = [float(roc_auc_score(labels, s)) for s in per_seed]
        f_val, f_lo, f_hi = roc_auc_with_ci(labels, per_seed[0])
        result["variants"] = {"fixed-seed": {"value": f_val, "ci_low": f_lo, "ci_high": f_hi}}
    return result

