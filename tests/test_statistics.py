"""Statistics of the metrics against ground truth known by simulation: the noise ceiling, CI coverage,
paired comparisons between methods, Holm, and the exactness of the vectorised bootstrap."""

import json

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from tda_core.metrics.compare import compare_methods, holm, paired_p, power
from tda_core.metrics.groundtruth import GroundTruth
from tda_core.metrics.lds import evaluate_lds, group_predictions
from tda_core.metrics.stats import (bootstrap_draws, ceiling_from_reliability, lds_bootstrap, reliability,
                                    reliability_from_ceiling, seeds_for_ceiling, spearman_columns,
                                    variance_components)
from tda_core.scores import Scores


def _linear_world(rng, n_subsets, n_query, n_train=150):
    """A known linear datamodel: masks [M, N] (each point in with prob 1/2), weights [Q, N], signal [M, Q]."""
    masks = rng.random((n_subsets, n_train)) < 0.5
    w = rng.normal(size=(n_query, n_train))
    return masks, w, group_predictions(w, masks)


def _seeds(rng, signal, r1, n_seeds):
    """[M, R', Q] measurements: signal + i.i.d. seed noise with single-seed Pearson reliability r1."""
    noise_sd = np.sqrt(signal.var(axis=0) * (1 - r1) / r1)  # per query: var_s / (var_s + var_n) = r1
    return signal[:, None, :] + rng.normal(size=(signal.shape[0], n_seeds, signal.shape[1])) * noise_sd


