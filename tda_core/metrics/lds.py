"""Linear datamodeling score (docs/design.md, section Evaluation).

LDS(q) = Spearman over subsets j of (sum_{i in S_j} tau[q, i], mean over seeds of f(z_q; A(S_j, seed))).
Reported: mean over queries (and over scoring seeds for a per-seed method), a 95% CI from the joint
query x subset x scoring-seed bootstrap with its replicates (paired across methods: the draws depend
only on the ground truth's shapes and `seed`), and the target's reliability and noise ceiling
(tda_core.metrics.stats). A per-seed method (one score file per full-data seed) also gets the variant
"seed-averaged": the LDS of the mean of its seeds' scores (what an ensemble method's file scores).
A per-seed-samples file [R, Q, N] (d-TDA estimators) is scored by the mean over its seed axis.
"""
from __future__ import annotations

import numpy as np

from ..scores import Scores
from .groundtruth import GroundTruth
from .stats import estimate, lds_bootstrap, reliability, spearman_columns, target_fields


def group_predictions(scores: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[M, Q]: the additive prediction sum_{i in S_j} tau[q, i] for every subset j."""
    return masks.astype(np.float64) @ scores.astype(np.float64).T


def lds_per_query(scores: np.ndarray, masks: np.ndarray, subset_measurements: np.ndarray) -> np.ndarray:
    return spearman_columns(group_predictions(scores, masks), subset_measurements.mean(axis=1))


def evaluate_lds(scores: Scores, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    masks, measured = groundtruth.need("masks", "lds"), groundtruth.need("subset", "lds")
    arrays = scores.prediction_rows()
    preds = np.stack([group_predictions(s, masks) for s in arrays])  # [S, M, Q]
    target = measured.mean(axis=1)
    boot = lds_bootstrap(preds, target, n_boot=n_boot, seed=seed)
    result = {**estimate(boot), **target_fields(reliability(measured, n_boot=n_boot, seed=seed)),
              "per_seed": [float(p) for p in boot["per_seed"]],
              "n_queries": int(np.isfinite(boot["per_query"]).sum()), "n_subsets": int(masks.shape[0]),
              "n_score_seeds": len(arrays)}
    if len(arrays) > 1:  # linear in the scores: the mean of the predictions is the prediction of the mean
        result["variants"] = {"seed-averaged": estimate(lds_bootstrap(preds.mean(axis=0, keepdims=True), target,
                                                                      n_boot=n_boot, seed=seed))}
    return result
