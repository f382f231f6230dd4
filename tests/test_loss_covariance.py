"""loss_covariance (Bayesian influence function) against (a) a brute-force numpy covariance of losses and
measurements recomputed by hand on the same sampled models, and (b) the known answer on ridge-regularised
linear regression: there the localised distribution is Gaussian with covariance (beta N (H + wd + d))^{-1},
so -beta Cov(L_i, f_q) = -(1/N) v_q^T (H + wd + d)^{-1} g_i, the influence function with damping d
(and -(1/N) v_q . g_i / (wd + d) for the Gaussian-noise sampler, which leaves the curvature out)."""
import numpy as np
import pytest
import torch
from torch import nn

from tda_core.methods.context import AttributionContext, Checkpoint, Trajectory
from tda_core.methods.loss_covariance import sample_params
from tda_core.methods.registry import get_method
from tda_core.tasks import ClassificationTask, RegressionTask
from tda_core.training.optim import SGD


def _context(task, build_model, params, x, y, xq, yq, weight_decay):
    traj = Trajectory(0, (Checkpoint(0, params),), optimizer=SGD(0.0, weight_decay))
    return AttributionContext(task=task, train_x=x, train_y=y, query_x=xq, query_y=yq, seeds=(0,),
                              build_model=build_model, load_trajectory=lambda seed: traj, chunk_size=16)


@pytest.mark.parametrize("noise", ["sgld", "gaussian"])
def test_scores_are_the_covariance_over_the_sampled_models(noise):
    def build_model(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=gen, dtype=torch.float64), torch.randint(0, 3, (30,), generator=gen)
    xq, yq = torch.randn(4, 4, generator=gen, dtype=torch.float64), torch.randint(0, 3, (4,), generator=gen)
    params = {k: v.detach() for k, v in build_model(0).named_parameters()}
    ctx = _context(ClassificationTask("margin"), build_model, params, x, y, xq, yq, weight_decay=1e-3)
    opts = {"n_samples": 40, "noise": noise, "burn_in": 5, "thin": 2, "batch_size": 10, "beta": 2.0}
    method = get_method("loss_covariance")(**opts)
    samples = list(sample_params(ctx, 0, method.opts))
    assert len(samples) == 40
    model = build_model(0)
    losses, margins = [], []
    for p in samples:  # by hand: cross-entropy and margin log p / (1 - p) from the logits
        with torch.no_grad():
            logp = torch.log_softmax(torch.func.functional_call(model, p, (x,)), -1)
            losses.append((-logp[torch.arange(30), y]).numpy())
            lq = torch.log_softmax(torch.func.functional_call(model, p, (xq,)), -1)[torch.arange(4), yq]
            margins.append((lq - torch.log1p(-lq.exp())).numpy())
    cov = np.cov(np.hstack([np.array(margins), np.array(losses)]).T)[:4, 4:]  # [Q, N], normalised by K - 1
    truth = -2.0 * cov
    ours = method.score(ctx)
    rel = np.abs(ours - truth).max() / np.abs(truth).max()
    print(f"{noise}: max relative difference to the numpy covariance {rel:.1e}")
    assert rel < 1e-5  # float32 output; observed 3e-8 to 4e-8
    # another chain gives other numbers (the test can fail)
    other = get_method("loss_covariance")(**opts, sample_seed=1).score(ctx)
    assert np.abs(other - truth).max() > 1e-2 * np.abs(truth).max()


@pytest.mark.parametrize("noise", ["sgld", "gaussian"])
def test_linear_regression_recovers_the_damped_influence_function(noise):
    n, dim, wd, damp = 100, 3, 1e-2, 0.5
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n + 8, dim, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.5 * torch.randn(n + 8, generator=gen,
                                                                                    dtype=torch.float64)
    xt = torch.cat([x, torch.ones(n + 8, 1, dtype=torch.float64)], 1).numpy()  # weight and bias
    A, yn = xt[:n], y[:n].numpy()
    H = A.T @ A / n  # Hessian of the mean loss 0.5 (w . x - y)^2
    theta = np.linalg.solve(H + wd * np.eye(dim + 1), A.T @ yn / n)  # the trained model: argmin L + wd/2 |w|^2

    def build_model(seed):
        return nn.Linear(dim, 1).double()

    params = {"weight": torch.tensor(theta[None, :dim]), "bias": torch.tensor(theta[dim:])}
    ctx = _context(RegressionTask("prediction"), build_model, params, x[:n], y[:n], x[n:], y[n:], wd)
    g = (A @ theta - yn)[:, None] * A  # per-example loss gradients
    v = xt[n:]  # gradient of the prediction
    if noise == "sgld":
        truth = -v @ np.linalg.solve(H + (wd + damp) * np.eye(dim + 1), g.T) / n
    else:
        truth = -v @ g.T / (n * (wd + damp))
    ours = get_method("loss_covariance")(noise=noise, localization=damp, n_samples=1000, burn_in=200, thin=10,
                                         step_size=0.1, batch_size=n).score(ctx)
    corr = np.corrcoef(ours.ravel(), truth.ravel())[0, 1]
    slope = (ours * truth).sum() / (truth**2).sum()
    print(f"{noise}: Pearson with the exact damped influence {corr:.3f}, least-squares slope {slope:.3f}")
    # Observed: sgld 0.996, slope 1.02 (full-batch gradients; SGLD's step inflates the variance by
    # 1/(1 - h m / 4) ~ 1.04 here; mini-batches drawn with replacement gave 1.10-1.14); gaussian 0.994, 0.96
    assert corr > 0.9
    assert 0.8 < slope < 1.25


def test_bad_chain_options_fail_in_one_line():
    from tda_core.errors import TdaError

    def build_model(seed):
        return nn.Linear(2, 1)

    params = {k: v.detach() for k, v in build_model(0).named_parameters()}
    x = torch.randn(6, 2)
    ctx = _context(RegressionTask(), build_model, params, x, x[:, 0], x[:2], x[:2, 0], 0.0)
    for bad in ({"thin": 0}, {"n_samples": 1}, {"step_size": 0.0}):
        with pytest.raises(TdaError, match="loss_covariance: need n_samples >= 2, thin >= 1"):
            get_method("loss_covariance")(**bad).score(ctx)
