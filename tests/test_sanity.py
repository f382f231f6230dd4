"""The model-randomization sanity check (target randomized, metric randomization) and the Kendall LDS."""

import time

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from conftest import TINY_WORKFLOW_GROUP, copy_workflow_run, run_snakemake, tiny_config
from tda_core import io
from tda_core.api import load_experiment
from tda_core.metrics.groundtruth import GroundTruth
from tda_core.metrics.kendall import _kendall_weighted, evaluate_lds_kendall, kendall_bootstrap, kendall_columns
from tda_core.metrics.lds import evaluate_lds
from tda_core.metrics.registry import lower_is_better, metric_reference, metric_target, metric_targets
from tda_core.metrics.rows import rank_rows
from tda_core.metrics.sanity import MAX_CORRELATION, evaluate_randomization
from tda_core.scores import Scores
from tda_core.stages.attribute import attribute_method
from tda_core.stages.evaluate import evaluate_experiment
from tda_core.stages.train import train_full
from tda_core.stages.context import build_context
from tda_core.targets import RANDOMIZED_SEED_OFFSET, target_context

NONE = {"mode": "none"}


# -- the randomization check through the real attribute + evaluate code path -------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = tiny_config(metrics=["randomization"], methods=["random", "grad_dot", "tracin"])
    cfg["results_dir"] = str(tmp_path_factory.mktemp("sanity"))
    exp = load_experiment(cfg, "tiny")
    for seed in range(exp.cfg["seeds"]):
        train_full(exp, seed, exp.model_path(seed), NONE)
    return exp


def test_randomized_view_replaces_every_checkpoint(tiny):
    ctx, index = target_context(build_context(tiny, [1]), "randomized")
    assert index is None
    trained, randomized = tiny.load_checkpoints(1), ctx.checkpoints(1)
    fresh = dict(tiny.build_model(1 + RANDOMIZED_SEED_OFFSET).named_parameters())
    assert len(trained) == len(randomized) == tiny.cfg["train"]["n_checkpoints"] + 1  # incl. step 0
    for t, r in zip(trained, randomized):
        assert r.step == t["step"]  # metadata kept (opt_state as trained)
        assert all(torch.equal(a, b) for a, b in zip(torch.utils._pytree.tree_leaves(r.opt_state),
                                                     torch.utils._pytree.tree_leaves(t["opt_state"])))
        for k, v in r.params.items():
            assert torch.equal(v, fresh[k].detach())
    k0 = next(iter(fresh))
    assert not torch.equal(trained[-1]["params"][k0], randomized[-1].params[k0])
    assert tiny.scores_path("grad_dot", 0, "randomized").name == "randomized_seed0.npy"
    assert ctx.query_x is tiny.splits.query_x and ctx.task is not None and ctx.task.measurement == "margin"


def test_randomization_fails_random_and_passes_gradient_methods(tiny):
    exp = tiny
    assert metric_target("randomization") == "randomized" and metric_targets("randomization") == ["randomized", "query"]
    jsons = []
    for method in exp.cfg["methods"]:
        metas = attribute_method(exp, method, ["0", "1"], ["query", "randomized"], {}, NONE)
        assert [m["status"] for m in metas] == ["ok"] * 4
        assert metas[-1]["init_seeds"] == [1 + RANDOMIZED_SEED_OFFSET]
    out = exp.root / "metrics.json"
    rows = evaluate_experiment(exp, ["randomization"], exp.cfg["methods"], None, None, out, NONE)  # layout's folders
    by = {r["method"]: r for r in rows}
    assert io.read_json(out)["results"][0]["metric"] == "randomization"
    # random's scores are seeded by the seed only: identical for both models
    assert by["random"]["value"] == pytest.approx(1.0) and by["random"]["passed"] is False
    assert "FAILED" in by["random"]["note"]
    for m in ("grad_dot", "tracin"):
        assert by[m]["passed"] is True and by[m]["value"] < MAX_CORRELATION, by[m]
        assert by[m]["ci_low"] <= by[m]["value"] <= by[m]["ci_high"] and by[m]["variant"] == "per-seed"
        assert by[m]["rank"] < by["random"]["rank"]  # lower is better: random ranks last
    assert by["random"]["rank"] == 3 and len(by["grad_dot"]["replicates"]) == 1000


