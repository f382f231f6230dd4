"""`unrolled` against central finite differences of retraining with one re-weighted example.

Independent truth: train_models (the real trainer, float64) run three times per example k with
w_k = 1 + h, 1 - h (same seed, same batches); (f(w+) - f(w-)) / 2h must equal tau[:, k] to 1e-3.
"""
import dataclasses

import numpy as np
import pytest
import torch
from conftest import tiny_config

from tda_core.api import load_experiment
from tda_core.methods.base import AttributionContext
from tda_core.methods.registry import get_method
from tda_core.stages.train import train_full
from tda_core.training import Run, train_models

H = 2.0**-10  # exact in float32, the dtype the trainer stores weights in
EXAMPLES = [0, 17, 41]


def _experiment(tmp_path, optimizer):
    train = {"optimizer": optimizer, "lr": 0.1 if optimizer == "sgd" else 0.01, "batch_size": 16, "epochs": 3,
             "n_checkpoints": 2, "weight_decay": 0.01 if optimizer == "sgd" else 0.0}
    cfg = tiny_config(dataset={"n_train": 60, "n_query": 5}, model={"hidden": [8], "activation": "tanh"},
                      train=train, seeds=1)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    return exp


def _finite_differences(exp, seed, examples):
    """[Q, len(examples)] central differences of f(z_q) in w_k, from float64 retraining."""
    s = exp.splits
    s64 = dataclasses.replace(s, train_x=s.train_x.double(), query_x=s.query_x.double())
    factory = lambda r: exp.build_model(r).double()  # noqa: E731
    runs = []
    for k in examples:
        for sign in (1, -1):
            w = np.ones(s.n_train)
            w[k] += sign * H
            runs.append(Run(seed, weights=w))
    res = train_models(exp.cfg, s64, runs, factory, exp.task, torch.device("cpu"))
    model = factory(seed)

    def f(params):
        with torch.no_grad():
            return exp.task.measure(exp.caller(model, params), s64.query_x, s64.query_y).numpy()

    return np.stack([(f(res[2 * j].params) - f(res[2 * j + 1].params)) / (2 * H) for j in range(len(examples))], 1)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])  # adam without weight decay: zero-gradient pixels
def test_unrolled_matches_finite_differences_of_retraining(tmp_path, optimizer):
    exp = _experiment(tmp_path, optimizer)
    method = get_method("unrolled")(dtype="float64")
    tau = method.score(AttributionContext(exp, [0]))
    assert tau.shape == (5, 60)
    fd = _finite_differences(exp, 0, EXAMPLES)
    ours = tau[:, EXAMPLES].astype(np.float64)
    rel = np.abs(ours - fd).max() / np.abs(fd).max()
    print(f"{optimizer}: max |tau - FD| / max |FD| = {rel:.2e}, |FD| max {np.abs(fd).max():.3f}")
    assert rel < 1e-3
    # float32 (the default) agrees with float64 closely
    tau32 = get_method("unrolled")().score(AttributionContext(exp, [0]))
    assert np.abs(tau32 - tau).max() / np.abs(tau).max() < 1e-3


def test_unrolled_refuses_large_models_with_a_clear_message(tmp_path):
    from tda_core import io
    from tda_core.stages.attribute import attribute

    exp = _experiment(tmp_path, "sgd")
    meta = attribute(exp, "unrolled", "0", {"max_params": 100}, tmp_path / "out.json", {"mode": "none"})
    assert meta["status"] == "failed" and "small models only" in meta["reason"]
    assert io.read_json(tmp_path / "out.json")["status"] == "failed"


def test_dtda_unrolled_gives_each_seed_its_own_derivative(tmp_path):
    """[R, Q, N] from one job; slice r = seed r's run (its own init and batches), checked by FD."""
    from tda_core import io
    from tda_core.metrics.lds import evaluate_lds
    from tda_core.stages.attribute import attribute

    train = {"optimizer": "sgd", "lr": 0.1, "batch_size": 16, "epochs": 2, "n_checkpoints": 2}
    cfg = tiny_config(dataset={"n_train": 40, "n_query": 4}, model={"hidden": [6], "activation": "tanh"},
                      train=train, seeds=2)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    for seed in range(2):
        train_full(exp, seed, exp.model_path(seed), {"mode": "none"})
    meta = attribute(exp, "dtda_unrolled", "all", {"dtype": "float64"}, tmp_path / "d.json", {"mode": "none"})
    assert meta["status"] == "ok", meta
    tau = io.load_npy(exp.scores_path("dtda_unrolled", "all"))
    assert tau.shape == (2, 4, 40)
    for seed in range(2):
        fd = _finite_differences(exp, seed, [5])
        assert np.abs(tau[seed][:, [5]] - fd).max() / np.abs(fd).max() < 1e-3
    assert np.abs(tau[0] - tau[1]).max() > 0.1 * np.abs(tau).max()  # the seeds really differ
    # the classic LDS of a per-seed-samples file is the LDS of its seed mean
    rng = np.random.default_rng(0)
    gt = {"masks": rng.random((12, 40)) < 0.5, "subset": rng.normal(size=(12, 2, 4))}
    assert evaluate_lds([tau], gt)["value"] == pytest.approx(evaluate_lds([tau.mean(0)], gt)["value"])
