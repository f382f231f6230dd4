"""The low-signal gate: one rule, from each metric's own target reliability, used by the rows and the board.
Which gate a metric gets is its registry row's `signal` (tda_core.metrics.registry).

A metric whose target is mostly noise cannot order methods: its ranks, rank intervals and "tied with
the best" stars would be verdicts without evidence. Such a metric keeps its values and CIs, but gets no
rank, no rank interval and no star; the board prints "low signal" and the reason. Per metric:

    lds, dlds_mean, lds_kendall   the noise ceiling of the seed-mean target (tda_core.metrics.stats.
                                  reliability; lds_kendall reads the same target as lds and borrows its
                                  figures): low when r1 is not distinguishable from 0 or the ceiling < 0.5
    dlds_variance, dlds_w2,       split-half reliability (the target measured on two halves of the seeds):
    loo_shift                     low when not computable or < 0.25 = 0.5^2, i.e. when the attenuation
                                  ceiling sqrt(r) of a half-size target is under the same 0.5
    mislabel_auc                  never: the flipped labels are known, the target has no noise
    lds_fixed_seed                never: retraining from a fixed seed is deterministic
    randomization                 never: it compares the method's own scores, there is no retrained target
    topk_drop_k*, brittleness     never: the target is the retrained models' measurement, and the CI
                                  resamples the retrain seeds, so their noise is in the interval
"""
from __future__ import annotations

import math

from .registry import CEILING, NO_GATE, SPLIT_HALF, metric_entry

MIN_CEILING = 0.5
MIN_SPLIT_HALF = MIN_CEILING ** 2


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def metric_signal(result: dict) -> tuple[bool, str]:
    """(ok, reason) for a metric result (or board row) of `result["metric"]`, from its noise fields."""
    row = metric_entry(result.get("metric", ""))
    gate = row.signal if row is not None else NO_GATE
    if gate == CEILING:
        ceiling, r_low = result.get("ceiling"), result.get("reliability_ci_low")
        if not _finite(ceiling):
            return False, "target reliability not measured"
        if _finite(r_low) and r_low <= 0:
            return False, "reliability r1 not distinguishable from 0"
        if ceiling < MIN_CEILING:
            return False, f"ceiling {ceiling:.2f} < {MIN_CEILING}"
        return True, f"ceiling {ceiling:.2f}"
    if gate == SPLIT_HALF:
        r = result.get("split_half_reliability")
        if not _finite(r):
            return False, "split-half reliability not computable (too few seeds per half)"
        if r < MIN_SPLIT_HALF:
            return False, f"split-half reliability {r:.2f} < {MIN_SPLIT_HALF}"
        return True, f"split-half reliability {r:.2f}"
    return True, row.signal_note if row is not None else "no target reliability to check"
