"""Reference libraries on the same models: kronfluence's EK-FAC vs if_ekfac, traker vs trak.

Skipped only when the optional extra is missing (pip install 'tda-bench[reference]').
kronfluence is handed the Fisher labels if_ekfac samples (same generator seed), so the two
EK-FACs see identical data and must agree up to float32 round-off.
"""
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


def _shared_projector(n_params, k):
    """traker projector that applies tda_core's RandomProjector (same R as `trak`)."""
    from trak.projectors import AbstractProjector

    from tda_core.projection import RandomProjector

    class Shared(AbstractProjector):
        def __init__(self):
            super().__init__(n_params, k, 0, "rademacher", "cpu")
            self.ours = RandomProjector(n_params, k, seed=0)

        def project(self, grads, model_id):
            if isinstance(grads, dict):
                grads = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], 1)
            return self.ours(grads)

        def free_memory(self):
            pass

    return Shared()


def test_trak_matches_traker_with_the_same_projection(tmp_path):
    pytest.importorskip("trak", reason="optional extra [reference] (traker) not installed")
    from tda_core.methods.trak_traker import traker_scores

    exp = _trained(tmp_path, seeds=2)
    s = exp.splits
    n_params = sum(p.numel() for p in exp.build_model(0).parameters())
    # one model at a time: traker rescales each model's (Phi^T Phi)^-1 by its mean |entry|, which
    # reweights the members of an ensemble (the ensemble mean itself is checked in test_trak.py)
    for seeds in ([0], [1]):
        ctx = build_context(exp, seeds)
        ours = get_method("trak")(proj_dim=32).score(ctx)
        theirs = traker_scores([(ctx.model(r), ctx.params(r)) for r in seeds], s.train_x, s.train_y, s.query_x,
                               s.query_y, projector=_shared_projector(n_params, 32))
        corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
        print(f"seed {seeds[0]}: Pearson {corr:.10f}")
        assert corr > 1 - 1e-6
    # the reference row itself (traker's own projection) runs and ranks alike
    own = get_method("trak_traker")(proj_dim=32).score(build_context(exp, [0, 1]))
    assert own.shape == (10, 200) and np.isfinite(own).all()
