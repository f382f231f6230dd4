"""The claims table's verdicts against planted truths: the TOST equivalence verdict of "IF approaches
unrolling" (error rate at the margin, power at 0), Holm over the table, p never printed as 0, the
pruning claim's test over scoring groups, and the score correlation beside the equivalence claim."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from tda_core import io
from tda_core.claims import (EQUIVALENCE_MARGIN, claims_table, equivalence_test, equivalence_verdict,
                             score_correlation)

MARGIN = EQUIVALENCE_MARGIN


def _bootstrap_rows(per_query_a, per_query_b, rng, n_boot=600):
    """Two rows whose value is the mean over queries and whose replicates share the resampled queries
    (the paired bootstrap the LDS rows carry)."""
    q = len(per_query_a)
    idx = rng.integers(0, q, size=(n_boot, q))
    return ({"value": float(per_query_a.mean()), "replicates": per_query_a[idx].mean(axis=1)},
            {"value": float(per_query_b.mean()), "replicates": per_query_b[idx].mean(axis=1)})


def _verdicts(true_diff, n_sim, rng, n_query=60, spread=0.1):
    """Verdicts of the equivalence test on simulated benchmarks: per-query LDS of A and B with a planted
    mean difference `true_diff` (B's per-query values are shared noise, A adds the difference and its own noise)."""
    out = []
    for _ in range(n_sim):
        b = 0.8 + rng.normal(scale=0.1, size=n_query)
        a = b + true_diff + rng.normal(scale=spread, size=n_query)
        ra, rb = _bootstrap_rows(a, b, rng)
        test = equivalence_test(ra["value"] - rb["value"], ra["replicates"] - rb["replicates"])
        out.append(equivalence_verdict(test, test["p"], "A", "B"))
    return np.array(out)


@pytest.mark.parametrize("true_diff", [MARGIN, -MARGIN])
def test_tost_says_equivalent_at_most_5_percent_when_the_difference_is_the_margin(true_diff):
    rng = np.random.default_rng(1 if true_diff > 0 else 2)
    verdicts = _verdicts(true_diff, 800, rng)
    rate = np.mean(verdicts == "equivalent")
    print(f"true difference {true_diff:+.2f}: equivalent in {rate:.3f}")
    # nominal 5% at the boundary; 800 simulations: SE 0.008
    assert rate <= 0.065


def test_tost_has_power_when_the_methods_are_equal_and_finds_the_better_side_beyond_the_margin():
    rng = np.random.default_rng(3)
    at_zero = _verdicts(0.0, 400, rng)
    power = np.mean(at_zero == "equivalent")
    print(f"power at a true difference of 0: {power:.3f}")
    assert power >= 0.9  # SE of the mean difference 0.013, 90% CI half-width 0.021 < margin 0.05
    assert not np.any(np.char.startswith(at_zero.astype(str), "not equivalent"))
    beyond = _verdicts(3 * MARGIN, 200, rng)
    assert np.mean(beyond == "not equivalent (A better)") >= 0.95
    below = _verdicts(-3 * MARGIN, 200, rng)
    assert np.mean(below == "not equivalent (B better)") >= 0.95
    # between the two: never a verdict that rewards the difference; mostly inconclusive
    edge = _verdicts(1.2 * MARGIN, 200, rng)
    assert np.mean(edge == "equivalent") <= 0.05


def _bundle(exp, scenario, rows, agreement=None):
    out = {"experiment": exp, "scenario": scenario, "results": [
        {"experiment": exp, "metric": "lds", "method": m, "variant": v, "status": "ok", "value": float(np.mean(r)),
         "replicates": list(map(float, r))} for (m, v), r in rows.items()]}
    if agreement is not None:
        out["score_agreement"] = agreement
    return out


def test_if_beating_unrolling_is_not_equivalence():
    """The audit's bug: IF 0.391 vs unrolled 0.233 printed 'holds' for 'IF approaches unrolling'."""
    rng = np.random.default_rng(4)
    noise = rng.normal(scale=0.01, size=1000)
    rows = {("if_ekfac", "per-seed"): 0.391 + noise, ("unrolled", "per-seed"): 0.233 + noise * 0.9}
    agreement = [{"a": "if_ekfac", "b": "unrolled", "spearman_mean": 0.41}]
    table = claims_table(None, [_bundle("e", "converged_small_step", rows, agreement)], [])
    row = table[table.claim.str.contains("approaches unrolling")].iloc[0]
    assert row.verdict == "not equivalent (if_ekfac better)"
    assert row["score correlation"] == "0.410"
    # and equal methods (difference 0.01, tight) are equivalent
    rows = {("if_ekfac", "per-seed"): 0.90 + noise, ("unrolled", "per-seed"): 0.89 + noise}
    table = claims_table(None, [_bundle("e", "converged_small_step", rows)], [])
    assert table[table.claim.str.contains("approaches unrolling")].iloc[0].verdict == "equivalent"


def test_claims_are_holm_corrected_over_the_table_and_p_is_never_printed_as_zero():
    # three experiments where SOURCE beats IF with a raw bootstrap p of 0.02 each: Holm makes it 0.06
    b = 1000
    bundles = []
    for k in range(3):
        d = np.linspace(0.001, 0.1, b)
        d[:10] = -0.01  # 10 of 1000 replicate differences <= 0: p = 2 * 0.01
        base = np.full(b, 0.5)
        bundles.append(_bundle(f"e{k}", "non_converged", {("source", "per-seed"): base + d,
                                                           ("if_ekfac", "per-seed"): base}))
    # one experiment where every replicate favours SOURCE: bootstrap p 0, printed "< 0.001"
    bundles.append(_bundle("e3", "non_converged", {("source", "per-seed"): np.full(b, 0.6) + np.linspace(0, .01, b),
                                                   ("if_ekfac", "per-seed"): np.full(b, 0.5)}))
    table = claims_table(None, bundles, []).set_index("experiment")
    assert list(table.loc[["e0", "e1", "e2"], "p"]) == ["0.02"] * 3
    assert list(table.loc[["e0", "e1", "e2"], "p (Holm, table)"]) == ["0.06"] * 3
    assert list(table.loc[["e0", "e1", "e2"], "verdict"]) == ["not significant"] * 3
    assert table.loc["e3", "p"] == "< 0.001" and table.loc["e3", "verdict"] == "holds"
    assert "0" not in set(table["p"]) | set(table["p (Holm, table)"])


def test_holm_keeps_the_familywise_error_of_null_claims_at_5_percent():
    """Five experiments where SOURCE and IF are equal in truth, each row's replicates an exact bootstrap
    (normal around the estimate with the true SE, so each raw p is calibrated): the table's verdicts
    err in any experiment at most 5% of the time (uncorrected: 1 - 0.95^5 = 0.23)."""
    rng = np.random.default_rng(5)
    se, n_sim, any_false, raw_false = 0.02, 300, 0, 0
    for _ in range(n_sim):
        bundles = []
        for k in range(5):
            estimate = rng.normal(0.0, se)
            reps = {("source", "per-seed"): 0.5 + estimate + rng.normal(0.0, se, size=400),
                    ("if_ekfac", "per-seed"): np.full(400, 0.5)}
            bundle = _bundle(f"e{k}", "non_converged", reps)
            bundle["results"][0]["value"] = 0.5 + estimate
            bundles.append(bundle)
        table = claims_table(None, bundles, [])
        any_false += bool((table.verdict != "not significant").any())
        raw_false += bool((table.p.map(lambda p: p.startswith("<") or float(p) < 0.05)).any())
    rate = any_false / n_sim
    print(f"family-wise error over 5 null claims: {rate:.3f} (uncorrected: {raw_false / n_sim:.3f})")
    assert rate <= 0.07 and raw_false / n_sim >= 0.15


# -- pruning claim ---------------------------------------------------------------------------------
def _pruning_summary(path, rng, effect, n_groups=3, models_per_group=2, seeds_per_group=2,
                     set_sd=0.01, seed_sd=0.004):
    """A pruning summary with a planted truth: every selected set has its own effect on accuracy
    (N(0, set_sd), the draw of the scoring models), every retrain seed its own (shared by the variants:
    paired), d-TDA adds `effect` on average. Group means are what the claim tests."""
    def group_mean(n_sets, shift, seed_effects):
        sets = shift + rng.normal(scale=set_sd, size=n_sets)
        return float(np.mean([0.9 + s + e for s in sets for e in seed_effects]))

    rows = {"dtda": [], "fixed": [], "random": []}
    for _ in range(n_groups):
        seed_effects = rng.normal(scale=seed_sd, size=seeds_per_group)
        rows["dtda"].append(group_mean(1, effect, seed_effects))
        rows["fixed"].append(group_mean(models_per_group, 0.0, seed_effects))
        rows["random"].append(group_mean(1, -0.05, seed_effects))
    def row(method, variant, values):
        return {"experiment": "p", "method": method, "variant": variant, "base_variant": variant.split("-")[0],
                "selection": "unbalanced", "p": 10.0, "status": "ok", "test_accuracy_mean": float(np.mean(values)),
                "test_loss_mean": 0.3, "test_accuracy_by_group": values}
    summary = {"experiment": "p", "label_noise": 0.1, "rows": [
        row("m", "dtda", rows["dtda"]), row("m", "fixed", rows["fixed"]),
        row("random removal", "baseline", rows["random"])]}
    if path is None:
        return summary
    io.write_json(path, summary)
    return path


def test_pruning_claim_tests_over_scoring_groups_with_its_nominal_error_rate_and_power(tmp_path):
    rng = np.random.default_rng(6)
    false = 0
    n_sim = 300
    for k in range(n_sim):
        table = claims_table(None, [], [_pruning_summary(tmp_path / "s.json" if k == 0 else None, rng, effect=0.0)])
        dtda_vs_fixed = table[table.A.str.contains("dtda")].iloc[0]
        assert "3 groups" in dtda_vs_fixed["A - B [CI]"]
        false += dtda_vs_fixed.verdict != "not significant"
    rate = false / n_sim
    print(f"d-TDA vs fixed under the null (set-to-set variation planted): {rate:.3f} significant")
    assert rate <= 0.07  # at most the nominal 5% (Holm over the table's two tests only lowers it)
    hits = 0
    for _ in range(60):
        table = claims_table(None, [], [_pruning_summary(None, rng, effect=0.08,
                                                         set_sd=0.005, seed_sd=0.002)])
        hits += table[table.A.str.contains("dtda")].iloc[0].verdict == "holds"
    assert hits >= 48


def test_pruning_claim_with_one_scoring_group_is_not_testable(tmp_path):
    rng = np.random.default_rng(7)
    table = claims_table(None, [], [_pruning_summary(tmp_path / "s.json", rng, effect=0.05, n_groups=1)])
    assert set(table.verdict) == {"not testable (1 scoring group(s); needs >= 2)"}
    assert set(table.p) == {"n/a"}


def test_score_correlation_is_the_mean_per_query_spearman_over_seeds():
    rng = np.random.default_rng(8)
    a = [rng.normal(size=(5, 30)) for _ in range(2)]
    b = [x + rng.normal(scale=s, size=x.shape) for x, s in zip(a, (0.5, 2.0))]
    want = np.mean([spearmanr(x[q], y[q])[0] for x, y in zip(a, b) for q in range(5)])
    got = score_correlation(a, b)
    assert got["spearman_mean"] == pytest.approx(want, abs=1e-12)
    assert got["pearson_mean"] == pytest.approx(np.mean([np.corrcoef(x[q], y[q])[0, 1] for x, y in zip(a, b)
                                                         for q in range(5)]), abs=1e-12)


def test_t_based_tost_error_rate_at_the_margin_and_power_at_zero():
    """equivalence_test_t (the claims' TOST on row_difference's se and df) by simulation with a known
    truth: the difference is N(true, sigma^2), its variance estimate sigma^2 chi2_df / df."""
    from tda_core.claims import equivalence_test_t

    rng = np.random.default_rng(17)
    sigma, df, n = 0.015, 12.0, 4000

    def rate(true_diff):
        d = rng.normal(true_diff, sigma, size=n)
        se = sigma * np.sqrt(rng.chisquare(df, size=n) / df)
        tests = [equivalence_test_t(float(x), float(s), df) for x, s in zip(d, se)]
        return np.mean([equivalence_verdict(t, t["p"]) == "equivalent" for t in tests])

    at_margin = [rate(EQUIVALENCE_MARGIN), rate(-EQUIVALENCE_MARGIN)]
    assert max(at_margin) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / n), at_margin  # size of TOST: at most alpha
    assert min(at_margin) >= 0.03, at_margin  # and not far below it at the boundary
    assert rate(0.0) >= 0.8  # power at a true 0: P(|d| + t_.95,12 se < margin) ~ 0.87 (margin / sigma = 3.3)
    far = equivalence_test_t(3 * EQUIVALENCE_MARGIN, sigma, df)
    assert equivalence_verdict(far, far["p"], "IF", "unrolled") == "not equivalent (IF better)"
