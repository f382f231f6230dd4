"""Pruning by attribution: selection rules, the validation target, retraining on noisy digits on fresh seeds
for the full-data step count, confidence intervals; groundtruth.steps for the subset models."""

import numpy as np
import pytest
import scipy.stats
import torch.nn.functional as F
from conftest import tiny_config

from tda_core import io
from tda_core.api import load_experiment
from tda_core.pruning import (n_removed, random_removals, removal_benefit, retrain_seeds, select_removals,
                              variant_scores)
from tda_core.stages.attribute import attribute
from tda_core.config import resolve_experiment, validate_config
from tda_core.errors import ConfigError
from tda_core.stages import prune as prune_stage
from tda_core.stages import train as train_stage
from tda_core.stages.prepare import prepare
from tda_core.stages.prune import prune_full, prune_random, prune_retrain, prune_summary, summarize, t_interval
from tda_core.stages.train import train_full, train_shard
from tda_core.seeds import GROUNDTRUTH_SEED_BASE
from tda_core.training import Run, train_models

NONE = {"mode": "none"}


def test_selection_removes_largest_predicted_validation_loss_decrease():
    # tau[v, i] = change of loss(val v) from training on i; mean over v: [0.5, -1, 2, 0, 1.5]
    tau = np.array([[1.0, -1.0, 2.0, 0.0, 1.0], [0.0, -1.0, 2.0, 0.0, 2.0]])
    assert removal_benefit(tau).tolist() == [0.5, -1.0, 2.0, 0.0, 1.5]
    assert select_removals(removal_benefit(tau), 2).tolist() == [2, 4]
    assert n_removed(20, 5) == 1 and n_removed(12.5, 1000) == 125
    seed0, seed1 = np.array([[3.0, 0.0, 0.0]]), np.array([[0.0, 2.0, 2.0]])
    assert select_removals(removal_benefit(variant_scores([seed0, seed1], "fixed", 0)), 1).tolist() == [0]
    assert select_removals(removal_benefit(variant_scores([seed0, seed1], "fixed", 1)), 1).tolist() == [1]
    # d-TDA: the seed-mean [1.5, 1, 1] ranks example 0 first, and both seeds use that one set
    assert variant_scores([seed0, seed1], "dtda", 1).tolist() == [[1.5, 1.0, 1.0]]
    a, b = random_removals(100, 10, 0, 10), random_removals(100, 10, 1, 10)
    assert len(set(a)) == 10 and not np.array_equal(a, b) and np.array_equal(a, random_removals(100, 10, 0, 10))


@pytest.fixture(scope="module")
def noisy_digits(tmp_path_factory):
    """30% flipped labels, long constant-lr training: the MLP memorises the noise and test accuracy suffers."""
    exp_cfg = {
        "dataset": {"name": "digits", "n_train": 500, "n_val": 200, "n_query": 10, "n_test": 600, "label_noise": 0.3},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 32, "epochs": 40, "n_checkpoints": 4},
        "seeds": 2, "methods": ["grad_dot", "tracin"],
        "pruning": {"methods": ["tracin"], "percents": [20]},
    }
    root = tmp_path_factory.mktemp("pruning")
    exp = load_experiment({"results_dir": str(root), "tracking": NONE, "experiments": {"px": exp_cfg}}, "px")
    for seed in range(2):
        train_full(exp, seed, exp.model_path(seed), NONE)
    return exp


def _val_scores(exp, method, seed):
    out = exp.scores_path(method, seed, target="val").with_suffix(".json")
    assert out.name == f"val_seed{seed}.json"
    assert attribute(exp, method, str(seed), {}, out, NONE, target="val")["status"] == "ok"
    return out


