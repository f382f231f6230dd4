"""Public API: everything a library user (or a check) needs about one experiment.

    from tda_core.api import load_experiment
    exp = load_experiment("workflow/config/config.yaml", "digits-mlp")
    model = exp.build_model(seed=0); exp.splits.train_x; exp.task.measure(...)
    ckpts = exp.load_checkpoints(seed=0)   # [{step, params, opt_state}], after the model is trained
    ckpts, meta = exp.load_model_file(seed=0)   # meta: lrs, total_steps, checkpoint_steps, segments, ...
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from torch.func import functional_call

from . import io
from .config import load_config, resolve_experiment, validate_config
from .data import Splits, load_splits, subset_masks
from .device import resolve_device
from .errors import ArtifactError
from .layout import ExperimentLayout
from .spec import ExperimentSpec
from .models import build_model
from .tasks import build_task

__all__ = ["Experiment", "load_experiment"]


class Experiment:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.spec = ExperimentSpec.of(cfg)  # typed, the schema's defaults filled in: read this, not cfg
        self.name: str = cfg["name"]
        self.hash: str = cfg["config_hash"]
        self.layout = ExperimentLayout(str(self.spec.results_dir), self.name)
        self.root = Path(self.layout.root)

    # -- data, model, task ---------------------------------------------------------------------
    @cached_property
    def splits(self) -> Splits:
        return load_splits(self.cfg)

    @cached_property
    def task(self):
        return build_task(self.cfg)

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.spec.device)

    @property
    def n_outputs(self) -> int:
        return self.splits.n_classes

    def build_model(self, seed: int) -> torch.nn.Module:
        return build_model(self.cfg, tuple(self.splits.train_x.shape[1:]), self.n_outputs, seed)

    def masks(self) -> "np.ndarray":  # noqa: F821
        gt = self.cfg["groundtruth"]
        return subset_masks(self.splits.n_train, gt["n_subsets"], gt["alpha"], gt["subset_seed"])

    def caller(self, model: torch.nn.Module, params: dict, buffers: dict | None = None):
        """inputs -> outputs of `model` evaluated at `params` (for the task's loss / measure)."""
        buffers = buffers if buffers is not None else dict(model.named_buffers())
        return lambda x: functional_call(model, (params, buffers), (x,))

    # -- artifact paths ------------------------------------------------------------------------
    def model_path(self, seed: int) -> Path:
        return Path(self.layout.model(seed))

    def scores_path(self, method: str, seed: int | str, target: str = "query") -> Path:
        return Path(self.layout.score_file(method, target, seed, ".npy"))

    def groundtruth_path(self) -> Path:
        return Path(self.layout.groundtruth)

    def load_model_file(self, seed: int) -> tuple[list[dict], dict]:
        """(checkpoints, meta) of seed `seed`'s model file, read once."""
        blob = io.load_torch(self.model_path(seed), expect_hash=self.hash)
        if "checkpoints" not in blob:
            raise ArtifactError(f"{self.model_path(seed)} holds no checkpoints")
        return blob["checkpoints"], blob["meta"]

    def load_checkpoints(self, seed: int) -> list[dict]:
        return self.load_model_file(seed)[0]

    def load_model_meta(self, seed: int) -> dict:
        return io.load_torch(self.model_path(seed), expect_hash=self.hash)["meta"]

    def load_groundtruth(self) -> dict:
        arrays, _ = io.load_npz(self.groundtruth_path(), expect_hash=self.hash)
        return arrays


def load_experiment(config: str | Path | dict, name: str) -> Experiment:
    """`config`: a YAML path, a full config dict, or an already-resolved experiment dict."""
    if isinstance(config, dict) and "config_hash" in config:
        return Experiment(config)
    cfg = load_config(config) if not isinstance(config, dict) else validate_config(config)
    return Experiment(resolve_experiment(cfg, name))