def test_randomization_row_fails_when_the_reference_failed(tiny):
    exp = tiny
    attribute_method(exp, "random", ["0", "1"], ["query", "randomized"], {}, NONE)
    p = exp.scores_path("random", 1).with_suffix(".json")
    meta = io.read_json(p)
    io.write_json(p, {**meta, "status": "failed", "reason": "TdaError: boom"})
    rows = evaluate_experiment(exp, ["randomization"], ["random"], None, None, exp.root / "m2.json", NONE)
    assert rows[0]["status"] == "failed" and "query attribution" in rows[0]["reason"]


def test_lower_is_better_ranks_by_negated_value():
    assert lower_is_better("randomization") and not lower_is_better("lds") and metric_reference("lds") is None
    rng = np.random.default_rng(0)
    rows = [{"method": m, "variant": "", "metric": "randomization", "status": "ok", "value": v,
             "replicates": list(v + 0.01 * rng.standard_normal(200))} for m, v in (("a", 0.9), ("b", 0.1))]
    rank_rows(rows)
    assert [r["rank"] for r in rows] == [2, 1]


@pytest.mark.parametrize("relation,passes", [
    ("independent", True),     # the scores depend on the trained weights: they change completely
    ("same", False),           # unchanged by randomization
    ("anti", False),           # the same ranking flipped: as model-independent as "same"
    ("half_flipped", False),   # half the queries flipped, half unchanged: the signed mean is about 0
])
def test_randomization_decides_on_absolute_correlation(relation, passes):
    """Planted: trained scores T, randomized R = f(T) + small noise; a method whose scores only flip sign
    under randomization does not depend on the model (issue 17: it passed with the signed rho)."""
    rng = np.random.default_rng(0)
    trained = [rng.normal(size=(20, 80)) for _ in range(2)]
    flip = np.where(np.arange(20) % 2 == 0, -1.0, 1.0)[:, None]
    make = {"independent": lambda t: rng.normal(size=t.shape), "same": lambda t: t,
            "anti": lambda t: -t, "half_flipped": lambda t: flip * t}[relation]
    randomized = [make(t) + 0.2 * rng.normal(size=t.shape) for t in trained]
    res = evaluate_randomization(Scores.from_arrays(randomized, target="randomized"),
                                 GroundTruth(reference=Scores.from_arrays(trained)), n_boot=200)
    assert res["passed"] is passes
    assert (res["value"] < 0.2) if passes else (res["value"] > 0.9)
    if relation == "anti":
        assert res["signed_value"] < -0.9


