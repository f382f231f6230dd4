"""`unrolled` against central finite differences of retraining with one re-weighted example.

Independent truth: train_models (the real trainer, float64) run three times per example k with
w_k = 1 + h, 1 - h (same seed, same batches); (f(w+) - f(w-)) / 2h must equal tau[:, k] to 1e-3.
"""
import dataclasses

import numpy as np
import pytest
import torch
from conftest import float64_flat_setup, tiny_config

from tda_core.api import load_experiment
from tda_core.stages.context import build_context
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
    tau = method.score(build_context(exp, [0]))
    assert tau.shape == (5, 60)
    fd = _finite_differences(exp, 0, EXAMPLES)
    ours = tau[:, EXAMPLES].astype(np.float64)
    rel = np.abs(ours - fd).max() / np.abs(fd).max()
    print(f"{optimizer}: max |tau - FD| / max |FD| = {rel:.2e}, |FD| max {np.abs(fd).max():.3f}")
    assert rel < 1e-3
    # float32 (the default) agrees with float64 closely
    tau32 = get_method("unrolled")().score(build_context(exp, [0]))
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
    from tda_core.metrics.groundtruth import GroundTruth
    from tda_core.metrics.lds import evaluate_lds
    from tda_core.scores import Scores
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
    gt = GroundTruth(masks=rng.random((12, 40)) < 0.5, subset=rng.normal(size=(12, 2, 4)))
    samples, mean = Scores.from_arrays(tau, "per_seed_samples"), Scores.from_arrays([tau.mean(0)], "pooled")
    assert evaluate_lds(samples, gt)["value"] == pytest.approx(evaluate_lds(mean, gt)["value"])


def _dense_source(exp, curvature_at, n_segments):
    """The SOURCE recursion of docs/design.md (Estimators) evaluated with dense matrices: curvature_at(params) -> [P, P]."""
    from tda_core.gradients import per_example_grads
    from tda_core.methods.source import segment_plan
    from tda_core.stages.context import intervals_of

    s, model = exp.splits, exp.build_model(0)
    ckpts = exp.load_checkpoints(0)
    grads = lambda i: per_example_grads(model, ckpts[i]["params"], exp.task.loss, s.train_x,  # noqa: E731
                                        s.train_y).double().numpy()
    u = per_example_grads(model, ckpts[-1]["params"], exp.task.measure, s.query_x, s.query_y).double().numpy()
    total = 0.0
    for seg in reversed(segment_plan(intervals_of(exp.load_model_meta(0), exp.splits.n_train), n_segments)):
        c, idx = seg["lr_sum"], seg["ckpts"]
        lam, Q = np.linalg.eigh(np.mean([curvature_at(ckpts[i]["params"]) for i in idx], 0))
        safe = np.where(np.abs(c * lam) < 1e-12, 1.0, lam)
        response = np.where(np.abs(c * lam) < 1e-12, c, -np.expm1(-c * lam) / safe)
        g = np.mean([grads(i) for i in idx], 0)
        total = total - ((u @ Q) * response) @ Q.T @ g.T / s.n_train
        u = ((u @ Q) * np.exp(-c * lam)) @ Q.T
    return total


def test_source_with_many_segments_approaches_unrolled(tmp_path):
    """Full-batch GD on a tiny tanh MLP. SOURCE's recursion with the exact Hessian converges to the
    exact unrolled derivative as the segments shorten; `source` (EK-FAC of the GGN) is capped by its
    curvature: this early-training regime has negative Hessian eigenvalues the GGN leaves out."""
    from torch.func import functional_call, hessian, jacrev

    from tda_core.gradients import flatten

    n, wd = 100, 1e-3
    train = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": wd, "batch_size": n, "epochs": 60,
             "n_checkpoints": 12}
    cfg = tiny_config(dataset={"n_train": n, "n_query": 10}, model={"hidden": [8], "activation": "tanh"},
                      train=train, seeds=1)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    ctx = build_context(exp, [0])
    unrolled = get_method("unrolled")(dtype="float64").score(ctx).astype(np.float64)

    model, x, y, unflat = float64_flat_setup(exp)

    def mean_loss(v):  # the trained objective: mean loss + coupled L2
        return exp.task.loss(lambda inp: functional_call(model, unflat(v), (inp,)), x, y).mean() + 0.5 * wd * v @ v

    def exact_hessian(params):
        return hessian(mean_loss)(flatten({k: v.double() for k, v in params.items()})).numpy()

    def exact_ggn(params):
        v = flatten({k: p.double() for k, p in params.items()})
        jac = jacrev(lambda w: functional_call(model, unflat(w), (x,)))(v)  # [N, C, P]
        p = torch.softmax(functional_call(model, unflat(v), (x,)), -1)
        h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        return (torch.einsum("ncp,ncd,ndq->pq", jac, h_out, jac) / n).numpy() + wd * np.eye(len(v))

    corr = lambda a: float(np.corrcoef(a.ravel(), unrolled.ravel())[0, 1])  # noqa: E731
    rows = {}
    for L in (1, 3, 12):
        rows[L] = (corr(_dense_source(exp, exact_hessian, L)), corr(_dense_source(exp, exact_ggn, L)),
                   corr(get_method("source")(n_segments=L, n_fisher_samples=8, cache=False).score(ctx)))
        print(f"L={L:2d}: Pearson with unrolled  exact-Hessian SOURCE {rows[L][0]:.4f}  "
              f"GGN SOURCE {rows[L][1]:.4f}  `source` (EK-FAC) {rows[L][2]:.4f}")
    assert rows[1][0] < rows[3][0] <= rows[12][0] + 1e-3 and rows[12][0] > 0.995
    for L, (_, ggn, ours) in rows.items():
        assert ours > 0.9 and abs(ours - ggn) < 0.05, (L, ours, ggn)
