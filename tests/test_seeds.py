"""Seed roles (tda_core/seeds.py): the ground truth's subset models never share a scoring model's seed.

Independent truth: the initial parameters themselves. A subset model that shares seed s with full-data
model s starts from the same weights (checkpoint 0 of the model file), which is what made same-seed
LDS exceed other-seed LDS by 0.04-0.06 (issue 17, item 4).
"""
import pytest
import torch
from conftest import tiny_config

from tda_core import io
from tda_core.api import load_experiment
from tda_core.config import resolve_experiment, validate_config
from tda_core.errors import ArtifactError, ConfigError
from tda_core.seeds import allocate
from tda_core.stages import train as train_stage
from tda_core.stages.groundtruth import gather
from tda_core.stages.prepare import prepare
from tda_core.stages.train import train_full, train_shard
from tda_core.training import train_models

NONE = {"mode": "none"}


def _exp(tmp_path, **gt):
    cfg = tiny_config(groundtruth={"n_subsets": 8, "shard_size": 2, "seeds_per_subset": 2, **gt},
                      train={"epochs": 1})
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    prepare(exp, tmp_path / "config.json", tmp_path / "masks.npy")
    return exp


def _flat(params: dict) -> torch.Tensor:
    return torch.cat([v.detach().flatten().float() for v in params.values()])


def _scoring_inits(exp) -> list[torch.Tensor]:
    """Train the full-data (scoring) models; each one's step-0 weights, flat."""
    inits = []
    for r in range(exp.cfg["seeds"]):
        train_full(exp, r, exp.model_path(r), NONE)
        inits.append(_flat(io.load_torch(exp.model_path(r))["checkpoints"][0]["params"]))
    return inits


def _record_runs(monkeypatch, module) -> list:
    """The runs `module.train_models` is called with, recorded (training goes ahead unchanged)."""
    seen = []

    def recording(exp_cfg, splits, runs, *args, **kw):
        seen.extend(runs)
        return train_models(exp_cfg, splits, runs, *args, **kw)

    monkeypatch.setattr(module, "train_models", recording)
    return seen


def _assert_no_shared_init(exp, runs, inits, what: str) -> None:
    for run in runs:  # the initial weights each model started from
        start = _flat(dict(exp.build_model(run.seed).named_parameters()))
        for r, init in enumerate(inits):
            assert not torch.allclose(start, init), f"{what} starts from full-data model {r}'s weights"


def test_subset_models_share_no_initialisation_with_the_scoring_models(tmp_path, monkeypatch):
    exp = _exp(tmp_path)
    inits = _scoring_inits(exp)
    seen = _record_runs(monkeypatch, train_stage)
    train_shard(exp, 0, tmp_path / "masks.npy", tmp_path / "shard0.npz", NONE)
    assert len(seen) == 2 * 2
    _assert_no_shared_init(exp, seen, inits, "a subset model")
    meta = io.load_npz(tmp_path / "shard0.npz")[1]
    assert len(meta["subset_seeds"]) == 2 and not set(meta["subset_seeds"]) & set(range(exp.cfg["seeds"]))
    assert sorted({r.seed for r in seen}) == meta["subset_seeds"]


def test_gather_refuses_shards_of_the_shared_seed_protocol(tmp_path):
    exp = _exp(tmp_path)
    for r in range(2):
        train_full(exp, r, exp.model_path(r), NONE)
    shards = [tmp_path / f"shard{k}.npz" for k in range(4)]  # 8 subsets, 2 per shard
    for k, shard in enumerate(shards):
        train_shard(exp, k, tmp_path / "masks.npy", shard, NONE)
    models = [exp.model_path(0), exp.model_path(1)]
    gather(exp, tmp_path / "masks.npy", shards, models, tmp_path / "gt.npz")
    assert io.load_npz(tmp_path / "gt.npz")[1]["subset_seeds"] == allocate(exp.cfg)["groundtruth"]
    arrays, meta = io.load_npz(shards[1])  # a shard written before the seed protocol: no subset_seeds
    meta.pop("subset_seeds")
    io.save_npz(shards[1], meta, **arrays)
    with pytest.raises(ArtifactError, match="rerun the shards"):
        gather(exp, tmp_path / "masks.npy", shards, models, tmp_path / "gt.npz")


def test_seed_roles_are_disjoint_and_a_clash_is_a_config_error():
    cfg = tiny_config(seeds=3, pruning={"methods": ["grad_dot"], "percents": [10], "retrain_seeds": 4},
                      removal={"methods": ["grad_dot"], "ks": [2], "retrain_seeds": 3})
    exp = resolve_experiment(validate_config(cfg), "tiny")
    roles = allocate(exp)
    assert roles["scoring"] == [0, 1, 2]
    every = [s for seeds in roles.values() for s in seeds]
    assert len(every) == len(set(every))  # no seed in two roles
    clash = tiny_config(pruning={"methods": ["grad_dot"], "percents": [10], "retrain_seeds": [2, 1_000_001]})
    with pytest.raises(ConfigError, match="share"):
        validate_config(clash)


def test_the_fixed_seed_track_keeps_the_scoring_seeds():
    exp = resolve_experiment(validate_config(tiny_config(groundtruth={"track": "both"})), "tiny")
    roles = allocate(exp)
    assert roles["groundtruth_fixed"] == roles["scoring"]
    assert not set(roles["groundtruth"]) & set(roles["scoring"])


def test_ground_truth_seeds_leave_every_config_hash_unchanged():
    """The seed protocol reruns the shards through their rule params (rules/train.smk), not through the
    experiment hash: the hashes below were computed by the code before the change."""
    def hash_of(**gt):
        return resolve_experiment(validate_config(tiny_config(groundtruth=gt)), "tiny")["config_hash"]

    assert hash_of() == "17227cf8bcbe6b1a"
    assert hash_of(steps="same_steps", seeds_per_subset=4) == "d065238f9383a735"


def test_loo_study_retrains_on_seeds_no_scoring_model_has(tmp_path, monkeypatch):
    """The leave-one-out study's full-data and leave-one-out models start from weights no scoring model has."""
    from tda_core.stages import loo as loo_stage

    exp = _exp(tmp_path)
    inits = _scoring_inits(exp)
    seen = _record_runs(monkeypatch, loo_stage)
    loo_stage.loo_train(exp, {"n_points": 1, "seeds": 2}, tmp_path / "loo.npz", NONE)
    assert len(seen) == 2 * 2  # (full + one removed point) x 2 seeds
    _assert_no_shared_init(exp, seen, inits, "a LOO model")
    meta = io.load_npz(tmp_path / "loo.npz")[1]
    assert sorted(meta["retrain_seeds"]) == sorted({r.seed for r in seen})
    assert not set(allocate({**exp.cfg, "loo": {"seeds": 2}})["loo"]) & set(range(exp.cfg["seeds"]))
