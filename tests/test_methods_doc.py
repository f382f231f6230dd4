"""docs/methods.md's worked example (a last-layer-only method written as a projector over the flat
gradient layout) runs as printed and equals the last layer's gradient similarity by plain autograd."""
from __future__ import annotations

import re

import numpy as np
import torch
from conftest import REPO

from tda_core.methods.context import AttributionContext, Checkpoint, Trajectory
from tda_core.tasks import ClassificationTask


def _example_class():
    text = (REPO / "docs" / "methods.md").read_text()
    section = text.split("## Worked example: a last-layer-only method")[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/methods.md", "exec"), namespace)
    return namespace["LastLayerGradDot"]


def test_the_last_layer_example_matches_autograd_on_the_last_layer():
    torch.manual_seed(0)
    x, y = torch.randn(7, 3), torch.tensor([0, 1, 2, 1, 0, 2, 1])
    xq, yq = torch.randn(3, 3), torch.tensor([2, 0, 1])

    def build_model(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))

    params = {k: v.detach() for k, v in build_model(0).named_parameters()}
    traj = Trajectory(0, (Checkpoint(0, params),), optimizer=None)
    ctx = AttributionContext(task=ClassificationTask("loss"), train_x=x, train_y=y, query_x=xq, query_y=yq,
                             seeds=(0,), build_model=build_model, load_trajectory=lambda seed: traj)
    scores = _example_class()().score(ctx)

    def last_layer_grad(xi, yi):  # the head's weight and bias only, by autograd
        m = build_model(0)
        torch.nn.functional.cross_entropy(m(xi[None]), yi[None]).backward()
        return torch.cat([m[2].weight.grad.reshape(-1), m[2].bias.grad])

    G = torch.stack([last_layer_grad(x[i], y[i]) for i in range(7)])  # [N, 5*3 + 3]
    V = torch.stack([last_layer_grad(xq[q], yq[q]) for q in range(3)])
    assert scores.shape == (3, 7) and G.shape[1] == 18
    np.testing.assert_allclose(scores, -(V @ G.T).numpy(), rtol=1e-5, atol=1e-6)
    full = ctx.train_grads(0)  # and it is not the whole-model similarity
    assert full.shape[1] == 3 * 5 + 5 + 18 and not np.allclose(scores, -(ctx.query_grads(0) @ full.T).numpy())
