"""Influence functions and SOURCE against independent truth: leave-one-out retraining of a convex
model (L2-regularised logistic regression), the exact IF, and the unrolled derivative."""
import numpy as np
import pytest
import torch
from conftest import tiny_config
from scipy.stats import pearsonr
from torch import nn
from torch.func import functional_call

from tda_core.api import load_experiment
from tda_core.stages.context import build_context
from tda_core.methods.if_exact import exact_if_scores
from tda_core.methods.registry import get_method
from tda_core.stages.train import train_full
from tda_core.tasks import ClassificationTask

TASK = ClassificationTask()


def _fit_logreg(model, x, y, wd, init=None, drop=None):
    """argmin of mean CE (over the kept points) + wd/2 |theta|^2, by L-BFGS to tight tolerance."""
    keep = torch.ones(len(x), dtype=torch.bool)
    if drop is not None:
        keep[drop] = False
    params = {k: (init[k] if init else v).detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    opt = torch.optim.LBFGS(list(params.values()), lr=1, max_iter=500, tolerance_grad=1e-13,
                            tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = functional_call(model, params, (x[keep],))
        loss = nn.functional.cross_entropy(logits, y[keep]) + 0.5 * wd * sum((p**2).sum() for p in params.values())
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    return {k: v.detach() for k, v in params.items()}


def test_if_exact_predicts_leave_one_out_retraining_of_logistic_regression():
    torch.manual_seed(0)
    n, d, c, wd = 150, 6, 3, 1e-2
    w_true = torch.randn(d, c) * 1.5
    x = torch.randn(n + 4, d, dtype=torch.float64)
    y = torch.distributions.Categorical(logits=(x.float() @ w_true)).sample()
    x_tr, y_tr, x_q, y_q = x[:n], y[:n], x[n:], y[n:]
    model = nn.Sequential(nn.Linear(d, c)).double()
    full = _fit_logreg(model, x_tr, y_tr, wd)
    tau = exact_if_scores(model, full, TASK, x_tr, y_tr, x_q, y_q, weight_decay=wd, damping=0.0).numpy()

    def f(params):
        with torch.no_grad():
            return TASK.measure(lambda inp: functional_call(model, params, (inp,)), x_q, y_q).numpy()

    removed = np.random.default_rng(0).choice(n, 50, replace=False)
    # actual effect of including z_i = f(trained on all) - f(trained without z_i)
    actual = np.stack([f(full) - f(_fit_logreg(model, x_tr, y_tr, wd, init=full, drop=int(i))) for i in removed], 1)
    pred = tau[:, removed]
    r = [pearsonr(pred[q], actual[q])[0] for q in range(len(x_q))]
    slope = (pred * actual).sum() / (pred**2).sum()
    print(f"if_exact vs leave-one-out retraining: Pearson per query {np.round(r, 4)}, LS slope {slope:.3f}")
    # Observed: Pearson 0.998-0.999 on every query, slope 1.1 (retraining renormalises by 1/(N-1)).
    assert min(r) >= 0.95
    assert 0.8 < slope < 1.25


def _experiment(tmp_path, name="tiny", seeds=1, **over):
    cfg = tiny_config(**over, seeds=seeds)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    for s in range(seeds):
        train_full(exp, s, exp.model_path(s), {"mode": "none"})
    return exp


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_source_with_one_long_segment_is_the_if_with_damping_one_over_eta_k(tmp_path):
    # One segment whose only checkpoint is the final model: SOURCE's filter (1 - exp(-c lam)) / lam
    # against the IF filter 1 / (lam + 1/c) on the same EK-FAC curvature and gradients.
    exp = _experiment(tmp_path, dataset={"n_train": 100, "n_query": 10}, model={"hidden": [8], "activation": "tanh"},
                      train={"optimizer": "sgd", "lr": 0.2, "momentum": 0.0, "weight_decay": 1e-3,
                             "batch_size": 100, "epochs": 150, "n_checkpoints": 1})
    ctx = build_context(exp, [0])
    c = exp.load_model_meta(0)["segments"][0]["mean_lr"] * 150
    src = get_method("source")(n_segments=1, cache=False).score(ctx)
    ifd = get_method("if_ekfac")(damping=1.0 / c, cache=False).score(ctx)
    exact = get_method("if_exact")(damping=1.0 / c).score(ctx)  # dense GGN: no Kronecker approximation
    r_if, r_exact = _corr(src, ifd), _corr(src, exact)
    ratio = np.abs(src).mean() / np.abs(ifd).mean()
    print(f"SOURCE (L=1, c={c:.0f}) vs EK-FAC IF with damping 1/c: Pearson {r_if:.4f}, mean |.| ratio {ratio:.3f}; "
          f"vs exact IF with damping 1/c: {r_exact:.4f}")
    # Observed: 0.999 against the EK-FAC IF (ratio 1.2: the filters agree at lam -> 0 and lam >> 1/c,
    # and differ by at most 1.26x in between), 0.85 against the dense-GGN IF (the EK-FAC gap).
    assert r_if > 0.99 and 0.8 < ratio < 1.3
    assert r_exact > 0.75


def test_ekfac_influence_tracks_exact_influence_and_ensembles_average_seeds(tmp_path):
    exp = _experiment(tmp_path, seeds=2, dataset={"n_train": 120, "n_query": 12}, model={"hidden": [16]})
    per_seed = {}
    for s in (0, 1):
        ctx = build_context(exp, [s])
        per_seed[s] = {m: get_method(m)(**({} if m == "if_exact" else {"cache": False})).score(ctx)
                       for m in ("if_exact", "if_ekfac", "if_kfac")}
        r = {m: _corr(per_seed[s][m], per_seed[s]["if_exact"]) for m in ("if_ekfac", "if_kfac")}
        print(f"seed {s}: Pearson with if_exact (same relative damping 0.1): {r}")
        # Observed 0.89 / 0.92 (EK-FAC) and 0.89 / 0.93 (K-FAC) for seeds 0 / 1 on this 1-hidden-layer MLP.
        assert r["if_ekfac"] > 0.85 and r["if_kfac"] > 0.8
    ens = get_method("if_ensemble")(cache=False)
    assert ens.all_seeds_at_once
    both = ens.score(build_context(exp, [0, 1]))
    np.testing.assert_allclose(both, (per_seed[0]["if_ekfac"] + per_seed[1]["if_ekfac"]) / 2, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_source_tracks_the_unrolled_derivative_with_momentum_and_adam(tmp_path, optimizer):
    train = {"optimizer": optimizer, "lr": 0.05 if optimizer == "sgd" else 0.005, "momentum": 0.9,
             "weight_decay": 1e-3, "batch_size": 32, "epochs": 8, "n_checkpoints": 6}
    exp = _experiment(tmp_path, dataset={"n_train": 80, "n_query": 8}, model={"hidden": [8], "activation": "tanh"},
                      train=train)
    ctx = build_context(exp, [0])
    unrolled = get_method("unrolled")(dtype="float64").score(ctx)
    r = {m: _corr(get_method(m)(n_fisher_samples=4, cache=False).score(ctx), unrolled)
         for m in ("source", "source_fast")}
    r["if_ekfac"] = _corr(get_method("if_ekfac")(cache=False).score(ctx), unrolled)
    print(f"{optimizer}: Pearson with unrolled (mini-batch SGD/Adam, 3 segments): {r}")
    # Observed: sgd source 0.88, source_fast 0.88 (if_ekfac 0.81); adam 0.91, 0.92 (if_ekfac 0.82).
    assert r["source"] > 0.8 and r["source_fast"] > 0.8
