"""bench/bench_halfwidth.py's sub-design helper against a planted datamodel whose sampling spread is known
by simulation: the half-width it reports on a sub-design of one data set must match the true 95%
half-width (1.96 x the SD of the LDS over fresh data sets of that size), and shrink as the truth does
when the subsets are cut to a quarter (about 1 / sqrt(m) in the subset part, plus a query part that stays)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tda_core.metrics.lds import group_predictions
from tda_core.metrics.stats import spearman_columns

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_halfwidth.py"
_spec = importlib.util.spec_from_file_location("bench_halfwidth", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

N, Q = 60, 30


def _dataset(rng, m, seeds=2):
    """Fresh queries and subsets: target = masks @ theta_q + seed noise, scores tau = theta + error."""
    theta = rng.normal(size=(Q, N))
    tau = theta + 0.8 * rng.normal(size=(Q, N))
    masks = (rng.random((m, N)) < 0.5).astype(np.float64)
    subset = (masks @ theta.T)[:, None, :] + 4.0 * rng.normal(size=(m, seeds, Q))  # [M, R', Q]
    return group_predictions(tau, masks)[None], subset  # preds [1, M, Q]


def test_subdesign_halfwidth_matches_the_planted_truth():
    rng = np.random.default_rng(0)
    big, small = 96, 24
    truth = {}
    for m in (big, small):  # the LDS's own spread over fresh data sets of m subsets (queries redrawn too)
        values = []
        for _ in range(400):
            preds, subset = _dataset(rng, m)
            values.append(np.nanmean(spearman_columns(preds[0], subset.mean(axis=1))))
        truth[m] = 1.959964 * np.std(values)
    # the helper on sub-designs of single data sets of `big` subsets, averaged over 8 data sets (one data
    # set's bootstrap half-width varies by ~20% around its mean here)
    got = {big: 0.0, small: 0.0}
    for d in range(8):
        preds, subset = _dataset(np.random.default_rng(100 + d), big)
        for m in (big, small):
            got[m] += float(bench.subdesign_halfwidths([preds], subset, m, 2, draws=3, n_boot=400,
                                                       rng=np.random.default_rng(d))[0]) / 8
    for m in (big, small):  # measured: 0.90 and 0.92 of the truth
        assert 0.75 < got[m] / truth[m] < 1.25, (m, got[m], truth[m])
    # a quarter of the subsets: the subset part doubles, the query part stays (truth: x1.7, not x2)
    assert 1.4 < truth[small] / truth[big] < 2.0, truth
    assert 0.85 < (got[small] / got[big]) / (truth[small] / truth[big]) < 1.18, (got, truth)

def test_fit_laws_recover_planted_parameters_and_subsets_needed():
    m = np.array([12.0, 25.0, 38.0, 50.0])
    fit = bench.fit_laws(m, 0.01 + 0.2 / np.sqrt(m))
    assert np.allclose(fit["A"], (0.01, 0.2), atol=1e-9)
    assert np.isclose(bench.subsets_needed("A", fit["A"], 0.04), (0.2 / 0.03) ** 2)
    fit = bench.fit_laws(m, np.sqrt(0.02 ** 2 + 0.05 / m))
    assert np.allclose(fit["B"], (0.0004, 0.05), atol=1e-9)
    assert np.isclose(bench.subsets_needed("B", fit["B"], 0.04), 0.05 / (0.04 ** 2 - 0.0004))
    assert bench.subsets_needed("B", (0.05 ** 2, 0.1), 0.04) == np.inf  # floor above the target
