"""Top-k removal and brittleness: the helpers on hand-computed cases, and the stage against brute-force
retraining (train_models called here, one run at a time, with masks built here) on a tiny problem whose
scores are exact leave-one-out effects computed in the test."""

import json

import numpy as np
import pytest
import scipy.stats
from conftest import tiny_config

from tda_core import io
from tda_core.api import load_experiment
from tda_core.config import validate_config
from tda_core.errors import ConfigError
from tda_core.removal import (RANDOM_BASELINE, brittleness, k_values, mean_drop, random_set, retrain_seeds,
                              sample_queries, smallest_flip, top_k)
from tda_core.stages.removal import removal_full, removal_random, removal_retrain, removal_summary
from tda_core.tasks import margin
from tda_core.training import Run, train_models

KS = [2, 12]
SCORING_SEEDS, FRESH_SEEDS = [0], [1, 2]
N_QUERY = 3


def test_k_values_counts_and_fractions():
    assert k_values([5, 0.1, 5.0, 0.5], 100) == [5, 10, 50]
    for bad in ([0.001], [100], [2.5]):  # rounds to 0, removes all, neither count nor fraction
        with pytest.raises(ConfigError):
            k_values(bad, 100)


def test_retrain_seeds_skip_scoring_and_pruning_seeds():
    assert retrain_seeds(2, 3) == [2, 3, 4]
    assert retrain_seeds(2, 3, pruning_seeds=[2, 3, 4, 5, 6]) == [7, 8, 9]
    assert retrain_seeds(2, [10, 11], pruning_seeds=[2]) == [10, 11]
    for bad in ([1, 9], [3]):
        with pytest.raises(ConfigError):
            retrain_seeds(2, bad, pruning_seeds=[3])


def test_config_checks_the_removal_block():
    cfg = tiny_config(removal={"methods": ["grad_dot"], "retrain_seeds": [0]})
    with pytest.raises(ConfigError, match="overlap"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match="not in its methods"):
        validate_config(tiny_config(removal={"methods": ["trak"]}))
    ok = validate_config(tiny_config(removal={"methods": ["grad_dot"]}))["experiments"]["tiny"]["removal"]
    assert ok["ks"] and ok["steps"] == "full_data" and ok["random_baseline"] is True


def test_top_k_random_set_and_query_sample():
    assert top_k(np.array([0.1, 3.0, -2.0, 3.0, 0.5]), 3).tolist() == [1, 3, 4]
    assert top_k(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]  # ties: lower index first
    a = random_set(50, 5, query=3)
    assert len(set(a)) == 5 and np.array_equal(a, random_set(50, 5, query=3))
    assert not np.array_equal(a, random_set(50, 5, query=4))
    q = sample_queries(20, 5, seed=0)
    assert len(set(q)) == 5 and q.max() < 20 and sample_queries(3, 5, 0).tolist() == [0, 1, 2]


def test_mean_drop_and_its_intervals_by_hand():
    full = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])  # [S, Q]
    removed = np.array([[0.0, 1.0, 3.0], [0.0, 2.0, 1.0]])
    d = mean_drop(full, removed, n_boot=400)
    assert d["value"] == pytest.approx(np.mean([1, 1, 0, 2, 0, 1]))
    assert d["per_query"] == pytest.approx([1.5, 0.5, 0.5])
    per_seed = np.array([2 / 3, 1.0])
    half = scipy.stats.t.ppf(0.975, 1) * per_seed.std(ddof=1) / np.sqrt(2)
    assert d["seed_t_ci"] == pytest.approx([per_seed.mean() - half, per_seed.mean() + half])
    assert min(d["replicates"]) >= 0 and max(d["replicates"]) <= 2  # means of resampled cells in [0, 2]
    assert d["ci_low"] <= d["value"] <= d["ci_high"]


