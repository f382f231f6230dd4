"""The one registry of model families: one `ModelEntry` row per `model.name`, read by config validation
(the name, the task kind it serves, whether the plan-time check builds it) and by `build_model` (its
builder, imported only when an experiment uses it: timm, diffusers and transformers cost seconds per
job). A new family is its builder plus one row; options it adds are the row's `options` (JSON-schema
properties of the `model` block, without defaults: its builder applies them, so no other experiment's config
hash changes). The shipped families' options are in the config schema's `model` block, where their defaults
are part of every config's hash. Imports neither torch nor a model library.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry_rows import import_path, row_of


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: str               # "module:function"(model config, in_shape, n_out) -> nn.Module
    kind: str | None = None    # the only task kind it serves (None: any but the ones other rows claim)
    any_shape: bool = False    # takes any input shape: the plan-time check builds nothing
    checks_forward: bool = True  # build_model runs one dummy example through it ([1, *in_shape] -> [1, n_out])
    options: dict | None = None  # {key: JSON schema} of the `model` keys it adds (no "default": the builder's)


_ROWS = (
    ModelEntry("mlp", "tda_core.models.mlp:build_mlp", any_shape=True),
    ModelEntry("vit", "tda_core.models.vit:build_vit"),
    ModelEntry("timm", "tda_core.models.by_name:build_timm"),
    ModelEntry("torchvision", "tda_core.models.by_name:build_torchvision"),
    ModelEntry("resnet9", "tda_core.models.resnet9:build_resnet9"),
    # the UNet's input carries the timestep channel (tda_core.models.unet): no plain dummy example
    ModelEntry("unet", "tda_core.models.unet:build_unet", any_shape=True, checks_forward=False),
    # GPT-2 takes token ids and checks its own shapes (tda_core.models.gpt)
    ModelEntry("gpt2", "tda_core.models.gpt:build_gpt2", kind="language_model", checks_forward=False),
)
MODELS: dict[str, ModelEntry] = {row.name: row for row in _ROWS}


def model_entry(name: str) -> ModelEntry:
    return row_of(MODELS, name, "model")


def builder(name: str):
    return import_path(model_entry(name).builder)
