"""Per-example gradients (torch.func) against a per-example autograd loop, and first-order methods
against the actual effect of a small gradient step (finite differences of training)."""
import dataclasses

import numpy as np
import torch
from conftest import tiny_config
from torch.func import functional_call

from tda_core.api import load_experiment
from tda_core.gradients import flatten, per_example_grads
from tda_core.methods.context import Checkpoint, Trajectory
from tda_core.stages.context import build_context
from tda_core.methods.grad_dot import GradDot


def _loop_grads(model, params, fn, x, y):
    out = []
    for i in range(len(x)):
        p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        value = fn(lambda inp: functional_call(model, p, (inp,)), x[i : i + 1], y[i : i + 1]).sum()
        grads = torch.autograd.grad(value, list(p.values()))
        out.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(out)


def test_per_example_grads_match_autograd_loop_mlp_and_vit():
    for model_cfg in ({"name": "mlp", "hidden": [16]},
                      {"name": "vit", "embed_dim": 16, "depth": 1, "num_heads": 2, "patch_size": 4}):
        exp = load_experiment(tiny_config(model=model_cfg), "tiny")
        model = exp.build_model(0)
        params = dict(model.named_parameters())
        s = exp.splits
        for fn in (exp.task.attribution_loss, exp.task.measure):
            ours = per_example_grads(model, params, fn, s.train_x[:7], s.train_y[:7], chunk_size=3)
            ref = _loop_grads(model, params, fn, s.train_x[:7], s.train_y[:7])
            assert ours.shape == (7, sum(p.numel() for p in params.values()))
            torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def test_margin_is_log_odds_of_true_class():
    from tda_core.tasks import margin

    logits = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1])
    p = torch.softmax(logits, -1)[torch.arange(5), y]
    torch.testing.assert_close(margin(logits, y), torch.log(p / (1 - p)))


def test_grad_dot_predicts_the_effect_of_one_small_step(tmp_path):
    """tau = -v.g is, to first order, the change of f(z_q) per unit lr of one SGD step on z_i."""
    cfg = tiny_config()
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    model = exp.build_model(0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    # theta = the init: the context's trajectory loader replaced (its public field), no cache poked
    ctx = dataclasses.replace(build_context(exp, [0]), _trajectories={},
                              load_trajectory=lambda seed: Trajectory(seed, (Checkpoint(0, params),), optimizer=None))
    scores = GradDot().score(ctx)  # [Q, N]
    s = exp.splits
    lr, i = 1e-4, 5
    g = per_example_grads(model, params, exp.task.attribution_loss, s.train_x[i : i + 1], s.train_y[i : i + 1])[0]

    def f_after_step(step_lr):
        stepped, new_params, start = flatten(params) - step_lr * g, {}, 0
        for k, v in params.items():
            new_params[k] = stepped[start : start + v.numel()].reshape(v.shape)
            start += v.numel()
        return exp.task.measure(exp.caller(model, new_params), s.query_x, s.query_y).double()

    actual = ((f_after_step(lr) - f_after_step(-lr)) / (2 * lr)).detach().numpy()  # central difference
    np.testing.assert_allclose(scores[:, i], actual, rtol=1e-2, atol=1e-2)
