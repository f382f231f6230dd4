"""Diffusion (DDPM) task and UNet against independent truth: hand-written noising, autograd loops,
the exact Gauss-Newton quadratic form, and exact least-squares re-weighted retraining."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from torch.func import functional_call, jvp

from tda_core.api import load_experiment
from tda_core.curvature import filters, fit_curvature
from tda_core.diffusion import DiffusionTask
from tda_core.errors import ConfigError, TdaError
from tda_core.gradients import flatten, param_slices, per_example_grads
from tda_core.models.unet import pack_timestep

TINY_UNET = {"name": "unet", "block_out_channels": [4, 8], "norm_num_groups": 2, "attention_head_dim": 4,
             "mid_attention": False}
# ~3000 parameters, with self-attention in the middle block: small enough for dense P x P checks
MICRO_UNET = {"name": "unet", "block_out_channels": [2, 4], "norm_num_groups": 2, "attention_head_dim": 2,
              "mid_attention": True}


def _experiment(n_train=24, draws=4, model=None, results_dir="results", **extra):
    exp = {"kind": "diffusion", "measurement": "denoising_loss",
           "dataset": {"name": "digits", "n_train": n_train, "n_val": 4, "n_query": 4, "n_test": 10},
           "model": model or TINY_UNET,
           "train": {"optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "batch_size": 8, "epochs": 1,
                     "n_checkpoints": 1},
           "diffusion": {"num_train_timesteps": 20, "measure_draws": draws},
           **extra}
    return load_experiment({"tracking": {"mode": "none"}, "results_dir": results_dir, "experiments": {"d": exp}}, "d")


def _call(exp, model, params=None):
    return exp.caller(model, params if params is not None else dict(model.named_parameters()))


def _cosine_alpha_bar(t, n_steps):
    """Nichol & Dhariwal's squared-cosine schedule, with betas capped at 0.999, written out by hand."""
    f = lambda s: math.cos((s / n_steps + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f(i + 1) / f(i), 0.999) for i in range(n_steps)]
    return float(np.prod([1 - b for b in betas[: t + 1]]))


def test_measurement_is_deterministic_across_calls_fresh_tasks_and_batching():
    exp = _experiment()
    model = exp.build_model(0)
    xq, yq = exp.splits.query_x, exp.splits.query_y
    with torch.no_grad():
        a = exp.task.measure(_call(exp, model), xq, yq)
        b = exp.task.measure(_call(exp, model), xq, yq)
        c = DiffusionTask(exp.cfg).measure(_call(exp, model), xq, yq)  # a fresh task: the same fixed draws
        singles = torch.cat([exp.task.measure(_call(exp, model), xq[i : i + 1], yq[i : i + 1]) for i in range(4)])
        other = DiffusionTask({**exp.cfg, "diffusion": {**exp.cfg["diffusion"], "draw_seed": 1}})
        d = other.measure(_call(exp, model), xq, yq)
    assert a.shape == (4,) and torch.isfinite(a).all() and (a > 0).all()
    assert torch.equal(a, b) and torch.equal(a, c)
    torch.testing.assert_close(singles, a, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a, d)  # the draws really come from draw_seed
    # timesteps stratified: one per stratum of [0, T)
    t = exp.task.draw_t.tolist()
    assert all(k * 20 // 4 <= tk < (k + 1) * 20 // 4 for k, tk in enumerate(t))


def test_measurement_equals_hand_written_noising_and_mse():
    exp = _experiment(draws=3)
    task, model = exp.task, exp.build_model(0)
    x = exp.splits.query_x[:2]
    with torch.no_grad():
        got = task.measure(_call(exp, model), x, None)
        want = []
        for xi in x:
            losses = []
            for t, eps in zip(task.draw_t.tolist(), task.draw_noise):
                ab = _cosine_alpha_bar(t, 20)
                noisy = math.sqrt(ab) * xi + math.sqrt(1 - ab) * eps
                inp = torch.cat([noisy, torch.full_like(noisy, float(t))])[None]
                pred = model.unet(noisy[None], torch.tensor([t])).sample  # the diffusers UNet called directly
                assert torch.allclose(model(inp), pred, atol=1e-6)
                losses.append(((pred[0] - eps) ** 2).mean())
            want.append(torch.stack(losses).mean())
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-6)