# -- Kendall LDS ---------------------------------------------------------------------------------------
def test_kendall_equals_scipy_per_query():
    rng = np.random.default_rng(3)
    m, q = 25, 6
    pred = rng.normal(size=(m, q))
    target = pred + rng.normal(size=(m, q))
    pred[:6, 0] = 1.0  # ties in the prediction
    target[2:9, 1] = 0.5  # ties in the target
    pred[:, 2] = 4.0  # a constant column: nan, as scipy
    ref = np.array([kendalltau(pred[:, k], target[:, k]).statistic for k in range(q)])
    np.testing.assert_allclose(kendall_columns(pred, target), ref, rtol=1e-12, atol=1e-12, equal_nan=True)
    # a resampled replicate (duplicated subsets are ties) equals kendalltau on the resampled arrays
    idx = rng.integers(0, m, m)
    w = np.bincount(idx, minlength=m)[None].astype(np.float32)
    ref = np.array([kendalltau(pred[idx, k], target[idx, k]).statistic for k in range(q)])
    np.testing.assert_allclose(_kendall_weighted(pred, target, w)[0], ref, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_lds_kendall_ranks_planted_datamodel_above_noise():
    """Subset outputs generated by a linear datamodel: its true weights score high, noise about 0."""
    rng = np.random.default_rng(0)
    n, q, m, r = 200, 30, 60, 2
    masks = rng.random((m, n)) < 0.5
    true = rng.normal(size=(q, n))
    subset = (masks @ true.T)[:, None, :] + 2.0 * rng.normal(size=(m, r, q))  # [M, R', Q]
    gt = GroundTruth(masks=masks, subset=subset)
    good = evaluate_lds_kendall(Scores.from_arrays([true]), gt, n_boot=300)
    noise = evaluate_lds_kendall(Scores.from_arrays([rng.normal(size=(q, n))]), gt, n_boot=300)
    assert good["value"] > 0.5 and good["ci_low"] > noise["ci_high"]
    assert noise["ci_low"] < 0 < noise["ci_high"]
    # per query, the point estimate is scipy's tau_b of the additive prediction against the target
    pred, tgt = masks @ true.T, subset.mean(axis=1)
    ref = np.mean([kendalltau(pred[:, k], tgt[:, k]).statistic for k in range(q)])
    assert good["value"] == pytest.approx(ref, abs=1e-12)
    # same shape as lds; replicates paired with lds's (same draws): their correlation is high
    lds = evaluate_lds(Scores.from_arrays([true]), gt, n_boot=300)
    assert len(good["replicates"]) == len(lds["replicates"]) == 300
    assert np.corrcoef(good["replicates"], lds["replicates"])[0, 1] > 0.5
    per_seed = evaluate_lds_kendall(Scores.from_arrays([true, true + rng.normal(size=true.shape)]), gt, n_boot=100)
    assert "seed-averaged" in per_seed["variants"] and len(per_seed["per_seed"]) == 2


def test_lds_kendall_cost_is_small():
    """20 methods x 100 queries x 50 subsets, 2 seeds each (+ the seed-averaged variant), 1000 replicates."""
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(2, 50, 100)), rng.normal(size=(50, 100))
    t0 = time.perf_counter()
    for _ in range(20):
        kendall_bootstrap(pred, target)
        kendall_bootstrap(pred.mean(axis=0, keepdims=True), target)
    elapsed = time.perf_counter() - t0
    assert elapsed < 15.0, elapsed  # measured ~2-3.5 s on 2 shared cores; generous for slow CI


# -- the workflow plumbing: score_targets adds randomized, evaluate reads both targets -------------------
@pytest.mark.slow
@pytest.mark.xdist_group(TINY_WORKFLOW_GROUP)
def test_tiny_workflow_runs_the_sanity_check_and_kendall(repo, tmp_path, tiny_workflow_run):
    """tiny.yaml with metrics [lds, lds_kendall, randomization] (a test-only config: tiny.yaml itself is
    left as is), snakemake up to the evaluation bundle, on a copy of the shared tiny.yaml run: metrics are
    outside the config hash, so only the attributions (now with the randomized target) and evaluate run."""
    import yaml

    cfg = yaml.safe_load((repo / "workflow/config/tiny.yaml").read_text())
    cfg["tracking"] = {"mode": "none"}
    cfg["experiments"]["tiny-mlp"]["metrics"] = ["lds", "lds_kendall", "randomization"]
    cfg["experiments"]["tiny-mlp"].pop("removal", None)  # tiny.yaml's top-k removal is tested in test_workflow
    work = copy_workflow_run(tiny_workflow_run, tmp_path / "work")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(work, "results/tiny-mlp/metrics.json", configfile=tmp_path / "cfg.yaml", cores=1)
    scores = work / "results/tiny-mlp/scores"
    for m in ("random", "grad_dot", "tracin"):
        assert {p.name for p in (scores / m).glob("*.json")} == {
            "seed0.json", "seed1.json", "randomized_seed0.json", "randomized_seed1.json"}
    rows = io.read_json(work / "results/tiny-mlp/metrics.json")["results"]
    sanity = {r["method"]: r for r in rows if r["metric"] == "randomization"}
    assert sanity["random"]["passed"] is False and sanity["grad_dot"]["passed"] is True
    assert sanity["tracin"]["passed"] is True and sanity["random"]["rank"] == 3
    kendall = [r for r in rows if r["metric"] == "lds_kendall" and r["status"] == "ok"]
    assert {r["method"] for r in kendall} == {"random", "grad_dot", "tracin"}
    lds = {(r["method"], r["variant"]): r["value"] for r in rows if r["metric"] == "lds"}
    for r in kendall:  # Kendall sits below Spearman on the same predictions (grad_dot per-seed: 0.78 vs 0.91)
        if r["method"] != "random":
            assert 0 < r["value"] < lds[(r["method"], r["variant"])]