def test_val_target_is_validation_loss_and_query_path_is_unchanged(noisy_digits):
    exp = noisy_digits
    s = exp.splits
    scores = io.load_npy(_val_scores(exp, "grad_dot", 0).with_suffix(".npy"))
    assert scores.shape == (200, 500)
    # independent: -grad loss(val v) . grad loss(train i) with plain autograd on an nn.Module
    model = exp.build_model(0)
    model.load_state_dict(exp.load_checkpoints(0)[-1]["params"])

    def grad(x, y):
        model.zero_grad()
        F.cross_entropy(model(x[None]), y[None]).backward()
        return np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])

    for v, i in ((0, 0), (17, 123), (199, 499)):
        want = -grad(s.val_x[v], s.val_y[v]) @ grad(s.train_x[i], s.train_y[i])
        assert scores[v, i] == pytest.approx(want, rel=1e-4, abs=1e-6)
    out = exp.scores_path("grad_dot", 0).with_suffix(".json")
    assert out.name == "seed0.json"
    meta = attribute(exp, "grad_dot", "0", {}, out, NONE)
    assert meta["target"] == "query" and io.load_npy(out.with_suffix(".npy")).shape == (10, 500)


RETRAIN = [2, 3, 4]  # fresh seeds, disjoint from the scoring seeds 0, 1


def test_pruning_by_attribution_beats_random_pruning_on_mislabelled_digits(noisy_digits):
    exp = noisy_digits
    val = [_val_scores(exp, "tracin", seed) for seed in range(2)]
    pr = exp.root / "pruning"
    runs = [prune_full(exp, RETRAIN, pr / "_full.json", NONE), prune_random(exp, 20, RETRAIN, pr / "_random/p20.json", NONE)]
    for variant in ("fixed", "dtda"):
        runs.append(prune_retrain(exp, "tracin", variant, 20, RETRAIN, val[0].parent, pr / f"tracin/{variant}/p20.json",
                                  NONE))
    jobs = sorted(str(p) for p in pr.rglob("*.json"))
    assert len(jobs) == len(runs) == 4
    summary = prune_summary(exp, jobs, pr / "summary.json", pr / "pruning.png")
    assert summary["scoring_seeds"] == [0, 1] and summary["retrain_seeds"] == RETRAIN
    rows = {(r["method"], r["variant"]): r for r in summary["rows"]}
    assert all(r["n_seeds"] == 3 and r["retrain_seeds"] == RETRAIN for r in rows.values())
    acc = {k: r["test_accuracy_mean"] for k, r in rows.items()}
    print({k: round(v, 3) for k, v in acc.items()})
    # observed (3 fresh seeds, step-matched): full data 0.708, random removal 0.661, tracin fixed 0.802,
    # tracin d-TDA 0.783; most removed examples were mislabelled (random removal: ~30%)
    assert acc[("tracin", "fixed")] > acc[("random removal", "baseline")] + 0.05
    assert acc[("tracin", "dtda")] > acc[("random removal", "baseline")] + 0.05
    assert acc[("tracin", "dtda")] > acc[("full data", "baseline")] + 0.05
    assert rows[("tracin", "dtda")]["removed_corrupted_fraction_mean"] > 0.7
    assert rows[("random removal", "baseline")]["removed_corrupted_fraction_mean"] < 0.45
    for r in summary["rows"]:
        for key in ("test_accuracy", "test_loss"):
            assert r[f"{key}_ci_low"] <= r[f"{key}_mean"] <= r[f"{key}_ci_high"]
    assert all(run["n_removed"] == 100 for job in runs if job["p"] == 20 for run in job["runs"])
    assert (pr / "pruning.png").stat().st_size > 1000
    # one scoring group (2 models, ensemble_size 2): d-TDA retrains every fresh seed on the group's one set;
    # fixed: each scoring model's own set, retrained with every seed of the group
    d = [run["removed"] for run in io.read_json(pr / "tracin/dtda/p20.json")["runs"]]
    f = io.read_json(pr / "tracin/fixed/p20.json")["runs"]
    assert d[0] == d[1] == d[2]
    assert [run["scoring_seed"] for run in f] == [0, 0, 0, 1, 1, 1] and [run["seed"] for run in f] == RETRAIN * 2
    assert f[0]["removed"] == f[2]["removed"] != f[3]["removed"]
    # the fixed sets are the scoring models' own picks (recomputed here from the saved scores)
    for run in f:
        own = io.load_npy(val[run["scoring_seed"]].with_suffix(".npy"))
        assert run["removed"] == np.sort(np.argsort(-own.mean(0), kind="stable")[:100]).tolist()
    # class coverage recorded per run, recomputed here from the removed indices and the training labels
    labels = exp.splits.train_y.numpy()
    for run in f:
        counts = np.bincount(labels[run["removed"]], minlength=10)
        assert run["removed_per_class"] == counts.tolist()
        assert run["min_class_fraction_kept"] == pytest.approx(min(1 - counts / np.bincount(labels, minlength=10)))


