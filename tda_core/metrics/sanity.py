"""Model-randomization sanity check (`randomization`; Adebayo et al. 2018, "Sanity checks for saliency
maps"; quanda's model-randomization metric).

A method's attributions should depend on the trained model: the scores computed from a model whose
parameters are re-initialised (attribution target `randomized`, tda_core.targets: every checkpoint of
seed r replaced by a fresh initialisation from seed r + RANDOMIZED_SEED_OFFSET) should differ from
the scores of the trained model. A method whose scores barely change does not explain the model.

    value = mean over scoring seeds r, then over queries q, of |Spearman_i(tau_trained[r, q, i], tau_random[r, q, i])|

(the Spearman over training examples i between the two score rows of query q, in absolute value: a
method whose ranking merely flips sign under randomization, rho near -1, still orders the training
examples the same way up to direction, so its scores do not depend on what the model learned; the
signed mean is kept as `signed_value`). Lower is better: rank_rows ranks it by -value
(tda_core.metrics.registry.lower_is_better). The row passes (`passed: true`) when value <
MAX_CORRELATION = 0.5 (a fixed constant, the same for every experiment: a correlation of 0.5 between
two models as different as trained vs untrained means the scores are mostly model-independent); the
note says so. Methods that replay training from the step-0 checkpoint (unrolled, dtda_unrolled)
cannot attribute the randomized target (their replay check fails): their row is failed.
CI: bootstrap over queries (and scoring seeds, per-seed methods) with the shared draws of tda_core.metrics.stats.bootstrap_draws (paired across methods). No crossed-design correction
(stats._remove_double_count): with 2 scoring seeds its variance estimate is too noisy (it shrank a
TracIn CI to zero width on tiny-mlp), and the uncorrected joint bootstrap errs wide (conservative).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..scores import Scores
from .groundtruth import GroundTruth
from .stats import LEVEL, _corr, _counts, _percentile_ci, _weighted_nanmean, bootstrap_draws, estimate

MAX_CORRELATION = 0.5


def row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[Q]: Spearman over the last axis between the rows of a and b [Q, N] (nan for a constant row)."""
    return _corr(rankdata(a, axis=-1), rankdata(b, axis=-1), axis=-1)


def evaluate_randomization(scores: Scores, groundtruth: GroundTruth, n_boot: int = 1000, seed: int = 0,
                           level: float = LEVEL) -> dict:
    """scores: the `randomized` target's scores; groundtruth.reference: the same method's query scores
    from the trained models (given by the evaluate stage), in the same layout."""
    randomized = scores.seed_arrays()
    trained = groundtruth.need("reference", "randomization").seed_arrays()
    if len(trained) != len(randomized) or any(t.shape != r.shape for t, r in zip(trained, randomized)):
        raise ValueError(f"randomized scores {[r.shape for r in randomized]} and query scores "
                         f"{[t.shape for t in trained]} do not match")
    signed = np.stack([row_spearman(t, r) for t, r in zip(trained, randomized)])  # [S, Q]
    rho = np.abs(signed)
    n_seeds, n_q = rho.shape
    per_query = _weighted_nanmean(rho, np.ones_like(rho), axis=0)
    value = float(np.nanmean(per_query)) if np.isfinite(per_query).any() else float("nan")
    draws = bootstrap_draws(n_q, 0, n_boot, seed, n_seeds)
    w_q = _counts(draws["queries"], n_q)
    w_s = _counts(draws["seeds"], n_seeds) if draws["seeds"] is not None else np.ones((n_boot, n_seeds))
    per_q_all = _weighted_nanmean(np.broadcast_to(rho, (n_boot, n_seeds, n_q)), w_s[:, :, None], axis=1)
    reps = _weighted_nanmean(per_q_all, w_q, axis=1)
    lo, hi = _percentile_ci(reps, level)
    passed = bool(np.isfinite(value) and value < MAX_CORRELATION)
    verdict = "passed" if passed else "FAILED"
    why = (f"{value:.2f} {'<' if passed else '>='} {MAX_CORRELATION}" if np.isfinite(value)
           else "undefined (constant scores)")
    return {**estimate({"value": value, "ci_low": lo, "ci_high": hi, "replicates": reps}),
            "passed": passed, "max_correlation": MAX_CORRELATION,
            "signed_value": float(np.nanmean(signed)) if np.isfinite(signed).any() else float("nan"),
            "per_seed": [float(np.nanmean(r)) if np.isfinite(r).any() else float("nan") for r in rho],
            "n_queries": int(np.isfinite(per_query).sum()), "n_score_seeds": n_seeds,
            "note": f"model-randomization check {verdict}: |Spearman| between the trained and a re-initialised "
                    f"model's scores {why} (lower is better)"}
