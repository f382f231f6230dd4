"""Mislabel detection: self-influence (target train_self) ranks the flipped labels of digits-mlp first."""

import copy

import numpy as np
import pytest
import torch.nn.functional as F
import yaml

from tda_core import io
from tda_core.api import load_experiment
from tda_core.config import validate_config
from tda_core.errors import ConfigError
from tda_core.stages.attribute import attribute
from tda_core.stages.evaluate import compute
from tda_core.stages.train import train_full

NONE = {"mode": "none"}


@pytest.fixture(scope="module")
def noisy_digits_mlp(repo, tmp_path_factory):
    """The default config's digits-mlp with 10% of its training labels flipped (one seed)."""
    cfg = yaml.safe_load((repo / "workflow/config/config.yaml").read_text())
    exp_cfg = copy.deepcopy(cfg["experiments"]["digits-mlp"])
    exp_cfg["dataset"]["label_noise"] = 0.1
    exp_cfg["seeds"] = 1
    root = tmp_path_factory.mktemp("mislabel")
    exp = load_experiment({"results_dir": str(root), "tracking": NONE, "experiments": {"dm": exp_cfg}}, "dm")
    train_full(exp, 0, exp.model_path(0), NONE)
    return exp


def _self_scores(exp, method, max_self=2000):
    out = exp.scores_path(method, 0, target="train_self").with_suffix(".json")  # as the workflow names it
    meta = attribute(exp, method, "0", {}, out, NONE, target="train_self", max_self=max_self)
    assert meta["status"] == "ok" and meta["target"] == "train_self" and out.name == "train_self_seed0.json"
    return out, io.load_npy(out.with_suffix(".npy")), np.asarray(meta["query_index"])


def test_self_influence_auc_well_above_chance(noisy_digits_mlp):
    exp = noisy_digits_mlp
    assert exp.splits.corrupted.sum() == 100  # 10% of 1000
    aucs = {}
    for method in ("random", "grad_dot", "tracin"):
        out, _, _ = _self_scores(exp, method)
        res = compute(exp, "mislabel_auc", method, out.parent, None)  # evaluate_experiment's per-(method, metric) step
        assert res["status"] == "ok" and res["n_examples"] == 1000 and res["n_corrupted"] == 100
        aucs[method] = res
    # observed: tracin 0.995 [0.991, 0.998], grad_dot 0.985 [0.978, 0.991], random 0.48 [0.42, 0.54]
    assert aucs["tracin"]["value"] > 0.95 and aucs["tracin"]["ci_low"] > 0.9
    assert aucs["grad_dot"]["value"] > 0.95
    assert aucs["random"]["ci_low"] < 0.5 < aucs["random"]["ci_high"]


def test_self_scores_are_loss_gradient_norms_at_the_noisy_labels(noisy_digits_mlp):
    """grad_dot self-influence = |grad loss(z_i)|^2, computed here with plain autograd on an nn.Module."""
    exp = noisy_digits_mlp
    _, scores, index = _self_scores(exp, "grad_dot", max_self=300)
    assert len(index) == 300 and len(set(index.tolist())) == 300 and np.all(np.diff(index) > 0)
    model = exp.build_model(0)
    model.load_state_dict(exp.load_checkpoints(0)[-1]["params"])
    s = exp.splits
    for k in (0, 7, 150, 299):
        i = int(index[k])
        model.zero_grad()
        F.cross_entropy(model(s.train_x[i:i + 1]), s.train_y[i:i + 1]).backward()
        norm2 = sum(float((p.grad ** 2).sum()) for p in model.parameters())
        assert -scores[k, i] == pytest.approx(norm2, rel=1e-4)


def test_mislabel_auc_needs_label_noise():
    cfg = {"tracking": NONE, "experiments": {"x": {"dataset": {"name": "digits"}, "model": {"name": "mlp"},
                                                   "metrics": ["lds", "mislabel_auc"]}}}
    with pytest.raises(ConfigError, match="label_noise"):
        validate_config(cfg)