def test_failed_attribution_gives_failed_pruning_row(noisy_digits, tmp_path):
    exp = noisy_digits
    for seed in range(exp.cfg["seeds"]):  # every scoring seed's validation attribution failed
        io.write_json(tmp_path / f"val_seed{seed}.json",
                      {"status": "failed", "reason": "OutOfMemoryError: too big", "method": "tracin"})
    r = prune_retrain(exp, "tracin", "fixed", 20, RETRAIN, tmp_path, tmp_path / "out.json", NONE)
    assert r["status"] == "failed" and "OutOfMemory" in r["reason"]
    summary = prune_summary(exp, [tmp_path / "out.json"], tmp_path / "s.json", tmp_path / "s.png")
    assert summary["rows"][0]["status"] == "failed"
    assert summary["retrain_seeds"] == RETRAIN and summary["rows"][0]["n_seeds"] == 0


# -- retrain seeds: out of sample ------------------------------------------------------------------
def _pruning_config(seeds, retrain=None):
    pruning = {"methods": ["grad_dot"]} if retrain is None else {"methods": ["grad_dot"], "retrain_seeds": retrain}
    return tiny_config(seeds=seeds, pruning=pruning)


def test_retrain_seeds_are_disjoint_from_scoring_seeds():
    cfg = validate_config(_pruning_config(3))
    assert cfg["experiments"]["tiny"]["pruning"]["retrain_seeds"] == 5  # the schema default: a count
    assert retrain_seeds(3, 5) == [3, 4, 5, 6, 7]
    cfg = validate_config(_pruning_config(2, [10, 4]))
    assert retrain_seeds(2, cfg["experiments"]["tiny"]["pruning"]["retrain_seeds"]) == [10, 4]
    for spec in (1, 4, [2, 9]):
        assert not set(retrain_seeds(2, spec)) & {0, 1}


@pytest.mark.parametrize("retrain", [[1, 5], [0], [0, 1, 2]])
def test_overlapping_retrain_seeds_fail_validation_in_one_line(retrain):
    with pytest.raises(ConfigError) as e:
        validate_config(_pruning_config(2, retrain))
    msg = str(e.value)
    assert "\n" not in msg and "retrain_seeds" in msg and "overlap the scoring seeds 0..1" in msg
    with pytest.raises(ConfigError):
        retrain_seeds(2, retrain)


# -- step matching ---------------------------------------------------------------------------------
def _adam_exp(tmp_path, **over):
    cfg = tiny_config(train={"optimizer": "adam", "lr": 0.01}, **over)
    cfg["results_dir"] = str(tmp_path)
    return load_experiment(cfg, "tiny")


def _recording_train_models(monkeypatch, module):
    """Wrap train_models in `module` to keep every run's optimiser state: Adam counts its own steps."""
    seen = []

    def wrapped(exp_cfg, splits, runs, *args, **kw):
        kw.update(keep_checkpoints=True)
        results = train_models(exp_cfg, splits, runs, *args, **kw)
        seen.extend((run, int(res.checkpoints[-1]["opt_state"]["step"])) for run, res in zip(runs, results))
        return results

    monkeypatch.setattr(module, "train_models", wrapped)
    return seen