def test_brittleness_smallest_flip_and_censoring_by_hand():
    full = np.array([[1.0, 1.0, -1.0, 2.0], [1.0, 1.0, -1.0, 2.0]])  # query 2 is wrong: not eligible
    by_k = {1: np.array([[0.5, -1.0, -1.0, 1.0]] * 2),  # query 1 flips at k=1
            4: np.array([[-0.5, -1.0, -1.0, 1.0]] * 2),  # query 0 at k=4
            9: np.array([[0.5, -1.0, -1.0, 0.5]] * 2)}  # query 3 never: censored at 10
    eligible, smallest = smallest_flip(full, by_k)
    assert eligible.tolist() == [True, True, False, True] and smallest[eligible].tolist() == [4, 1, 10]
    b = brittleness(full, by_k)
    assert b["value"] == 4 and b["n_eligible"] == 3 and not b["censored"]
    assert b["flipped_fraction"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert b["smallest_k"] == [4, 1, None, 10]
    never = brittleness(full, {1: full, 4: full})
    assert never["value"] == 5 and never["censored"] and never["flipped_fraction"] == [0.0, 0.0]


def test_brittleness_interval_resamples_the_retrain_seeds():
    """Planted: query q's margin a_q - 0.05 k (flips past k = a_q / 0.05), plus a retrain-seed shift u_s
    common to every query (one model) and per-cell noise; 4 seeds, 30 queries. The truth is the population
    median of the smallest flipping k of the grid (infinitely many seeds and queries). Resampling only the
    queries ignored u_s (measured coverage 0.46); resampling seeds too covers it (measured 0.90)."""
    ks = list(range(2, 62, 2))
    rng = np.random.default_rng(99)
    a_pop = rng.uniform(0.5, 3.0, size=20000)
    truth = float(np.median([next((k for k in ks if k > a / 0.05), ks[-1] + 1) for a in a_pop]))
    sims, covered, widths = 150, 0, []
    for _ in range(sims):
        a = rng.uniform(0.5, 3.0, size=30)
        u = 1.5 * rng.normal(size=(4, 1))
        full = a[None] + u + 0.5 * rng.normal(size=(4, 30))
        by_k = {k: a[None] - 0.05 * k + u + 0.5 * rng.normal(size=(4, 30)) for k in ks}
        b = brittleness(full, by_k, n_boot=200)
        covered += b["ci_low"] <= truth <= b["ci_high"]
        widths.append(b["ci_high"] - b["ci_low"])
    print(f"brittleness: truth {truth}, coverage {covered}/{sims}, mean CI width {np.mean(widths):.1f}")
    assert covered >= 0.8 * sims  # observed 130/150 (queries only: 70/150); 4 seeds make the bootstrap a bit narrow


# -- the stage against brute force ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def loo_problem(tmp_path_factory):
    """40 digits, 3 queries, a small MLP trained long enough to classify most queries; per scoring seed,
    the exact leave-one-out effect tau_s[q, i] = f(q; full, s) - f(q; without i, s), stored as a method's
    query scores."""
    cfg = tiny_config(dataset={"n_train": 40, "n_val": 10, "n_query": N_QUERY, "n_test": 20},
                      train={"epochs": 20, "batch_size": 20, "lr": 0.05}, methods=["grad_dot", "tracin"],
                      seeds=len(SCORING_SEEDS))
    cfg["results_dir"] = str(tmp_path_factory.mktemp("removal"))
    exp = load_experiment(cfg, "tiny")
    s = exp.splits
    n = s.n_train
    masks = [None] + [np.arange(n) != i for i in range(n)]
    runs = [Run(seed, m) for seed in SCORING_SEEDS for m in masks]
    res = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device)
    f = np.stack([_f(exp, r.params) for r in res]).reshape(len(SCORING_SEEDS), n + 1, -1)  # [R, 1 + N, Q]
    for r, seed in enumerate(SCORING_SEEDS):
        tau = (f[r, :1] - f[r, 1:]).T  # [Q, N]
        for method, sign in (("grad_dot", 1.0), ("tracin", -1.0)):  # tracin's file: the negated LOO effects
            path = exp.scores_path(method, seed, target="query")
            io.save_npy(path, (sign * tau).astype(np.float32), {"status": "ok", "config_hash": exp.hash,
                                                                  "method": method, "wall_time_s": 1.0})
    return exp, f


def _f(exp, params):
    """f(z_q) for every query: the task's measurement (margin), through the module's own forward."""
    model = exp.build_model(0)
    model.load_state_dict(params)
    s = exp.splits
    return exp.task.measure(model, s.query_x, s.query_y).detach().double().numpy()


def _brute(exp, removed_by_query):
    """[S, Q] f and margin of each fresh seed retrained without removed_by_query[q], one run at a time."""
    s = exp.splits
    steps = exp.cfg["train"]["epochs"] * int(np.ceil(s.n_train / exp.cfg["train"]["batch_size"]))
    f = np.zeros((len(FRESH_SEEDS), len(removed_by_query)))
    m = np.zeros_like(f)
    for q, rem in enumerate(removed_by_query):
        mask = np.ones(s.n_train, dtype=bool)
        mask[list(rem)] = False
        res = train_models(exp.cfg, s, [Run(seed, mask, total_steps=steps) for seed in FRESH_SEEDS],
                           exp.build_model, exp.task, exp.device, vectorize=False)
        for i, r in enumerate(res):
            model = exp.build_model(0)
            model.load_state_dict(r.params)
            f[i, q] = _f(exp, r.params)[q]
            m[i, q] = float(margin(model(s.query_x[q:q + 1]), s.query_y[q:q + 1])[0].detach())
    return f, m


