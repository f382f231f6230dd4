"""TRAK against its exact dense formula, and the seeded block-wise projection.

Independent truth: per-example gradients from a plain autograd loop in float64 and the TRAK
formula evaluated densely in numpy: with k >= P and lambda -> 0 the projection drops out,
    R (R^T A R)^{-1} R^T = A^{-1}   (A = G^T G invertible, R of full row rank),
so TRAK must equal  mean_r v_r A_r^{-1} G_r^T  x  mean_r (1 - p_r). The margin is invariant to a
shift of all logits and some pixels are constant, so A is singular: A^{-1} is its pseudo-inverse
on the span of the gradients (the lambda -> 0 limit there).
"""
import numpy as np
import pytest
import torch
from conftest import dense_grads, tiny_config

from tda_core.api import load_experiment
from tda_core.stages.context import build_context
from tda_core.methods.registry import get_method
from tda_core.projection import RandomProjector
from tda_core.stages.train import train_full
from tda_core.tasks import margin


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    cfg = tiny_config(dataset={"n_train": 300, "n_query": 6, "classes": [0, 1, 2]},
                      model={"hidden": [2], "activation": "tanh"},
                      train={"lr": 0.05, "epochs": 3, "batch_size": 32, "n_checkpoints": 1}, seeds=2)
    cfg["results_dir"] = str(tmp_path_factory.mktemp("trak"))
    exp = load_experiment(cfg, "tiny")
    # Pixels constant over the training set (digits borders) get the same constant in the queries,
    # so query gradients lie in the span of the training gradients, where the lambda -> 0 limit is
    # the pseudo-inverse (directions outside it would be mixed in by the projection).
    s = exp.splits
    const = (s.train_x == s.train_x[:1]).all(0)
    s.query_x = torch.where(const, s.train_x[:1], s.query_x)
    for seed in range(2):
        train_full(exp, seed, exp.model_path(seed), {"mode": "none"})
    return exp


def _dense_trak(exp):
    s = exp.splits
    total, reweight = 0.0, 0.0
    for seed in range(exp.cfg["seeds"]):
        model = exp.build_model(seed)
        params = exp.load_checkpoints(seed)[-1]["params"]
        g = dense_grads(model, params, margin, s.train_x, s.train_y)
        v = dense_grads(model, params, margin, s.query_x, s.query_y)
        with torch.no_grad():
            logits = torch.func.functional_call(model.double(), {k: p.double() for k, p in params.items()},
                                                (s.train_x.double(),))
        p_true = torch.softmax(logits, -1).gather(1, s.train_y[:, None]).squeeze(1).numpy()
        total = total + v @ np.linalg.pinv(g.T @ g, rcond=1e-13, hermitian=True) @ g.T
        reweight = reweight + (1 - p_true)
    r = exp.cfg["seeds"]
    return (total / r) * (reweight / r)[None, :], g.shape[1]


@pytest.mark.parametrize("proj_type,dtype,tol", [("rademacher", "float64", 1e-6), ("gaussian", "float64", 1e-6),
                                                  ("rademacher", "float32", 1e-3)])
def test_trak_equals_dense_formula_when_projection_keeps_everything(exp, proj_type, dtype, tol):
    truth, n_params = _dense_trak(exp)
    assert n_params <= 256 < exp.splits.n_train  # k >= P
    ours = get_method("trak")(proj_dim=256, proj_type=proj_type, dtype=dtype).score(build_context(exp, [0, 1]))
    rel = np.linalg.norm(ours - truth) / np.linalg.norm(truth)
    corr = np.corrcoef(ours.ravel(), truth.ravel())[0, 1]
    print(f"{proj_type} {dtype}: P={n_params}, relative error {rel:.2e}, Pearson {corr:.8f}")
    assert rel < tol
    # a small projection is an approximation, not the same numbers
    small = get_method("trak")(proj_dim=16, dtype=dtype).score(build_context(exp, [0, 1]))
    assert np.linalg.norm(small - truth) / np.linalg.norm(truth) > 0.05


def test_projection_is_seeded_and_chunking_free():
    g = torch.randn(5, 1000, dtype=torch.float64)
    a = RandomProjector(1000, 64, seed=3, block_rows=7, cache_entries=0)
    b = RandomProjector(1000, 64, seed=3, block_rows=7)
    torch.testing.assert_close(a(g), b(g))  # regenerated blocks == cached blocks
    torch.testing.assert_close(a(g), g @ a.dense().double())
    assert not torch.allclose(a(g), RandomProjector(1000, 64, seed=4, block_rows=7)(g))
    r = RandomProjector(1000, 64, seed=0).dense()
    assert set(torch.unique(r * 8).tolist()) == {-1.0, 1.0}  # Rademacher +-1/sqrt(k)
    gauss = RandomProjector(1000, 64, seed=0, kind="gaussian").dense()
    assert abs(float(gauss.var()) * 64 - 1) < 0.05


def test_projection_preserves_inner_products():
    """Johnson-Lindenstrauss: <Rg, Rh> ~ <g, h> with error ~ |g||h| / sqrt(k)."""
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(20, 3000, generator=gen, dtype=torch.float64)
    proj = RandomProjector(3000, 2048, seed=1)
    exact, projected = g @ g.T, proj(g) @ proj(g).T
    err = (exact - projected).abs().max() / exact.diagonal().mean()
    assert err < 5 / 2048**0.5