def test_pruned_runs_train_as_many_steps_as_the_full_data_baseline(tmp_path, monkeypatch):
    exp = _adam_exp(tmp_path)
    full_steps = 4 * 4  # ceil(120 / 32) = 4 batches per epoch, 4 epochs, over the full training set
    seen = _recording_train_models(monkeypatch, prune_stage)
    full = prune_full(exp, [2, 3], tmp_path / "full.json", NONE)
    rand = prune_random(exp, 50, [2, 3], tmp_path / "rand.json", NONE)  # 60 examples left: 8 steps at 4 epochs
    assert len(seen) == 4
    assert [step for _, step in seen] == [full_steps] * 4  # Adam's own step counter
    assert [int(run.mask.sum()) for run, _ in seen] == [120, 120, 60, 60]
    assert [r["total_steps"] for r in full["runs"] + rand["runs"]] == [full_steps] * 4
    assert [r["seed"] for r in full["runs"]] == [2, 3]  # the baseline is retrained on the fresh seeds
    # vectorised (the workflow's path) and one by one give the same models
    monkeypatch.undo()
    again = prune_random(exp, 50, [2, 3], tmp_path / "rand2.json", NONE)
    for a, b in zip(rand["runs"], again["runs"]):
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)


# -- summary: confidence intervals -----------------------------------------------------------------
def test_summary_ci_matches_scipy_t_interval(tmp_path):
    acc = [0.81, 0.78, 0.84, 0.80, 0.79]
    loss = [0.52, 0.61, 0.47, 0.55, 0.58]
    runs = [{"seed": s, "test_accuracy": a, "test_loss": l, "val_loss": l, "removed_corrupted_fraction": 0.0,
             "total_steps": 16} for s, a, l in zip(range(5, 10), acc, loss)]
    job = {"method": "m", "variant": "dtda", "p": 10.0, "status": "ok", "scoring_seeds": [0, 1, 2, 3, 4],
           "retrain_seeds": list(range(5, 10)), "runs": runs}
    io.write_json(tmp_path / "job.json", job)
    io.write_json(tmp_path / "one.json", {**job, "method": "single", "runs": runs[:1], "retrain_seeds": [5]})
    summary = summarize("e", [tmp_path / "job.json", tmp_path / "one.json"])
    assert summary["scoring_seeds"] == [0, 1, 2, 3, 4] and summary["retrain_seeds"] == [5, 6, 7, 8, 9]
    row, single = summary["rows"]  # sorted by method: "m" < "single"
    for key, vals in (("test_accuracy", acc), ("test_loss", loss)):
        lo, hi = scipy.stats.t.interval(0.95, df=4, loc=np.mean(vals), scale=scipy.stats.sem(vals))
        assert row[f"{key}_ci_low"] == pytest.approx(lo, rel=1e-12)
        assert row[f"{key}_ci_high"] == pytest.approx(hi, rel=1e-12)
        assert row[f"{key}_mean"] == pytest.approx(np.mean(vals))
        assert row[f"{key}_ci_low"] < row[f"{key}_mean"] < row[f"{key}_ci_high"]
        assert row[f"{key}_std"] == pytest.approx(np.std(vals, ddof=1))
    assert row["n_seeds"] == 5 and row["ci_level"] == 0.95 and row["total_steps"] == 16
    assert single["n_seeds"] == 1 and np.isnan(single["test_accuracy_ci_low"])  # no interval from one seed
    assert t_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)


# -- groundtruth.steps -----------------------------------------------------------------------------
def _shard(tmp_path, steps):
    exp = _adam_exp(tmp_path, groundtruth={"steps": steps, "n_subsets": 8, "shard_size": 2, "seeds_per_subset": 2})
    prepare(exp, tmp_path / "config.json", tmp_path / "masks.npy")
    return exp