@pytest.fixture(scope="module")
def removal_run(loo_problem, tmp_path_factory):
    exp, _ = loo_problem
    out = tmp_path_factory.mktemp("removal_jobs")
    opts = {"queries": N_QUERY, "query_seed": 0, "steps": "full_data"}
    full = out / "full.json"
    removal_full(exp, opts, FRESH_SEEDS, full)
    jobs = []
    for k in KS:
        for method in ("grad_dot", "tracin"):
            jobs.append(out / f"{method}_k{k}.json")
            removal_retrain(exp, method, k, opts, FRESH_SEEDS, None, jobs[-1])  # the layout's score folder
        jobs.append(out / f"random_k{k}.json")
        removal_random(exp, k, opts, FRESH_SEEDS, jobs[-1])
    rows = removal_summary(exp, full, jobs, out / "results.json", out / "removal.png")
    return exp, full, jobs, rows, out


def _row(rows, metric, method):
    return next(r for r in rows if r["metric"] == metric and r["method"] == method)


def test_stage_matches_brute_force_retraining(loo_problem, removal_run):
    exp, f_scoring = loo_problem
    _, full_json, jobs, rows, out = removal_run
    tau = (f_scoring[:, :1] - f_scoring[:, 1:]).mean(axis=0).T  # [Q, N], the mean over scoring seeds
    f_full, m_full = _brute(exp, [[]] * N_QUERY)
    assert np.asarray(io.read_json(full_json)["measurement"]) == pytest.approx(f_full, abs=1e-4)
    margins = {}
    for k in KS:
        removed = [np.argsort(-tau[q])[:k] for q in range(N_QUERY)]
        f_k, margins[k] = _brute(exp, removed)
        job = io.read_json(next(p for p in jobs if p.name == f"grad_dot_k{k}.json"))
        assert [sorted(r) for r in job["removed"]] == [sorted(r.tolist()) for r in removed]
        assert np.asarray(job["measurement"]) == pytest.approx(f_k, abs=1e-4)
        assert np.asarray(job["margin"]) == pytest.approx(margins[k], abs=1e-4)
        assert _row(rows, f"topk_drop_k{k}", "grad_dot")["value"] == pytest.approx((f_full - f_k).mean(), abs=1e-4)
    # brittleness: the smallest k of the grid whose seed-mean margin is negative, per correct query
    correct = m_full.mean(axis=0) > 0
    expected = [next((k for k in KS if margins[k][:, q].mean() < 0), KS[-1] + 1) if correct[q] else None
                for q in range(N_QUERY)]
    b = _row(rows, "brittleness", "grad_dot")
    assert b["smallest_k"] == expected
    assert correct.sum() >= 1 and any(e is not None and e <= KS[-1] for e in expected)  # not vacuous
    bundle = json.loads((out / "results.json").read_text())
    assert bundle["stage"] == "removal" and bundle["removal"]["retrain_seeds"] == FRESH_SEEDS
    assert (out / "removal.png").read_bytes()[:4] == b"\x89PNG"


def test_exact_loo_ranking_beats_random_and_its_negation_loses(removal_run):
    _, _, _, rows, _ = removal_run
    values = {k: [_row(rows, f"topk_drop_k{k}", m)["value"] for m in ("grad_dot", RANDOM_BASELINE, "tracin")]
              for k in KS}
    for k, (loo, rnd, neg) in values.items():
        assert loo > rnd, values
    loo, rnd, neg = values[KS[-1]]
    assert rnd > neg, values  # removing the examples that lowered f most raises it
    assert _row(rows, f"topk_drop_k{KS[-1]}", "grad_dot")["rank"] == 1
    loo_b = _row(rows, "brittleness", "grad_dot")["value"]
    assert loo_b is not None and loo_b <= _row(rows, "brittleness", RANDOM_BASELINE)["value"]


def test_a_failed_attribution_gives_failed_rows_not_missing_ones(removal_run, tmp_path):
    exp, full, jobs, _, _ = removal_run
    scores_dir = tmp_path / "scores" / "grad_dot"
    scores_dir.mkdir(parents=True)
    for r in SCORING_SEEDS:
        (scores_dir / f"seed{r}.json").write_text(json.dumps({"status": "failed", "reason": "out of memory",
                                                              "method": "grad_dot", "config_hash": exp.hash}))
    opts = {"queries": N_QUERY, "query_seed": 0, "steps": "full_data"}
    failed = tmp_path / "grad_dot_k2.json"
    removal_retrain(exp, "grad_dot", 2, opts, FRESH_SEEDS, scores_dir, failed)
    assert io.read_json(failed)["status"] == "failed"
    random_jobs = [p for p in jobs if p.name.startswith("random_")]
    rows = removal_summary(exp, full, [failed, *random_jobs], tmp_path / "results.json", tmp_path / "removal.png")
    for metric in ("topk_drop_k2", "brittleness"):
        row = _row(rows, metric, "grad_dot")
        assert row["status"] == "failed" and row["reason"] == "out of memory" and row["rank"] is None
    assert _row(rows, "topk_drop_k2", RANDOM_BASELINE)["status"] == "ok"
