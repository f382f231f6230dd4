"""Reference libraries on the same models: kronfluence's EK-FAC vs if_ekfac, traker vs trak.

Skipped only when the optional extra is missing (pip install 'tda-bench[reference]').
kronfluence is handed the Fisher labels if_ekfac samples (same generator seed), so the two
EK-FACs see identical data and must agree up to float32 round-off.
"""
import copy

import numpy as np
import pytest
import torch
from conftest import tiny_config

from tda_core.api import load_experiment
from tda_core.stages.context import build_context
from tda_core.methods.registry import get_method
from tda_core.stages.train import train_full


def _trained(tmp_path, seeds=1, **model):
    # no weight decay: kronfluence's curvature has no L2 term (if_ekfac would add it)
    cfg = tiny_config(dataset={"n_train": 200, "n_query": 10}, model={"hidden": [16, 8], **model},
                      train={"weight_decay": 0.0, "epochs": 5}, seeds=seeds)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    for seed in range(seeds):
        train_full(exp, seed, exp.model_path(seed), {"mode": "none"})
    return exp


@pytest.mark.parametrize("damping", [None, 1e-3])  # None: 0.1 x mean eigenvalue per layer in both
def test_if_ekfac_matches_kronfluence(tmp_path, damping):
    pytest.importorskip("kronfluence", reason="optional extra [reference] (kronfluence) not installed")
    exp = _trained(tmp_path)
    ctx = build_context(exp, [0])
    theirs = get_method("if_ekfac_kronfluence")(damping=damping).score(ctx)
    ours = get_method("if_ekfac")(damping=damping, cache=False).score(ctx)
    corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    rel = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    print(f"damping={damping}: Pearson {corr:.10f}, relative difference {rel:.1e}")
    assert corr >= 0.99 and rel < 1e-3


def test_trak_matches_traker_with_the_same_projection(tmp_path):
    pytest.importorskip("trak", reason="optional extra [reference] (traker) not installed")
    from tda_core.methods.trak_traker import our_projection, traker_scores

    exp = _trained(tmp_path, seeds=2)
    s = exp.splits
    n_params = sum(p.numel() for p in exp.build_model(0).parameters())
    # one model at a time: traker rescales each model's (Phi^T Phi)^-1 by its mean |entry|, which
    # reweights the members of an ensemble (the ensemble mean itself is checked in test_trak.py)
    for seeds in ([0], [1]):
        ctx = build_context(exp, seeds)
        ours = get_method("trak")(proj_dim=32).score(ctx)
        theirs = traker_scores([(ctx.model(r), ctx.params(r)) for r in seeds], s.train_x, s.train_y, s.query_x,
                               s.query_y, projector=our_projection(n_params, 32))
        corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
        print(f"seed {seeds[0]}: Pearson {corr:.10f}")
        assert corr > 1 - 1e-6
    # the reference row itself (traker's own projection) runs and ranks alike
    own = get_method("trak_traker")(proj_dim=32).score(build_context(exp, [0, 1]))
    assert own.shape == (10, 200) and np.isfinite(own).all()


