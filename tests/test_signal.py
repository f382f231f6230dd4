"""The low-signal gate (tda_core/metrics/signal.py) on planted ground truths with a known amount of signal.

Truth: a pure-noise target (subset measurements that do not depend on the subset) has no signal and
must be gated; a planted strong target (measurements driven by the subset, little seed noise) must
not. Gated metrics keep values but get no rank interval, no star and no pairwise tests.
"""
import numpy as np
import pytest

from tda_core import io
from tda_core.leaderboard import write_all
from tda_core.metrics.distributional import evaluate_dlds, split_half_reliability
from tda_core.metrics.groundtruth import GroundTruth
from tda_core.metrics.registry import get_metric
from tda_core.metrics.rows import board_rows, result_rows, row_inputs
from tda_core.metrics.signal import metric_signal
from tda_core.scores import Scores
from tda_core.metrics.stats import reliability, target_fields


def _lds_truth(rng, strength, n=60, m=40, q=20, seeds=2, noise=1.0):
    """f_j(q) = strength * sum_{i in S_j} w[q, i] + seed noise; strength 0 is a pure-noise target."""
    w = rng.normal(size=(q, n))
    masks = rng.random((m, n)) < 0.5
    subset = strength * (masks.astype(float) @ w.T)[:, None, :] + rng.normal(scale=noise, size=(m, seeds, q))
    full = strength * w.sum(axis=1)[None, :] + rng.normal(scale=noise, size=(seeds, q))
    return GroundTruth(masks=masks, subset=subset, full=full), w


def _board(gt, w, rng, metric="lds"):
    methods = {"good": [w + rng.normal(scale=0.5, size=w.shape) for _ in range(2)],
               "noisy": [w + rng.normal(scale=3.0, size=w.shape) for _ in range(2)],
               "random": [rng.normal(size=w.shape) for _ in range(2)]}
    rows = []
    for name, arrays in methods.items():
        scores = Scores.from_arrays(arrays, method=name)
        result = {"experiment": "e", "method": name, "metric": metric, "status": "ok",
                  **get_metric(metric)(scores, gt)}
        rows += result_rows(result, row_inputs(metric, scores, n_models=2))
    return board_rows({metric: rows})


def test_pure_noise_lds_target_is_gated_and_a_strong_one_is_ranked():
    rng = np.random.default_rng(0)
    rows, pairwise = _board(*_lds_truth(rng, strength=0.0), rng)
    assert all(r["low_signal"] is True for r in rows) and pairwise["lds"] == []
    assert all(r["tied_with_best"] is None and r["rank_ci_low"] is None and r["p_vs_best"] is None for r in rows)
    assert all(np.isfinite(r["value"]) and r["ci_low"] <= r["value"] <= r["ci_high"] for r in rows)  # values stay
    assert sorted(r["rank"] for r in rows) == list(range(1, len(rows) + 1))  # the order of the values only

    rows, pairwise = _board(*_lds_truth(rng, strength=1.0, noise=0.5), rng)
    assert all(r["low_signal"] is False for r in rows) and pairwise["lds"]
    assert any(r["tied_with_best"] is True for r in rows)
    # every row is ranked with an interval, except per-seed rows with 2 scoring seeds (compare.untested_reason)
    assert all(r["rank_ci_low"] is not None or r.get("untested_reason") for r in rows)


@pytest.mark.parametrize("seeds", [2, 4])
def test_lds_gate_error_rate_under_the_null_and_power(seeds):
    """Over 60 pure-noise targets the gate lets at most 5% through; over 60 strong ones it gates none."""
    rng = np.random.default_rng(seeds)
    passed_null, gated_strong = 0, 0
    for _ in range(60):
        gt, _ = _lds_truth(rng, strength=0.0, seeds=seeds)
        passed_null += metric_signal({"metric": "lds", **target_fields(reliability(gt.subset, n_boot=200))})[0]
        gt, _ = _lds_truth(rng, strength=1.0, noise=2.0, seeds=seeds)  # r1 about 0.85: ceiling about 0.95
        gated_strong += not metric_signal({"metric": "lds", **target_fields(reliability(gt.subset, n_boot=200))})[0]
    print(f"R'={seeds}: pure noise passed {passed_null}/60, strong gated {gated_strong}/60")
    assert passed_null <= 3 and gated_strong == 0


def _variance_truth(rng, spread, m=50, q=20, seeds=8):
    """Subset j's models have standard deviation exp(u_j), u_j ~ U(-spread, spread); spread 0: equal
    variances, so the variance target is pure noise."""
    sd = np.exp(rng.uniform(-spread, spread, size=(m, 1, q)))
    masks = rng.random((m, 40)) < 0.5
    return GroundTruth(masks=masks, subset=sd * rng.normal(size=(m, seeds, q)), full=rng.normal(size=(2, q)))


@pytest.mark.parametrize("delta", ["variance", "w2"])
def test_spread_targets_gate_by_split_half_reliability(delta):
    rng = np.random.default_rng(1)
    null = [metric_signal({"metric": f"dlds_{delta}",
                           "split_half_reliability": split_half_reliability(delta, _variance_truth(rng, 0.0))})[0]
            for _ in range(40)]
    strong = [metric_signal({"metric": f"dlds_{delta}",
                             "split_half_reliability": split_half_reliability(delta, _variance_truth(rng, 2.0))})[0]
              for _ in range(40)]
    print(f"dlds_{delta}: pure noise passed {sum(null)}/40, strong passed {sum(strong)}/40")
    assert sum(null) <= 2 and sum(strong) == 40
    # two seeds per subset: one seed per half, the variance target is not computable -> gated
    two = _variance_truth(rng, 2.0, seeds=2)
    if delta == "variance":
        assert metric_signal({"metric": "dlds_variance", "split_half_reliability": split_half_reliability(
            "variance", two)}) == (False, "split-half reliability not computable (too few seeds per half)")


def test_gated_dlds_rows_have_no_stars_and_the_board_says_why(tmp_path):
    rng = np.random.default_rng(3)
    gt = _variance_truth(rng, 0.0)
    tau = [rng.normal(size=(20, 40)) for _ in range(2)]
    rows = []
    for name in ("a", "b"):
        scores = Scores.from_arrays([t + rng.normal(scale=0.1, size=t.shape) for t in tau] if name == "b" else tau,
                                    method=name)
        res = {"experiment": "e", "method": name, "metric": "dlds_variance", "status": "ok",
               **evaluate_dlds("variance", scores, gt, n_boot=200)}
        rows += result_rows(res, row_inputs("dlds_variance", scores, n_models=2))
    rows, pairwise = board_rows({"dlds_variance": rows})
    assert pairwise["dlds_variance"] == [] and all(r["tied_with_best"] is None for r in rows)
    path = tmp_path / "metrics.json"
    io.write_json(path, {"experiment": "e", "results": rows, "pairwise": pairwise})
    out = tmp_path / "lb"
    write_all([path], out / "l.csv", out / "l.md", out / "l.png", out / "l.html")
    section = (out / "l.md").read_text().split("### dlds_variance on e")[1]
    assert "**Low signal** (split-half reliability" in section and "★" not in section
    assert "(by value; low signal)" in section


@pytest.mark.parametrize("metric", ["mislabel_auc", "lds_fixed_seed", "randomization", "topk_drop_k10", "brittleness"])
def test_metrics_without_target_noise_are_never_gated(metric):
    ok, reason = metric_signal({"metric": metric})
    assert ok and reason
