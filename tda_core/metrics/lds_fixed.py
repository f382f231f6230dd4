"""Fixed-seed-track LDS (groundtruth.track fixed_seed / both).

For scoring seed r (the full-data model r the method explains) and every subset S_j, the target is
fixed[j, r, q] = f(z_q; theta_r(w = 1_{S_j})): model r retrained with its own initialisation and batch
order, the examples outside S_j zero-weighted in their batches. Then

    LDS_fixed = mean_r mean_q Spearman_j(sum_{i in S_j} tau_r[q, i], fixed[j, r, q]),

LDS per seed against that seed's own target, then the mean over seeds (and queries). A pooled /
ensemble score file is scored against every seed's target (its "seeds" are the R targets). Same joint
bootstrap as `lds` (stats.spearman_bootstrap with per-seed targets, shared draws: replicates stay
paired across methods). No reliability: retraining is deterministic, there is no seed noise to
estimate (target_note says so). Variants: a per-seed method also gets "seed-averaged" (the mean of its
seeds' scores against each seed's target).
"""
from __future__ import annotations

import numpy as np

from ..scores import Scores
from .groundtruth import GroundTruth
from .lds import group_predictions
from .stats import estimate, spearman_bootstrap

TARGET_NOTE = ("fixed-seed track: deterministic retraining from each scoring seed (same init and batch order), "
               "no seed noise: reliability and noise ceiling not applicable")


def evaluate_lds_fixed_seed(scores: Scores, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0) -> dict:
    if groundtruth.fixed is None:
        raise ValueError("lds_fixed_seed needs the fixed-seed ground truth (groundtruth.track: fixed_seed or both)")
    masks = groundtruth.need("masks", "lds_fixed_seed")
    fixed = np.asarray(groundtruth.fixed, dtype=np.float64)  # [M, R, Q]
    n_r = fixed.shape[1]
    arrays = scores.prediction_rows()
    preds = np.stack([group_predictions(s, masks) for s in arrays])  # [S, M, Q]
    if len(preds) == 1:  # pooled / ensemble file: one prediction for every seed's target
        preds = np.repeat(preds, n_r, axis=0)
    if len(preds) != n_r:
        raise ValueError(f"{len(preds)} score files for {n_r} fixed-seed targets")
    target = np.moveaxis(fixed, 1, 0)  # [R, M, Q]
    boot = spearman_bootstrap(preds, target, n_boot=n_boot, seed=seed)
    result = {**estimate(boot), "target_note": TARGET_NOTE, "reliability": None, "noise_ceiling": None,
              "per_seed": [float(p) for p in boot["per_seed"]],
              "n_queries": int(np.isfinite(boot["per_query"]).sum()), "n_subsets": int(masks.shape[0]),
              "n_score_seeds": len(arrays), "track": "fixed_seed"}
    if len(arrays) > 1:
        avg = np.repeat(preds.mean(axis=0, keepdims=True), n_r, axis=0)
        result["variants"] = {"seed-averaged": estimate(spearman_bootstrap(avg, target, n_boot=n_boot, seed=seed))}
    return result