def _gpt_context(n_train=20, n_query=5, context=8, vocab=12, seed=0):
    """A tiny GPT-2 (1 layer, 2 heads, width 16, tied head) as an AttributionContext: right-padded
    random sequences, weights spread beyond GPT-2's 0.02 init so that predictions are not uniform."""
    from types import SimpleNamespace

    from tda_core.methods.context import AttributionContext, Checkpoint, Trajectory
    from tda_core.models.gpt import build_gpt2
    from tda_core.tasks import IGNORE_INDEX, LanguageModelTask

    def build(_seed):
        torch.manual_seed(seed)
        return build_gpt2({"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": context}, (context,), vocab)

    model = build(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(seed + 1)
    n = n_train + n_query
    x = torch.randint(0, vocab, (n, context), generator=g)
    y = torch.roll(x, -1, dims=1)  # next token; the last position and the padding carry no loss
    lengths = torch.randint(2, context, (n,), generator=g)
    y[torch.arange(context)[None, :] >= lengths[:, None]] = IGNORE_INDEX
    traj = Trajectory(0, (Checkpoint(step=1, params=params),), SimpleNamespace(weight_decay=0.0))
    return AttributionContext(LanguageModelTask(), x[:n_train], y[:n_train], x[n_train:], y[n_train:], (0,),
                              build, lambda s: traj)


def test_if_ekfac_matches_kronfluence_on_gpt2():
    # The fair comparison: the suite's EK-FAC IF restricted to the parameters kronfluence covers (the
    # Conv1D projections, which it sees as nn.Linear; the tied head / embeddings and LayerNorms are
    # outside both sums), same Fisher labels, same per-example loss, damping 0.1 x mean eigenvalue per
    # layer in both. The curvature is block-diagonal, so restricting = zeroing the other coordinates.
    pytest.importorskip("kronfluence", reason="optional extra [reference] (kronfluence) not installed")
    from tda_core.curvature import KronBlock, filters, fit_curvature

    ctx = _gpt_context()
    theirs = get_method("if_ekfac_kronfluence")().score(ctx)
    model, params = ctx.model(0), ctx.params(0)
    curv = fit_curvature(model, params, ctx.task, ctx.train_x, y=ctx.train_y, kind="ekfac", seed=0)
    kron = [b for b in curv.blocks if isinstance(b, KronBlock)]
    assert sorted(b.module.rsplit(".", 2)[-2] + "." + b.module.rsplit(".", 1)[-1] for b in kron) == [
        "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
    covered = torch.zeros(curv.n_params, dtype=torch.float64)
    for b in kron:
        covered[curv.slices[b.weight]] = covered[curv.slices[b.bias]] = 1.0
    V = ctx.query_grads(0, params).double() * covered
    G = ctx.train_grads(0, params).double() * covered
    ours = (-(curv.precondition(V, filters.damped_inverse(damping_rel=0.1)) @ G.T) / ctx.n_train).numpy()
    corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    rel = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    # the full if_ekfac row (all parameters, diagonal blocks for embeddings / LayerNorm) for reference
    full = get_method("if_ekfac")(cache=False).score(ctx)
    corr_full = np.corrcoef(full.ravel(), theirs.ravel())[0, 1]
    print(f"GPT-2: Pearson {corr:.10f}, relative difference {rel:.1e} on kronfluence's layers; "
          f"full if_ekfac row vs kronfluence: Pearson {corr_full:.4f}")
    assert corr >= 0.95 and rel < 1e-3


def test_traker_on_gpt2_matches_a_brute_force_trak():
    # traker with the language-model adapter (trak_traker.py: f = mean token loss, Q = -1), handed the suite's
    # projection R, against TRAK written out: float64 gradients of each sequence's mean token loss, one
    # autograd call per sequence (no vmap), S = -(V R) (Phi^T Phi)^{-1} Phi^T with Phi = G R. k < N keeps
    # Phi^T Phi invertible (traker inverts it without a pseudo-inverse). traker rescales its kernel by
    # its mean |entry|, so the scale is arbitrary: compared by Pearson, as on classification.
    pytest.importorskip("trak", reason="optional extra [reference] (traker) not installed")
    from torch.func import functional_call

    from tda_core.methods.trak_traker import our_projection, traker_scores
    from tda_core.projection import RandomProjector

    ctx, k = _gpt_context(n_train=40, n_query=6), 16
    model, params = ctx.model(0), ctx.params(0)
    n_params = sum(p.numel() for p in params.values())
    assert n_params == sum(p.numel() for p in model.parameters())

    def dense(x, y):
        m, p64 = copy.deepcopy(model).double(), {n: v.double().requires_grad_(True) for n, v in params.items()}
        rows = []
        for xi, yi in zip(x, y):
            val = ctx.task.loss(lambda inp: functional_call(m, p64, (inp,)), xi[None], yi[None]).sum()
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(val, list(p64.values()))]))
        return torch.stack(rows)

    R = RandomProjector(n_params, k, seed=0).dense().double()
    phi, v = dense(ctx.train_x, ctx.train_y) @ R, dense(ctx.query_x, ctx.query_y) @ R
    truth = (-(v @ torch.linalg.inv(phi.T @ phi) @ phi.T)).numpy()
    theirs = traker_scores([(model, params)], ctx.train_x, ctx.train_y, ctx.query_x, ctx.query_y,
                           projector=our_projection(n_params, k), task=ctx.task)
    ours = get_method("trak")(proj_dim=k).score(ctx)
    corr, corr_ours = (np.corrcoef(s.ravel(), truth.ravel())[0, 1] for s in (theirs, ours))
    print(f"GPT-2 TRAK: 1 - Pearson vs brute force: traker {1 - corr:.1e}, trak {1 - corr_ours:.1e}")
    assert corr > 1 - 1e-6 and corr_ours > 1 - 1e-6
    # the reference row itself (traker's own projection) runs on a language model
    own = get_method("trak_traker")(proj_dim=k).score(ctx)
    assert own.shape == (6, 40) and np.isfinite(own).all()
