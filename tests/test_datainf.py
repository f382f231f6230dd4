"""DataInf against (a) its explicit formula: the per-layer matrices (1/(N lambda_l)) sum_i (I - g_il g_il^T /
(lambda_l + |g_il|^2)) built densely in numpy from per-example gradients of a plain autograd loop, and
(b) dattri 0.3.0's IFAttributorDataInf at the same gradients and damping."""
import numpy as np
import pytest
import torch
from torch import nn

from tda_core.methods.context import AttributionContext, Checkpoint, Trajectory
from tda_core.methods.registry import get_method
from tda_core.tasks import ClassificationTask

TASK = ClassificationTask("loss")  # f = the query's loss, as dattri's default target


def _build_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 3))


def _context(n=40, q=5):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n + q, 6, generator=gen), torch.randint(0, 3, (n + q,), generator=gen)
    params = {k: v.detach() for k, v in _build_model(0).named_parameters()}
    traj = Trajectory(0, (Checkpoint(0, params),), optimizer=None)
    ctx = AttributionContext(task=TASK, train_x=x[:n], train_y=y[:n], query_x=x[n:], query_y=y[n:], seeds=(0,),
                             build_model=_build_model, load_trajectory=lambda seed: traj, chunk_size=16)
    return ctx, params


def _grads(params, x, y):
    """{name: [n, numel]} float64 per-example loss gradients, one autograd call per example."""
    model = _build_model(0).double()
    p = {k: v.double().requires_grad_(True) for k, v in params.items()}
    rows = []
    for xi, yi in zip(x.double(), y):
        loss = nn.functional.cross_entropy(torch.func.functional_call(model, p, (xi[None],)), yi[None])
        rows.append([g.reshape(-1).numpy() for g in torch.autograd.grad(loss, list(p.values()))])
    return {k: np.stack([r[j] for r in rows]) for j, k in enumerate(p)}


def _explicit(ctx, params, layers, damping=None, damping_rel=0.1):
    g, v = _grads(params, ctx.train_x, ctx.train_y), _grads(params, ctx.query_x, ctx.query_y)
    groups = [[k] for k in g] if layers == "parameters" else [["0.weight", "0.bias"], ["2.weight", "2.bias"]]
    n = ctx.n_train
    tau = np.zeros((ctx.n_query, n))
    for names in groups:
        gl, vl = np.hstack([g[k] for k in names]), np.hstack([v[k] for k in names])
        lam = damping if damping is not None else damping_rel * (gl**2).sum(1).mean() / gl.shape[1]
        inv = sum(np.eye(gl.shape[1]) - np.outer(gi, gi) / (lam + gi @ gi) for gi in gl) / (n * lam)
        tau -= vl @ inv @ gl.T / n
    return tau


@pytest.mark.parametrize("layers,damping", [("modules", None), ("parameters", None), ("modules", 0.05)])
def test_datainf_equals_its_explicit_formula(layers, damping):
    ctx, params = _context()
    truth = _explicit(ctx, params, layers, damping)
    kept = get_method("datainf")(layers=layers, damping=damping).score(ctx)
    streamed = get_method("datainf")(layers=layers, damping=damping, keep_gradients=0).score(ctx)  # 3 passes
    for ours in (kept, streamed):
        rel = np.abs(ours - truth).max() / np.abs(truth).max()
        print(f"datainf layers={layers} damping={damping}: max relative difference {rel:.1e}")
        assert rel < 1e-5  # observed 5e-8 to 6e-8
    # module blocks and parameter blocks are different approximations
    other = _explicit(ctx, params, "parameters" if layers == "modules" else "modules", damping)
    assert np.abs(other - truth).max() > 1e-3 * np.abs(truth).max()


def test_datainf_matches_dattri():
    pytest.importorskip("dattri", reason="optional extra [reference] (dattri) not installed")
    from torch.utils.data import DataLoader, TensorDataset

    from dattri.algorithm.influence_function import IFAttributorDataInf
    from dattri.task import AttributionTask

    ctx, params = _context()
    model = _build_model(0)

    def loss(p, data):  # one example, as a batch of one (dattri vmaps over dimension 1 of [1, B, ...])
        xi, yi = data
        return nn.functional.cross_entropy(torch.func.functional_call(model, p, (xi,)), yi)

    task = AttributionTask(loss_func=loss, model=model, checkpoints=model.state_dict())
    attributor = IFAttributorDataInf(task, regularization=0.05)  # one lambda for every module (weight + bias)
    train = DataLoader(TensorDataset(ctx.train_x, ctx.train_y), batch_size=8)
    test = DataLoader(TensorDataset(ctx.query_x, ctx.query_y), batch_size=ctx.n_query)
    attributor.cache(train)
    theirs = attributor.attribute(train, test).detach().T.double().numpy()  # [Q, N] g_k . (mean_i ...) v, no sign or 1/N
    ours = get_method("datainf")(damping=0.05).score(ctx)
    rel = np.abs(-ctx.n_train * ours - theirs).max() / np.abs(theirs).max()
    corr = np.corrcoef(-ours.ravel(), theirs.ravel())[0, 1]
    print(f"datainf vs dattri 0.3.0 IFAttributorDataInf: max relative difference {rel:.1e}, Pearson {corr:.8f}")
    assert rel < 1e-4  # observed 6.4e-8 (Pearson 1.00000000)