def test_training_loss_uses_the_step_draws():
    exp = _experiment()
    task, model = exp.task, exp.build_model(0)
    x = exp.splits.train_x[:5]
    aux = task.sample_aux(5, torch.Generator().manual_seed(3))
    again = task.sample_aux(5, torch.Generator().manual_seed(3))
    assert torch.equal(aux["t"], again["t"]) and torch.equal(aux["noise"], again["noise"])
    assert aux["t"].min() >= 0 and aux["t"].max() < 20 and aux["noise"].shape == (5, 1, 8, 8)
    with torch.no_grad():
        got = task.loss(_call(exp, model), x, None, aux)
        ab = torch.tensor([_cosine_alpha_bar(int(t), 20) for t in aux["t"]])[:, None, None, None]
        noisy = ab.sqrt() * x + (1 - ab).sqrt() * aux["noise"]
        pred = model.unet(noisy, aux["t"]).sample
        want = ((pred - aux["noise"]) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_generated_samples_shape_range_and_determinism():
    exp = _experiment()
    model = exp.build_model(0)
    with torch.no_grad():
        a = exp.task.generate(_call(exp, model), 5, seed=7)
        b = exp.task.generate(_call(exp, model), 5, seed=7)
        c = exp.task.generate(_call(exp, model), 5, seed=8)
        d = exp.task.generate(_call(exp, exp.build_model(1)), 5, seed=7)
    assert a.shape == (5, 1, 8, 8) and torch.isfinite(a).all()
    assert a.min() >= -1.0 and a.max() <= 1.0 and a.std() > 0.05  # not collapsed
    assert torch.equal(a, b)
    assert not torch.allclose(a, c) and not torch.allclose(a, d)  # noise seed and model both matter


def test_per_example_gradients_under_vmap_equal_a_loop_of_autograd_calls():
    exp = _experiment()
    model = exp.build_model(0)
    params = dict(model.named_parameters())
    x, y = exp.splits.train_x[:4], exp.splits.train_y[:4]
    for fn in (exp.task.attribution_loss, exp.task.measure):
        got = per_example_grads(model, params, fn, x, y, chunk_size=3)
        for i in range(4):
            model.zero_grad()
            fn(model, x[i : i + 1], y[i : i + 1]).sum().backward()  # the module itself: no functional_call
            want = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
            torch.testing.assert_close(got[i], want, rtol=1e-4, atol=1e-7)
    assert got.abs().sum() > 0


def test_fisher_targets_reproduce_the_gauss_newton_matrix():
    """E_u[(g(u) . v)^2] for gradients at sampled targets = v^T GGN v, with the GGN of the per-example
    loss (1/(K D)) sum_k ||f_k - eps_k||^2 written out: (2/(K D)) ||J v||^2 (J by forward-mode jvp)."""
    exp = _experiment(draws=3)
    task, model = exp.task, exp.build_model(0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = exp.splits.train_x[:1]
    n_mc = 600
    xs = x.repeat(n_mc, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    targets = task.sample_fisher_targets(_call(exp, model, params), xs, gen)
    assert targets.shape == (n_mc, 3, 1, 8, 8)
    G = per_example_grads(model, params, task.loss, xs, targets).double()  # loss(aux=None) at given targets
    torch.manual_seed(1)
    inputs = task.network_inputs(x)
    kd = 3 * 64
    for _ in range(3):
        v = {k: torch.randn_like(p) for k, p in params.items()}
        _, jv = jvp(lambda p: functional_call(model, p, (inputs,)), (params,), (v,))
        exact = 2.0 / kd * float((jv.double() ** 2).sum())
        mc = float(((G @ flatten(v).double()) ** 2).mean())
        assert mc == pytest.approx(exact, rel=0.2)  # Monte Carlo: relative s.e. sqrt(2/600) = 6%


def test_ekfac_influence_on_the_unet_head_matches_reweighted_retraining():
    """Re-weighted retraining of the UNet's output convolution (the rest frozen) is a weighted least
    squares problem with an exact solution, so d f(z_q) / d w_i is known by finite differences of
    exact retrains. The EK-FAC IF (fitted on the whole UNet with sampled Fisher targets; its
    conv_out block) must match it in sign and rank."""
    exp = _experiment(n_train=24, draws=4)
    task, model = exp.task, exp.build_model(0).double()
    s = exp.splits
    x, y, xq, yq = s.train_x.double(), s.train_y, s.query_x.double(), s.query_y
    n, wd = len(x), 1e-3
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    head = ["unet.conv_out.weight", "unet.conv_out.bias"]
    slices = param_slices(params)
    n_head = sum(params[k].numel() for k in head)

    def outputs(phi, inputs):  # UNet output with the head set to phi: affine in phi
        p = {**params, head[0]: phi[:-1].reshape(params[head[0]].shape), head[1]: phi[-1:]}
        return functional_call(model, p, (inputs,)).reshape(len(inputs), -1)

    train_in, query_in = task.network_inputs(x), task.network_inputs(xq)
    zero = torch.zeros(n_head, dtype=torch.float64)
    c = outputs(zero, train_in)  # [N K, D] output at phi = 0
    A = torch.stack([outputs(e, train_in) - c for e in torch.eye(n_head, dtype=torch.float64)], -1)  # [N K, D, h]
    eps = task.draw_noise.double().reshape(1, task.n_draws, -1).expand(n, -1, -1).reshape(n * task.n_draws, -1)
    kd = task.n_draws * 64

    def retrain(w):  # argmin (1/N) sum_i w_i (1/(K D)) sum_k ||A phi + c - eps||^2 + wd/2 |phi|^2
        rw = w.repeat_interleave(task.n_draws)[:, None, None]
        lhs = 2.0 / (kd * n) * torch.einsum("rdh,rdg->hg", rw * A, A) + wd * torch.eye(n_head, dtype=torch.float64)
        rhs = 2.0 / (kd * n) * torch.einsum("rdh,rd->h", rw * A, eps - c)
        return torch.linalg.solve(lhs, rhs)

    def f_query(phi):
        pred = outputs(phi, query_in).reshape(len(xq), task.n_draws, -1)
        target = task.draw_noise.double().reshape(1, task.n_draws, -1)
        return ((pred - target) ** 2).mean(-1).mean(-1)

    ones = torch.ones(n, dtype=torch.float64)
    phi_star = retrain(ones)
    params[head[0]] = phi_star[:-1].reshape(params[head[0]].shape)
    params[head[1]] = phi_star[-1:]
    delta = 0.5
    actual = torch.stack([(f_query(retrain(ones + delta * e)) - f_query(retrain(ones - delta * e))) / (2 * delta)
                          for e in torch.eye(n, dtype=torch.float64)], 1).numpy()  # [Q, N]

    # The library's EK-FAC on the whole UNet; its head block is the head problem's curvature.
    curv = fit_curvature(model, params, task, x, kind="ekfac", seed=0, n_samples=8).shifted(wd)
    V = per_example_grads(model, params, task.measure, xq, yq).double()
    G = per_example_grads(model, params, task.attribution_loss, x, y).double()
    mask = torch.zeros(V.shape[1], dtype=torch.float64)
    for k in head:
        mask[slices[k]] = 1.0
    pred = (-(curv.precondition(V * mask, filters.damped_inverse(damping=0.0)) @ (G * mask).T) / n).numpy()
    rho = spearmanr(pred.ravel(), actual.ravel())[0]
    r = pearsonr(pred.ravel(), actual.ravel())[0]
    sign = np.mean(np.sign(pred) == np.sign(actual))
    print(f"EK-FAC head IF vs re-weighted retraining: Spearman {rho:.3f}, Pearson {r:.3f}, sign agreement {sign:.2f}")
    assert rho > 0.9 and r > 0.9 and sign > 0.85
    # and the scale: tau is the predicted change of f per unit of weight
    slope = float(np.dot(pred.ravel(), actual.ravel()) / np.dot(pred.ravel(), pred.ravel()))
    assert 0.5 < slope < 2.0


def test_diffusion_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="denoising_loss"):
        _experiment(measurement="margin").task
    with pytest.raises(ConfigError, match="norm_num_groups"):
        _experiment(model={**TINY_UNET, "norm_num_groups": 3}).build_model(0)


def test_small_model_methods_refuse_a_big_unet(tmp_path):
    from tda_core.stages.attribute import attribute

    exp = _experiment(model={"name": "unet", "block_out_channels": [16, 32]})
    exp.cfg["results_dir"] = str(tmp_path)
    for method in ("if_exact", "unrolled"):
        meta = attribute(exp, method, "0", {}, tmp_path / f"{method}.json", {"mode": "none"})
        assert meta["status"] == "failed" and "small models only" in meta["reason"]


def test_pack_timestep_layout():
    x = torch.randn(2, 3, 4, 4)
    packed = pack_timestep(x, torch.tensor([5, 9]))
    assert packed.shape == (2, 4, 4, 4) and torch.equal(packed[:, :3], x)
    assert (packed[0, 3] == 5).all() and (packed[1, 3] == 9).all()
    with pytest.raises(TdaError):
        _experiment(dataset={"name": "digits", "n_train": 8, "n_val": 4, "n_query": 4, "n_test": 10},
                    model={**TINY_UNET, "block_out_channels": [4, 8, 8, 8, 8]}).build_model(0)


def test_every_registered_method_runs_on_the_unet_or_says_why_not(tmp_path):
    """The UNet (Conv2d, Linear, attention, GroupNorm) through every method of the registry: finite
    scores of the right shape, or a failed row whose reason says why (the reference libraries'
    wrappers are classification-only)."""
    from tda_core.methods.registry import get_method, known_methods
    from tda_core.stages.attribute import attribute
    from tda_core.stages.train import train_full

    exp = _experiment(n_train=8, draws=1, model=MICRO_UNET,
                      dataset={"name": "digits", "n_train": 8, "n_val": 4, "n_query": 2, "n_test": 10},
                      train={"optimizer": "adam", "lr": 0.003, "weight_decay": 0.0, "batch_size": 4, "epochs": 1,
                             "n_checkpoints": 2},
                      results_dir=str(tmp_path), seeds=2)
    for seed in (0, 1):
        train_full(exp, seed, exp.model_path(seed), {"mode": "none"})
    classification_only = {"if_ekfac_kronfluence", "trak_traker"}
    for name in known_methods():
        options = {"n_segments": 2} if name.startswith(("source", "dtda_source")) else {}
        if name == "loss_covariance":  # a short chain: the defaults (306 SGLD steps) take minutes on this UNet
            options = {"n_samples": 4, "burn_in": 2, "thin": 1}
        seed = "all" if get_method(name).all_seeds_at_once else "0"
        meta = attribute(exp, name, seed, options, tmp_path / f"{name}.json", {"mode": "none"})
        if name in classification_only:
            assert meta["status"] == "failed" and "classification" in meta["reason"], (name, meta)
            continue
        assert meta["status"] == "ok", (name, meta.get("reason"))
        scores = np.load(exp.scores_path(name, seed))
        want = (2, 2, 8) if get_method(name).per_seed_samples else (2, 8)
        assert scores.shape == want and np.isfinite(scores).all(), name
        if name != "random":
            assert np.abs(scores).max() > 0, name


def test_dense_ggn_of_the_denoising_loss_is_2_over_kd_jtj():
    """if_exact's dense GGN on the UNet equals (1/N) sum_n (2/(K D)) J_n^T J_n, with J_n the Jacobian
    of the K noised copies' predictions (jacrev of the module, written out here)."""
    from torch.func import jacrev

    from tda_core.methods.if_exact import dense_ggn

    exp = _experiment(draws=2, model=MICRO_UNET)
    task, model = exp.task, exp.build_model(0).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = exp.splits.train_x[:2].double(), exp.splits.train_y[:2]
    got = dense_ggn(model, params, task.attribution_loss, x, y, chunk_size=2, network_inputs=task.network_inputs)
    want = 0
    for i in range(2):
        jac = jacrev(lambda p: functional_call(model, p, (task.network_inputs(x[i : i + 1]),)).reshape(-1))(params)
        J = torch.cat([jac[k].reshape(jac[k].shape[0], -1) for k in params], dim=1)  # [K D, P]
        want = want + 2.0 / J.shape[0] * J.T @ J
    torch.testing.assert_close(got, want / 2, rtol=1e-8, atol=1e-10)
