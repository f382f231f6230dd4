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
    """The toy family: flatten, one linear layer (with a bias unless model.bias is false: its own option)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), n_out,
                                                 bias=cfg.get("bias", True)))


TOY = ModelEntry("toy_linear", f"{__name__}:build_linear", options={"bias": {"type": "boolean"}})


@pytest.fixture
def toy_family(monkeypatch):
    """TOY as a row of the registry; the config schema (cached, with the rows' options) built again around it."""
    from tda_core import config

    monkeypatch.setitem(MODELS, TOY.name, TOY)
    config._schema.cache_clear()
    config.schema_path.cache_clear()
    yield TOY
    config._schema.cache_clear()
    config.schema_path.cache_clear()


def test_every_row_names_an_importable_builder():
    for name in MODELS:
        assert callable(builder(name)), name


def test_a_new_model_family_is_one_row(toy_family, tmp_path):
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
    # its option, declared on the row: validated in one line, read by its builder
    cfg["experiments"]["tiny"]["model"] = {"name": "toy_linear", "bias": False}
    assert load_experiment(cfg, "tiny").build_model(3)[1].bias is None
    cfg["experiments"]["tiny"]["model"] = {"name": "toy_linear", "bias": "no"}
    with pytest.raises(ConfigError, match="config error at experiments.tiny.model.bias: 'no' is not of type 'boolean'"):
        validate_config(cfg)


def test_a_family_option_changes_no_other_config_hash(toy_family):
    """The row's options carry no default into other experiments' model blocks: the tiny config's hash is the one
    without the toy row."""
    from tda_core import config
    from tda_core.config import resolve_experiment

    with_row = resolve_experiment(validate_config(tiny_config()), "tiny")["config_hash"]
    MODELS.pop(TOY.name)
    config._schema.cache_clear()
    config.schema_path.cache_clear()
    assert resolve_experiment(validate_config(tiny_config()), "tiny")["config_hash"] == with_row


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