def test_groundtruth_same_steps_trains_subsets_as_long_as_the_full_data_model(tmp_path, monkeypatch):
    exp = _shard(tmp_path, "same_steps")
    seen = _recording_train_models(monkeypatch, train_stage)
    train_shard(exp, 0, tmp_path / "masks.npy", tmp_path / "shard0.npz", NONE)
    full_steps = 4 * 4  # ceil(120 / 32) * 4 epochs
    assert [int(run.mask.sum()) for run, _ in seen] == [60] * 4  # alpha 0.5 of 120
    assert [step for _, step in seen] == [full_steps] * 4  # Adam's step counter: as long as the full-data run
    meta = io.load_npz(tmp_path / "shard0.npz")[1]
    assert meta["groundtruth_steps"] == "same_steps" and meta["subset_total_steps"] == [full_steps]
    # the gathered ground truth records the protocol for the distributional metrics
    monkeypatch.undo()
    from tda_core.stages.groundtruth import gather

    for shard in (1, 2, 3):  # 8 subsets (the schema's minimum), 2 per shard
        train_shard(exp, shard, tmp_path / "masks.npy", tmp_path / f"shard{shard}.npz", NONE)
    for seed in range(2):
        train_full(exp, seed, exp.model_path(seed), NONE)
    gather(exp, tmp_path / "masks.npy", [tmp_path / f"shard{k}.npz" for k in range(4)],
           [exp.model_path(0), exp.model_path(1)], tmp_path / "measurements.npz")
    meta = io.load_npz(tmp_path / "measurements.npz")[1]
    assert meta["groundtruth_steps"] == "same_steps"
    assert meta["subset_total_steps"] == [full_steps] and meta["full_total_steps"] == full_steps


def test_groundtruth_same_epochs_keeps_the_old_subset_models(tmp_path, monkeypatch):
    exp = _shard(tmp_path, "same_epochs")
    seen = _recording_train_models(monkeypatch, train_stage)
    train_shard(exp, 1, tmp_path / "masks.npy", tmp_path / "shard1.npz", NONE)
    assert [step for _, step in seen] == [2 * 4] * 4  # ceil(60 / 32) = 2 batches per epoch, 4 epochs
    monkeypatch.undo()
    # the old step protocol, spelled out: Run(seed, mask) with no step override, measured as before
    # (on the ground-truth seeds of tda_core.seeds, disjoint from the scoring seeds)
    masks = io.load_npy(tmp_path / "masks.npy")
    runs = [Run(seed, masks[j]) for j in (2, 3) for seed in (GROUNDTRUTH_SEED_BASE, GROUNDTRUTH_SEED_BASE + 1)]
    old = train_models(exp.cfg, exp.splits, runs, exp.build_model, exp.task, exp.device)
    from tda_core.stages.common import measure

    want = np.stack([measure(exp, r.params, exp.splits.query_x, exp.splits.query_y) for r in old]).reshape(2, 2, -1)
    arrays, meta = io.load_npz(tmp_path / "shard1.npz")
    np.testing.assert_array_equal(arrays["query"], want)
    assert meta["groundtruth_steps"] == "same_epochs"


def test_groundtruth_steps_enters_the_config_hash():
    def hash_of(gt):
        cfg = validate_config(tiny_config(groundtruth=gt))
        return resolve_experiment(cfg, "tiny")["config_hash"]

    default, epochs, steps = hash_of({}), hash_of({"steps": "same_epochs"}), hash_of({"steps": "same_steps"})
    assert default == epochs != steps
    # same_epochs is what every config meant before the key existed: its hash is the pre-key hash
    from tda_core.config import config_hash

    cfg = validate_config(tiny_config())
    exp = resolve_experiment(cfg, "tiny")
    legacy = {**exp, "groundtruth": {k: v for k, v in exp["groundtruth"].items() if k != "steps"}}
    assert config_hash(legacy) == default


