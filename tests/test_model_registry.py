"""One row per model family: the registry's ModelEntry is what config validation and build_model read (checked
with a toy family); the model libraries are imported only by the experiments that use them."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import tiny_config
from torch import nn

from tda_core.api import load_experiment
from tda_core.config import validate_config
from tda_core.errors import ConfigError
from tda_core.models.registry import MODELS, ModelEntry, builder


def build_linear(cfg: dict, in_shape, n_out: int) -> nn.Module:
    """The toy family: flatten, one linear layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), n_out))


TOY = ModelEntry("toy_linear", f"{__name__}:build_linear")


def test_every_row_names_an_importable_builder():
    for name in MODELS:
        assert callable(builder(name)), name


def test_a_new_model_family_is_one_row(monkeypatch, tmp_path):
    monkeypatch.setitem(MODELS, TOY.name, TOY)
    cfg = tiny_config(model={"name": "toy_linear"})
    cfg["experiments"]["tiny"]["model"] = {"name": "toy_linear"}
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    model = exp.build_model(3)
    x = exp.splits.train_x[:5]
    (w, b) = (model[1].weight, model[1].bias)
    assert torch.allclose(model(x), x.flatten(1) @ w.T + b)  # the toy's own forward, nothing wrapped around it
    again = exp.build_model(3)
    assert torch.equal(again[1].weight, w)  # seeded: the same parameters for the same seed


def test_an_unknown_model_is_one_line():
    cfg = tiny_config()
    cfg["experiments"]["tiny"]["model"] = {"name": "nope"}
    with pytest.raises(ConfigError, match="experiment 'tiny': unknown model 'nope'; known: .*gpt2.*mlp"):
        validate_config(cfg)


def test_building_an_mlp_imports_no_model_library():
    code = ("import sys; from conftest import tiny_config; from tda_core.api import load_experiment;"
            "e = load_experiment(tiny_config(), 'tiny'); e.build_model(0);"
            "print(sorted(m for m in ('timm', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parent),
                         check=True).stdout.strip().splitlines()[-1]
    assert out == "[]"
