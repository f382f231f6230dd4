"""Functional training against torch.optim (independent implementation), vmap vs loop, determinism."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from tda_core.api import load_experiment
from tda_core.training import Run, train_models
from tda_core.training.trainer import run_schedule


def _reference_train(exp, run, return_optimizer=False):
    """Plain nn.Module + torch.optim on the same batches: the independent truth."""
    cfg = exp.cfg["train"]
    model = exp.build_model(run.seed)
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                               weight_decay=cfg["weight_decay"])
    plan, batches = run_schedule(exp.cfg, run, exp.splits.n_train)
    s = exp.splits
    for t, idx in enumerate(batches):
        for g in opt.param_groups:
            g["lr"] = float(plan.lrs[t])
        opt.zero_grad()
        F.cross_entropy(model(s.train_x[idx]), s.train_y[idx]).backward()
        opt.step()
    params = {k: v.detach() for k, v in model.named_parameters()}
    return (params, opt, model) if return_optimizer else params


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "constant"), ("adam", "cosine")])
def test_functional_optimiser_matches_torch_optim(optimizer, schedule):
    exp = load_experiment(tiny_config(train={"optimizer": optimizer, "schedule": schedule,
                                             "lr": 0.01 if optimizer == "adam" else 0.05}), "tiny")
    run = Run(seed=3)
    ours = train_models(exp.cfg, exp.splits, [run], exp.build_model, exp.task, exp.device)[0].params
    ref = _reference_train(exp, run)
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-4, atol=1e-5)


def test_checkpointed_optimiser_state_matches_torch_optim_per_parameter():
    """The trainer steps one flat parameter vector; checkpoints must still hold torch.optim's per-parameter
    state (exp_avg, exp_avg_sq, step for Adam; momentum_buffer for SGD) under the parameters' names."""
    for optimizer in ("adam", "sgd"):
        exp = load_experiment(tiny_config(train={"optimizer": optimizer, "lr": 0.01}), "tiny")
        last = train_models(exp.cfg, exp.splits, [Run(2)], exp.build_model, exp.task, exp.device,
                            keep_checkpoints=True)[0].checkpoints[-1]
        _, opt, model = _reference_train(exp, Run(2), return_optimizer=True)
        for name, p in model.named_parameters():
            ref = opt.state[p]
            for key in ("exp_avg", "exp_avg_sq") if optimizer == "adam" else ("momentum_buffer",):
                torch.testing.assert_close(last["opt_state"][key][name], ref[key], rtol=1e-4, atol=1e-6)
        if optimizer == "adam":
            assert float(last["opt_state"]["step"]) == float(ref["step"]) == last["step"]


def test_vectorised_training_equals_one_by_one():
    exp = load_experiment(tiny_config(), "tiny")
    masks = exp.masks()
    runs = [Run(seed=s, mask=masks[j]) for j in range(3) for s in range(2)]
    stacked = train_models(exp.cfg, exp.splits, runs, exp.build_model, exp.task, exp.device, vectorize=True)
    looped = train_models(exp.cfg, exp.splits, runs, exp.build_model, exp.task, exp.device, vectorize=False)
    for a, b in zip(stacked, looped):
        for k in a.params:
            torch.testing.assert_close(a.params[k], b.params[k], rtol=1e-5, atol=1e-6)
    # different subsets / seeds really give different models
    assert not torch.equal(stacked[0].params["1.weight"], stacked[2].params["1.weight"])


def test_same_seed_is_bit_identical_and_checkpoints_follow_plan():
    exp = load_experiment(tiny_config(), "tiny")
    a = train_models(exp.cfg, exp.splits, [Run(1)], exp.build_model, exp.task, exp.device, keep_checkpoints=True)[0]
    b = train_models(exp.cfg, exp.splits, [Run(1)], exp.build_model, exp.task, exp.device, keep_checkpoints=True)[0]
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    steps = [c["step"] for c in a.checkpoints]
    assert steps == a.plan.checkpoint_steps and steps[0] == 0 and steps[-1] == a.plan.total_steps
    assert len(steps) == exp.cfg["train"]["n_checkpoints"] + 1
    for k in a.params:  # the last checkpoint is the final model, the first the initialisation
        assert torch.equal(a.checkpoints[-1]["params"][k], a.params[k])
        assert torch.equal(a.checkpoints[0]["params"][k], dict(exp.build_model(1).named_parameters())[k].detach())


def test_subset_runs_only_see_their_subset():
    exp = load_experiment(tiny_config(), "tiny")
    mask = exp.masks()[0]
    _, batches = run_schedule(exp.cfg, Run(0, mask), exp.splits.n_train)
    seen = np.unique(np.concatenate(batches))
    assert set(seen) == set(np.flatnonzero(mask))


def test_divergence_is_reported():
    from tda_core.errors import TrainingDiverged

    exp = load_experiment(tiny_config(train={"lr": 1e6}), "tiny")
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train_models(exp.cfg, exp.splits, [Run(0)], exp.build_model, exp.task, exp.device)


def test_multi_stage_schedule_pretrains_then_finetunes():
    exp = load_experiment(tiny_config(scenario="multi_stage"), "tiny")
    plan, batches = run_schedule(exp.cfg, Run(0), exp.splits.n_train)
    k = int(round(exp.cfg["train"]["pretrain_fraction"] * plan.total_steps))
    half = exp.splits.n_train // 2
    assert all((b < half).all() for b in batches[:k]) and all((b >= half).all() for b in batches[k:])