@pytest.mark.slow
def test_tiny_workflow_with_pruning_writes_the_summary(repo, tmp_path):
    """snakemake on tiny.yaml plus a pruning block, up to the pruning summary (no mocks)."""
    import subprocess
    import sys

    import yaml

    cfg = yaml.safe_load((repo / "workflow/config/tiny.yaml").read_text())
    cfg["tracking"] = {"mode": "none"}
    # 6 jobs (prepare, train, attribute, full-data and dtda retrains, summary): inside a minute on one core
    cfg["experiments"]["tiny-mlp"].update(methods=["grad_dot"], seeds=1)
    cfg["experiments"]["tiny-mlp"].pop("removal", None)  # tiny.yaml's top-k removal is tested in test_workflow
    cfg["experiments"]["tiny-mlp"]["pruning"] = {"methods": ["grad_dot"], "percents": [20], "variants": ["dtda"],
                                                 "retrain_seeds": 2, "random_baseline": False}
    (tmp_path / "prune.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "prune.yaml"), "--cores", "1", "results/tiny-mlp/pruning/summary.json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    pr = tmp_path / "results/tiny-mlp/pruning"
    summary = io.read_json(pr / "summary.json")
    assert summary["scoring_seeds"] == [0] and summary["retrain_seeds"] == [1, 2]
    rows = {(r["method"], r["variant"]): r for r in summary["rows"]}
    assert set(rows) == {("full data", "baseline"), ("grad_dot", "dtda")}
    steps = {r["total_steps"] for r in rows.values()}
    assert steps == {4 * 4}  # ceil(120 / 32) * 4 epochs: every pruned run as long as the full-data runs
    for r in rows.values():
        assert r["status"] == "ok" and r["n_seeds"] == 2 and r["retrain_seeds"] == [1, 2]
        for key in ("test_accuracy", "test_loss"):
            assert r[f"{key}_ci_low"] <= r[f"{key}_mean"] <= r[f"{key}_ci_high"]
    assert (pr / "pruning.png").stat().st_size > 1000
    assert not (tmp_path / "results/tiny-mlp/models/seed1.pt").exists()  # retrains are not scoring models


# -- class coverage, balanced selection, scoring groups ---------------------------------------------
from tda_core.pruning import class_coverage, retrain_groups, scoring_groups, select_balanced  # noqa: E402


def test_ranking_by_mean_benefit_can_empty_a_class_and_balanced_selection_cannot():
    """The planted class collapse of the audit: class 0's examples have the largest benefit."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)  # 200 examples, 20 per class
    benefit = rng.normal(size=200) + 5.0 * (labels == 0)
    unbalanced = select_removals(benefit, 40)
    cover = class_coverage(unbalanced, labels, 10)
    assert cover["removed_per_class"][0] == 20 and cover["min_class_fraction_kept"] == 0.0
    assert cover["least_kept_class"] == 0
    balanced = select_balanced(benefit, labels, 40)
    assert len(balanced) == 40
    assert class_coverage(balanced, labels, 10)["removed_per_class"] == [4] * 10
    assert class_coverage(balanced, labels, 10)["min_class_fraction_kept"] == pytest.approx(0.8)
    # within each class the removed examples are its largest-benefit ones (brute force)
    for c in range(10):
        members = np.flatnonzero(labels == c)
        picked = np.intersect1d(members, balanced)
        rest = np.setdiff1d(members, picked)
        assert benefit[picked].min() >= benefit[rest].max()


@pytest.mark.parametrize("sizes, k, quotas", [([30, 10, 10], 10, [6, 2, 2]), ([5, 5, 5], 4, [2, 1, 1]),
                                              ([7, 3], 4, [3, 1]), ([7, 3], 5, [4, 1]), ([4, 4], 8, [4, 4])])
def test_balanced_quotas_are_proportional_with_largest_remainders(sizes, k, quotas):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    picked = select_balanced(np.arange(len(labels), dtype=float), labels, k)
    assert np.bincount(labels[picked], minlength=len(sizes)).tolist() == quotas


def test_scoring_and_retrain_groups_are_disjoint():
    assert scoring_groups(6, 2) == [[0, 1], [2, 3], [4, 5]]
    assert scoring_groups(5, 2) == [[0, 1], [2, 3]]  # the fifth model is left over
    assert retrain_groups([6, 7, 8, 9, 10, 11], 3) == [[6, 9], [7, 10], [8, 11]]
    with pytest.raises(ConfigError):
        retrain_groups([6, 7], 3)
    with pytest.raises(ConfigError):
        validate_config(tiny_config(seeds=4, pruning={"methods": ["grad_dot"], "ensemble_size": 2, "retrain_seeds": 1}))
    assert scoring_groups(2, 3) == [[0, 1]]  # fewer models than a group: one group (claim not testable)
    validate_config(tiny_config(seeds=1, pruning={"methods": ["grad_dot"]}))


def test_each_scoring_group_picks_its_own_sets_and_retrains_on_its_own_seeds(tmp_path, monkeypatch):
    """4 scoring models in 2 groups, planted validation scores: fixed = each model's own top k, d-TDA =
    the top k of its group's mean, balanced = per-class quotas; no retrain seed is shared by two groups."""
    from tda_core.scores import Scores

    cfg = tiny_config(seeds=4, pruning={"methods": ["grad_dot"]})
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    n = exp.splits.n_train
    rng = np.random.default_rng(1)
    per_seed = rng.normal(size=(4, 3, n))
    monkeypatch.setattr(prune_stage, "method_scores", lambda *a, **k: Scores("grad_dot", "val", "per_seed",
                                                                              array=per_seed))
    plans = []

    def fake_retrain(exp_, seeds, removed, desc):
        plans.append((list(seeds), [np.asarray(r) for r in removed]))
        return [{"seed": s, "test_accuracy": 0.5, "test_loss": 1.0, "removed": r.tolist(), "n_removed": len(r)}
                for s, r in zip(seeds, removed)], {}

    monkeypatch.setattr(prune_stage, "retrain_without", fake_retrain)
    k = n_removed(25, n)
    top = lambda s: np.sort(np.argsort(-s.mean(0), kind="stable")[:k]).tolist()  # noqa: E731
    fixed = prune_retrain(exp, "grad_dot", "fixed", 25, [4, 5, 6, 7], None, tmp_path / "f.json", NONE)
    assert fixed["scoring_groups"] == [[0, 1], [2, 3]] and fixed["retrain_groups"] == [[4, 6], [5, 7]]
    assert [(r["seed"], r["scoring_seed"], r["group"]) for r in fixed["runs"]] == [
        (4, 0, 0), (6, 0, 0), (4, 1, 0), (6, 1, 0), (5, 2, 1), (7, 2, 1), (5, 3, 1), (7, 3, 1)]
    for r in fixed["runs"]:
        assert r["removed"] == top(per_seed[r["scoring_seed"]])
    dtda = prune_retrain(exp, "grad_dot", "dtda", 25, [4, 5, 6, 7], None, tmp_path / "d.json", NONE)
    for r in dtda["runs"]:
        assert r["removed"] == top(per_seed[2 * r["group"]:2 * r["group"] + 2].mean(0))
    bal = prune_retrain(exp, "grad_dot", "dtda-balanced", 25, [4, 5, 6, 7], None, tmp_path / "b.json", NONE)
    assert bal["selection"] == "balanced" and bal["variant"] == "dtda-balanced"
    labels = exp.splits.train_y.numpy()
    sizes = np.bincount(labels)
    for r in bal["runs"]:
        counts = np.bincount(labels[r["removed"]], minlength=len(sizes))
        assert np.all(np.abs(counts - k * sizes / n) < 1)  # every class its proportional share
    # the summary's group means are the claims' unit of replication
    summary = summarize("tiny", [tmp_path / "f.json", tmp_path / "d.json", tmp_path / "b.json"])
    rows = {r["variant"]: r for r in summary["rows"]}
    assert rows["fixed"]["test_accuracy_by_group"] == [0.5, 0.5] and rows["fixed"]["n_runs"] == 8
    assert rows["dtda-balanced"]["selection"] == "balanced" and rows["dtda-balanced"]["base_variant"] == "dtda"
