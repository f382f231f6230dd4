"""Reduced-precision training and device paths.

On CPU: bf16/fp16 autocast training tracks fp32 training, and fp16's loss scaling is what keeps tiny
gradients from flushing to zero (checked by switching it off). With CUDA (a GPU machine): training,
per-example gradients and scores on cuda agree with the CPU ones, and attribution stays float32.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from tda_core.api import Experiment
from tda_core.config import resolve_experiment, shared_experiment_config, validate_config
from tda_core.device import resolve_device
from tda_core.errors import ConfigError
from tda_core.training import Run, train_models
from tda_core.training import trainer as trainer_module

from pathlib import Path

TINY = Path(__file__).resolve().parents[1] / "workflow" / "config" / "tiny.yaml"


def tiny_experiment(tmp_path, precision="fp32", device="cpu", **train) -> Experiment:
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(results_dir=str(tmp_path), tracking={"mode": "none"}, precision=precision, device=device)
    cfg["experiments"]["tiny-mlp"]["train"].update(train)
    return Experiment(shared_experiment_config(resolve_experiment(validate_config(cfg), "tiny-mlp")))


def train_params(exp, runs):
    return [r.params for r in train_models(exp.cfg, exp.splits, runs, exp.build_model, exp.task, exp.device)]


def rel_dist(a: dict, b: dict) -> float:
    num = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a)
    den = sum(float(b[k].double().pow(2).sum()) for k in b)
    return (num / den) ** 0.5


def moved(after: dict, before: dict) -> float:
    return rel_dist(after, before)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_training_tracks_fp32(tmp_path, precision):
    runs = [Run(0), Run(1)]
    ref = train_params(tiny_experiment(tmp_path, "fp32"), runs)
    low = train_params(tiny_experiment(tmp_path, precision), runs)
    init = {k: v.detach() for k, v in tiny_experiment(tmp_path).build_model(0).named_parameters()}
    for a, b in zip(low, ref):
        assert all(v.dtype == torch.float32 for v in a.values())  # master weights stay float32
        # bf16 keeps 8 mantissa bits, fp16 11: the trajectories differ by far less than training moved them
        assert rel_dist(a, b) < 0.1 * moved(ref[0], init)


def test_fp16_loss_scaling_keeps_tiny_gradients(tmp_path, monkeypatch):
    """Loss weights of 1e-5 (with lr x 1e5, the same SGD trajectory in exact arithmetic) make every
    backward value ~1e-7, under fp16's normal range: without the loss scale they flush to zero."""
    n = 120
    common = dict(lr=0.05 * 1e5, momentum=0.0, weight_decay=0.0)
    runs = [Run(0, weights=np.full(n, 1e-5))]
    ref = train_params(tiny_experiment(tmp_path, "fp32", **common), runs)[0]
    init = {k: v.detach() for k, v in tiny_experiment(tmp_path).build_model(0).named_parameters()}
    scaled = train_params(tiny_experiment(tmp_path, "fp16", **common), runs)[0]
    monkeypatch.setattr(trainer_module, "FP16_LOSS_SCALE", 1.0)
    unscaled = train_params(tiny_experiment(tmp_path, "fp16", **common), runs)[0]
    assert rel_dist(scaled, ref) < 0.1 * moved(ref, init)
    assert rel_dist(unscaled, ref) > 3 * rel_dist(scaled, ref)


def test_explicit_cuda_without_cuda_is_a_config_error():
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
        assert resolve_device("auto") == torch.device("cpu")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_training_and_gradients_on_cuda_match_cpu(tmp_path):
    from tda_core.gradients import per_example_grads

    runs = [Run(0), Run(1, mask=np.arange(120) % 2 == 0)]
    cpu_exp, gpu_exp = tiny_experiment(tmp_path, device="cpu"), tiny_experiment(tmp_path, device="cuda")
    assert gpu_exp.device.type == "cuda" and not torch.backends.cuda.matmul.allow_tf32
    cpu_params, gpu_params = train_params(cpu_exp, runs), train_params(gpu_exp, runs)
    for a, b in zip(gpu_params, cpu_params):
        assert all(v.device.type == "cpu" for v in a.values())  # results come back on the CPU
        assert rel_dist(a, b) < 1e-3
    s = cpu_exp.splits
    g_cpu = per_example_grads(cpu_exp.build_model(0), cpu_params[0], cpu_exp.task.attribution_loss,
                              s.train_x, s.train_y, 32)
    params_gpu = {k: v.cuda() for k, v in cpu_params[0].items()}
    g_gpu = per_example_grads(gpu_exp.build_model(0).cuda(), params_gpu, gpu_exp.task.attribution_loss,
                              s.train_x, s.train_y, 32)
    assert g_gpu.dtype == torch.float32 and g_gpu.device.type == "cuda"
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-4, atol=1e-6)


@cuda
def test_bf16_training_on_cuda_tracks_fp32(tmp_path):
    runs = [Run(0), Run(1)]
    ref = train_params(tiny_experiment(tmp_path, "fp32", device="cuda"), runs)
    low = train_params(tiny_experiment(tmp_path, "bf16", device="cuda"), runs)
    init = {k: v.detach() for k, v in tiny_experiment(tmp_path).build_model(0).named_parameters()}
    for a, b in zip(low, ref):
        assert rel_dist(a, b) < 0.1 * moved(ref[0], init)