# -- building blocks ---------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_spearman_columns_and_bootstrap_replicate_match_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(25, 6))
    b = a + rng.normal(size=a.shape)
    a[:, 1] = np.round(a[:, 1])  # ties
    a[:, 3] = 2.0  # constant: nan
    got = spearman_columns(a, b)
    want = [spearmanr(a[:, q], b[:, q]).statistic if q != 3 else np.nan for q in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # one replicate of the joint bootstrap, recomputed by hand (duplicated subsets are ties)
    preds = np.stack([a, a + rng.normal(size=a.shape)])  # two scoring seeds
    res = lds_bootstrap(preds, b, n_boot=20, seed=3)
    draws = bootstrap_draws(6, 25, 20, 3, n_seeds=2)
    for k in (0, 11):
        sub, qs, ss = draws["subsets"][k], draws["queries"][k], draws["seeds"][k]
        per_q = np.nanmean([[spearmanr(preds[s][sub, q], b[sub, q]).statistic if q != 3 else np.nan for q in range(6)]
                            for s in ss], axis=0)
        # replicate correlations are computed in float32 (exact ranks; stats.spearman_bootstrap): ~1e-8 off
        assert res["raw_replicates"][k] == pytest.approx(np.nanmean(per_q[qs]), rel=1e-6)


def test_draws_are_shared_between_single_and_per_seed_methods():
    d1, d2 = bootstrap_draws(30, 40, 50, seed=7), bootstrap_draws(30, 40, 50, seed=7, n_seeds=3)
    assert d1["seeds"] is None and d2["seeds"].shape == (50, 3)
    assert np.array_equal(d1["queries"], d2["queries"]) and np.array_equal(d1["subsets"], d2["subsets"])
    # a per-seed method whose seeds agree has exactly the replicates of the single-array method
    rng = np.random.default_rng(1)
    masks, w, signal = _linear_world(rng, 40, 30)
    gt = GroundTruth(masks=masks, subset=_seeds(rng, signal, 0.5, 2))
    one = evaluate_lds(Scores.from_arrays([w]), gt, n_boot=200)
    two = evaluate_lds(Scores.from_arrays([w, w]), gt, n_boot=200)
    assert one["replicates"] == two["replicates"]
    assert two["variants"]["seed-averaged"]["replicates"] == one["replicates"]
    json.dumps(two)  # JSON-serialisable
    assert len(two["replicates"]) == 200 and two["ceiling"] > 0 and two["target_seeds"] == 2


def test_holm_on_a_hand_made_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(0.06, 1*0.04)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert paired_p(np.zeros(10)) == 1.0 and paired_p(np.ones(10)) == 0.0


def test_planning_inverses():
    for r1, n in ((0.05, 2), (0.3, 5), (0.7, 3)):
        c = ceiling_from_reliability(r1, n)
        assert reliability_from_ceiling(c, n) == pytest.approx(r1)
        assert seeds_for_ceiling(r1, c) == pytest.approx(n)
    assert ceiling_from_reliability(-0.1, 4) == 0.0
    one_seed = reliability(np.zeros((10, 1, 5)) + np.arange(10)[:, None, None])
    assert np.isnan(one_seed["ceiling"]) and "2 seeds" in one_seed["note"]


# -- noise ceiling by simulation ---------------------------------------------------------------------
@pytest.mark.parametrize("n_seeds", [2, 5])
@pytest.mark.parametrize("r1", [0.05, 0.3, 0.7])
def test_ceiling_is_the_lds_of_the_true_datamodel(r1, n_seeds):
    rng = np.random.default_rng(int(r1 * 100) + n_seeds)
    truth_lds, ceilings = [], []
    for _ in range(10):
        masks, w, signal = _linear_world(rng, 100, 100)
        subset = _seeds(rng, signal, r1, n_seeds)
        truth_lds.append(np.nanmean(spearman_columns(signal, subset.mean(axis=1))))
        ceilings.append(reliability(subset, n_boot=200)["ceiling"])
    err = np.mean(ceilings) - np.mean(truth_lds)
    print(f"r1={r1} R'={n_seeds}: truth LDS {np.mean(truth_lds):.3f}, ceiling {np.mean(ceilings):.3f}, "
          f"error {err:+.3f}")
    assert abs(err) < 0.03


def test_noise_only_ceiling_is_near_zero():
    rng = np.random.default_rng(11)
    for n_seeds in (2, 5):
        res = [reliability(rng.normal(size=(50, n_seeds, 100)), n_boot=200) for _ in range(20)]
        mean_ceiling = np.mean([r["ceiling"] for r in res])
        plain = np.mean([ceiling_from_reliability(r["reliability"], n_seeds) for r in res])
        print(f"noise only, R'={n_seeds}: mean ceiling {mean_ceiling:.3f} (plain clipped estimator {plain:.3f})")
        assert mean_ceiling < 0.05
        assert sum("no reliable signal" in r.get("note", "") for r in res) >= 15


# -- CI coverage by simulation -----------------------------------------------------------------------
def _method_world(rng, n_subsets, n_query, n_train=100):
    """Scores = true weights + noise; targets = signal + seed-mean noise whose size varies by query."""
    masks, w, signal = _linear_world(rng, n_subsets, n_query, n_train)
    scores = w + rng.normal(size=w.shape)
    noise_sd = np.sqrt(signal.var(axis=0)) * np.exp(rng.normal(0, 0.5, size=n_query))
    target = signal + rng.normal(size=signal.shape) * noise_sd
    return group_predictions(scores, masks), target


def test_joint_bootstrap_ci_covers_the_true_lds():
    true_value = np.mean([np.nanmean(spearman_columns(*_method_world(np.random.default_rng(100 + k), 2000, 1000)))
                          for k in range(2)])  # 2000 subsets x 2000 queries
    rng = np.random.default_rng(0)
    covered, widths = [], []
    for _ in range(200):
        pred, target = _method_world(rng, 50, 30)
        res = lds_bootstrap(pred[None], target, n_boot=300, seed=int(rng.integers(1 << 30)))
        covered.append(res["ci_low"] <= true_value <= res["ci_high"])
        widths.append(res["ci_high"] - res["ci_low"])
    coverage = np.mean(covered)
    print(f"true LDS {true_value:.3f}; 95% CI coverage {coverage:.3f} over 200 benchmarks, "
          f"mean width {np.mean(widths):.3f}")
    assert 0.92 <= coverage <= 0.98


# -- paired comparisons ------------------------------------------------------------------------------
def test_identical_scores_are_tied_exactly():
    rng = np.random.default_rng(2)
    masks, w, signal = _linear_world(rng, 40, 30)
    gt = GroundTruth(masks=masks, subset=_seeds(rng, signal, 0.3, 2))
    scores = w + rng.normal(size=w.shape)
    a = evaluate_lds(Scores.from_arrays([scores]), gt, n_boot=300)
    b = evaluate_lds(Scores.from_arrays([scores.copy()]), gt, n_boot=300)
    worse = evaluate_lds(Scores.from_arrays([rng.normal(size=w.shape)]), gt, n_boot=300)
    res = {"a": a, "b": b, "r": worse}
    cmp = compare_methods({**{k: v["value"] for k, v in res.items()}, "gone": float("nan")},
                          {**{k: v["replicates"] for k, v in res.items()}, "gone": a["replicates"]})
    pair = next(p for p in cmp["pairwise"] if {p["a"], p["b"]} == {"a", "b"})
    assert pair["diff"] == 0 and pair["ci_low"] == 0 == pair["ci_high"] and pair["p"] == 1 and pair["p_holm"] == 1
    assert cmp["methods"]["a"]["tied_with_best"] and cmp["methods"]["b"]["tied_with_best"]
    assert cmp["methods"]["a"]["rank"] == cmp["methods"]["b"]["rank"] == 1
    assert cmp["methods"]["r"]["rank"] == 3 and not cmp["methods"]["r"]["tied_with_best"]
    assert cmp["methods"]["gone"]["rank"] is None and cmp["excluded"] == ["gone"]
    json.dumps(cmp)


def test_truth_plus_growing_noise_is_declared_worse_beyond_three_standard_errors():
    # the expected LDS of w + noise(sd) against the target, from a large sample (not the code under test)
    big_rng = np.random.default_rng(5)
    masks_b, w_b, signal_b = _linear_world(big_rng, 2000, 500)
    target_b = signal_b + big_rng.normal(size=signal_b.shape) * np.sqrt(signal_b.var(axis=0))  # reliability 0.5
    sds = [0.0, 0.02, 0.04, 0.07, 0.1, 0.2, 0.5]

    def lds(scores, masks, target):
        return np.nanmean(spearman_columns(group_predictions(scores, masks), target))

    expected = {sd: lds(w_b, masks_b, target_b) - lds(w_b + big_rng.normal(size=w_b.shape) * sd, masks_b, target_b)
                for sd in sds}
    rng = np.random.default_rng(6)
    masks, w, signal = _linear_world(rng, 100, 100)
    gt = GroundTruth(masks=masks, subset=_seeds(rng, signal, 1 / 3, 2))  # 2-seed mean: reliability 0.5
    truth = evaluate_lds(Scores.from_arrays([w]), gt, n_boot=500)
    checked = 0
    for sd in sds:
        noisy = evaluate_lds(Scores.from_arrays([w + rng.normal(size=w.shape) * sd]), gt, n_boot=500)
        cmp = compare_methods({"truth": truth["value"], "noisy": noisy["value"]},
                              {"truth": truth["replicates"], "noisy": noisy["replicates"]})
        se = np.std(np.subtract(truth["replicates"], noisy["replicates"]))
        significant = cmp["best"] == "truth" and not cmp["methods"]["noisy"]["tied_with_best"]
        print(f"noise sd {sd}: expected drop {expected[sd]:.4f} = {expected[sd] / se if se else 0:.1f} SE, "
              f"p {cmp['methods']['noisy']['p_vs_best']:.3f}, significant {significant}")
        if sd == 0:
            assert not significant and cmp["methods"]["noisy"]["p_vs_best"] == 1.0
        elif expected[sd] > 3 * se:
            assert significant
            checked += 1
    assert checked >= 2


def test_power_plans_seeds_and_subsets():
    rng = np.random.default_rng(9)
    masks, w, signal = _linear_world(rng, 60, 60)
    subset = _seeds(rng, signal, 0.3, 2)
    pred = group_predictions(w, masks)
    comp = variance_components(pred, subset.mean(axis=1), n_boot=300)
    assert comp["var_joint"] > 0 and comp["var_queries"] > 0 and comp["var_subsets"] > 0
    # the corrected joint variance counts the query-specific subset noise once, not in both parts
    assert comp["var_joint"] < comp["var_queries"] + comp["var_subsets"]
    rel = reliability(subset, n_boot=300)
    plan = power(subset, comp, target_halfwidth=0.01, target_ceiling=0.9, reliability_result=rel)
    n = seeds_for_ceiling(rel["reliability"], 0.9)
    assert plan["seeds_per_subset_needed"] == int(np.ceil(n)) and plan["seeds_per_subset_needed"] > 2
    if plan["subsets_needed"] is not None:
        assert plan["subsets_needed"] > 60
        n = plan["subsets_needed"]
        z = 1.959964
        assert z * np.sqrt(comp["var_between_queries"] + comp["var_subsets"] * 60 / n) <= 0.01
        assert z * np.sqrt(comp["var_between_queries"] + comp["var_subsets"] * 60 / (n - 1)) > 0.01
    else:
        assert "more queries" in plan["note"]
    easy = power(subset, comp, target_halfwidth=0.5, target_ceiling=0.5, reliability_result=rel)
    assert easy["subsets_needed"] < 60 and easy["seeds_per_subset_needed"] == 1


# -- issue 17: per-query ceilings, range of correlation CIs, star vs rank interval -------------------
def _varying_world(rng, r_q, n_seeds, n_subsets=100):
    """Measurements [M, R', Q] whose query q has single-seed reliability r_q (r_q = 0: pure noise), and
    the noise-free signal [M, Q] (0 for pure-noise queries)."""
    masks, _, signal = _linear_world(rng, n_subsets, len(r_q))
    signal = signal * (r_q > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        noise_sd = np.where(r_q > 0, np.sqrt(signal.var(axis=0) * (1 - r_q) / r_q), 1.0)
    return signal, signal[:, None, :] + rng.normal(size=(n_subsets, n_seeds, len(r_q))) * noise_sd


@pytest.mark.parametrize("spread", ["uniform", "half noise"])
@pytest.mark.parametrize("n_seeds", [2, 5])
def test_ceiling_is_the_mean_per_query_ceiling_when_reliability_varies(spread, n_seeds):
    """The ceiling claims to be about the LDS a perfect predictor of the true mean reaches; with
    per-query reliabilities that vary, that is the mean of per-query ceilings, not the ceiling of the
    mean reliability (concave map: +0.06 for uniform spread, +0.24/+0.36 for half-noise queries)."""
    rng = np.random.default_rng(7 + n_seeds)
    truth, reported, of_mean = [], [], []
    for _ in range(10):
        r_q = rng.uniform(0.02, 0.9, 100) if spread == "uniform" else np.where(np.arange(100) < 50, 0.0, 0.6)
        signal, subset = _varying_world(rng, r_q, n_seeds)
        lds = spearman_columns(signal, subset.mean(axis=1))
        truth.append(np.mean(np.where(np.isfinite(lds), lds, 0.0)))  # a constant (noise) query: LDS 0
        rel = reliability(subset, n_boot=200)
        reported.append(rel["ceiling"])
        of_mean.append(ceiling_from_reliability(rel["reliability"], n_seeds))
    err, old_err = np.mean(reported) - np.mean(truth), np.mean(of_mean) - np.mean(truth)
    print(f"{spread}, R'={n_seeds}: LDS of the truth {np.mean(truth):.3f}, ceiling {np.mean(reported):.3f} "
          f"({err:+.3f}); ceiling of the mean reliability {np.mean(of_mean):.3f} ({old_err:+.3f})")
    assert abs(err) < 0.035


def test_correlation_ci_bounds_stay_within_minus_one_to_one():
    # few subsets and a near-perfect predictor: the crossed-design shrink re-centres replicates on the
    # point estimate, which pushed the old upper bound past 1
    highest = []
    for noise in (0.05, 0.1):
        rng = np.random.default_rng(0)
        for k in range(60):
            target = rng.normal(size=(5, 27))
            res = lds_bootstrap((target + noise * rng.normal(size=target.shape))[None], target, n_boot=300, seed=k)
            assert -1 <= res["ci_low"] <= res["ci_high"] <= 1
            finite = res["replicates"][np.isfinite(res["replicates"])]
            assert np.all(np.abs(finite) <= 1)
            highest.append(res["ci_high"])
    print(f"highest upper bound {max(highest):.4f}")


def test_star_and_rank_interval_come_from_one_procedure():
    """Rows with known true values and normal paired replicates: the star is exactly 'rank interval
    starts at 1', and the rank intervals cover all true ranks at once in >= 95% of benchmarks."""
    rng = np.random.default_rng(3)
    true = np.array([0.50, 0.50, 0.47, 0.45, 0.40])  # true ranks 1, 1, 3, 4, 5 (rows 0 and 1 tied)
    true_rank = rankdata(-true, method="min")
    covered, disagree = [], 0
    for _ in range(300):
        shared = rng.normal(size=(500, 1)) * 0.01  # draws shared by all rows (paired)
        est = true + rng.normal(size=5) * 0.015
        reps = est + shared + rng.normal(size=(500, 5)) * 0.015
        cmp = compare_methods({f"m{k}": est[k] for k in range(5)}, {f"m{k}": reps[:, k] for k in range(5)})
        rows = [cmp["methods"][f"m{k}"] for k in range(5)]
        disagree += sum(r["tied_with_best"] != (r["rank_ci_low"] == 1) for r in rows)
        # the truth has ties: a true rank is covered if the interval meets the tied group's range
        covered.append(all(r["rank_ci_low"] <= true_rank[k] + np.sum(true == true[k]) - 1 and true_rank[k] <= r["rank_ci_high"]
                           for k, r in enumerate(rows)))
    print(f"simultaneous coverage of the true ranks {np.mean(covered):.3f}; star / interval disagreements {disagree}")
    assert disagree == 0
    assert np.mean(covered) >= 0.95
