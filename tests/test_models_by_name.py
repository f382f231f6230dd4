"""Models by name (timm, torchvision, resnet9): built untrained, a dummy forward pass up front that
turns input-size incompatibilities into one line, few-step training and grad_dot / if_ekfac
attribution on digits, and what BatchNorm and dropout do (eval mode everywhere, see docs/data.md)."""
import numpy as np
import pytest
import torch
from conftest import tiny_config

from tda_core.api import load_experiment
from tda_core.errors import ConfigError
from tda_core.stages.context import build_context
from tda_core.methods.registry import get_method
from tda_core.stages.train import train_full

SMALL = {"n_train": 24, "n_val": 8, "n_query": 4, "n_test": 20}


def _exp(tmp_path, model, **overrides):
    cfg = tiny_config(model=model, dataset=SMALL, **overrides)
    cfg["experiments"]["tiny"]["model"] = model
    cfg["results_dir"] = str(tmp_path)
    return load_experiment(cfg, "tiny")


MODELS = {
    "timm_resnet": {"name": "timm", "arch": "resnet10t",
                    "kwargs": {"stem_width": 8, "channels": [8, 8, 16, 16]}},
    "timm_convnext": {"name": "timm", "arch": "convnext_atto",
                      "kwargs": {"depths": [1, 1, 1, 1], "dims": [8, 8, 16, 16], "patch_size": 1}},
    "resnet9": {"name": "resnet9", "widths": [8, 8, 16, 16]},
}


@pytest.mark.parametrize("key", list(MODELS))
def test_model_trains_and_attributes_on_digits(tmp_path, key):
    exp = _exp(tmp_path, MODELS[key], train={"optimizer": "sgd", "lr": 0.01, "batch_size": 8, "epochs": 1,
                                             "n_checkpoints": 2})
    model = exp.build_model(0)
    assert not model.training  # eval mode: see test_batchnorm_and_dropout_are_frozen
    init_buffers = {k: v.clone() for k, v in model.named_buffers()}
    meta = train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    assert np.isfinite(meta["final_train_loss"]) and meta["total_steps"] == 3
    ctx = build_context(exp, [0], chunk_size=8)
    for method in ("grad_dot", "if_ekfac"):
        tau = get_method(method)().score(ctx)
        assert tau.shape == (4, 24) and np.isfinite(tau).all() and np.abs(tau).sum() > 0, method
    # training is functional: the module's buffers (BatchNorm running statistics) never change
    for k, v in exp.build_model(0).named_buffers():
        assert torch.equal(v, init_buffers[k]), k


def test_batchnorm_and_dropout_are_frozen_so_examples_are_independent(tmp_path):
    """With BatchNorm (resnet9) and dropout (timm drop_rate), an example's output is the same alone
    or inside a batch, and the same on every call."""
    exp = _exp(tmp_path, {"name": "timm", "arch": "resnet10t",
                          "kwargs": {"stem_width": 8, "channels": [8, 8, 16, 16], "drop_rate": 0.5}})
    x = exp.splits.train_x[:6]
    for model in (exp.build_model(0), _exp(tmp_path, MODELS["resnet9"]).build_model(0)):
        with torch.no_grad():
            batch = model(x)
            alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
        torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model(x), batch)
        bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bn and all(float(m.running_var.min()) == 1.0 and float(m.running_mean.abs().max()) == 0 for m in bn)


def test_torchvision_model_builds_without_download(tmp_path):
    np.savez(tmp_path / "rgb.npz", x=np.random.default_rng(0).normal(size=(40, 3, 32, 32)).astype(np.float32),
             y=np.arange(40) % 4)
    cfg = tiny_config(dataset={"name": "npz", "path": str(tmp_path / "rgb.npz"), "n_train": 20, "n_val": 5,
                               "n_query": 5})
    cfg["experiments"]["tiny"]["dataset"] = {"name": "npz", "path": str(tmp_path / "rgb.npz"), "n_train": 20,
                                             "n_val": 5, "n_query": 5}
    cfg["experiments"]["tiny"]["model"] = {"name": "torchvision", "arch": "resnet18"}
    exp = load_experiment(cfg, "tiny")
    model = exp.build_model(0)
    assert model(exp.splits.train_x[:2]).shape == (2, 4)


@pytest.mark.parametrize("model,message", [
    ({"name": "torchvision", "arch": "resnet18"},  # 3-channel model, grey 8x8 digits
     r"model torchvision resnet18 cannot take inputs of shape \[1, 8, 8\]"),
    ({"name": "timm", "arch": "vit_tiny_patch16_224"}, r"timm vit_tiny_patch16_224"),
    ({"name": "timm", "arch": "convnext_atto"}, r"model timm convnext_atto cannot take inputs of shape \[1, 8, 8\]"),
    ({"name": "timm", "arch": "no_such_net"}, "needs model.arch naming a timm architecture"),
    ({"name": "timm", "arch": "resnet10t", "kwargs": {"bogus": 1}}, "timm model resnet10t with kwargs"),
    ({"name": "torchvision", "arch": "nope"}, "needs model.arch naming a torchvision model"),
])
def test_incompatible_models_fail_up_front_in_one_line(tmp_path, model, message):
    exp = _exp(tmp_path, model)
    with pytest.raises(ConfigError, match=message) as err:
        exp.build_model(0)
    assert "\n" not in str(err.value)
