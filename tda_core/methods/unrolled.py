"""Exact unrolled differentiation (small models only): tau[q, i] = d f(z_q, theta_T) / d w_i at w = 1.

The recorded training run is replayed step by step with the per-example loss weights w as inputs:
    theta_{t+1}, s_{t+1} = opt.step(theta_t, grad_theta (1/B) sum_{i in batch_t} w_i loss_i(theta_t), s_t, lr_t)
(the exact batches and learning rates of the trajectory's recorded `Schedule`, the mini-batch objective
from `make_loss_fn`, the trajectory's pure optimiser of `training/optim.py`). Reverse mode then carries
the adjoint of (theta_t, s_t) from the query gradients v_q = grad f(z_q, theta_T) back to step 0; at
step t the adjoint of w_batch is added to tau[:, batch_t]. All queries are carried together
(torch.func.vjp vmapped over the query axis), so one backward sweep gives tau for every (query,
training example) pair.

Memory: the trajectory is stored only at block starts (block = ceil(sqrt(T)) steps) and recomputed
block by block during the backward sweep (O(sqrt(T) P) memory, about two forward replays of compute).

Units and sign (docs/design.md, section Notation): tau > 0 means up-weighting z_i raises f(z_q). w_i = 1 -> 0 is
removing z_i, so tau[q, i] is the linearised effect of including z_i, in units of f: the same units as
an influence function -(1/N) v^T H^{-1} g_i (whose eps = 1/N up-weighting of the mean loss is the
w_i = 1 weight here). Unlike real retraining without z_i, the batches stay fixed (the other examples
do not move into the freed slots); that is the object SOURCE and the d-TDA estimators approximate.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch.func import functional_call, grad, vjp, vmap

from ..errors import TdaError
from ..training.trainer import make_loss_fn
from .base import Method
from .context import Schedule

log = logging.getLogger("tda")

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _split_state(state: dict) -> tuple[dict, dict]:
    """Differentiable optimiser state (per-parameter buffers) vs constants (Adam's step counter)."""
    diff = {k: v for k, v in state.items() if isinstance(v, dict)}
    const = {k: v for k, v in state.items() if not isinstance(v, dict)}
    return diff, const


def unrolled_weight_derivative(
    schedule: Schedule,
    optimizer,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    model: torch.nn.Module,
    task,
    params0: dict[str, torch.Tensor],
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    query_chunk: int | None = None,
) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """tau [Q, N] = d f(z_q, theta_T) / d w_i for the run that `schedule` and `optimizer` replay from
    `params0`, and the replayed theta_T."""
    device = torch.device(device)
    model = model.to(device=device, dtype=dtype)
    buffers = {k: v.to(device) for k, v in model.named_buffers()}
    opt = optimizer
    n = len(train_y)
    batches = schedule.batches
    T = len(batches)
    loss_fn = make_loss_fn(model, task, buffers, "fp32", device.type)
    x_all = train_x.to(device=device, dtype=dtype if train_x.is_floating_point() else train_x.dtype)  # token ids stay int
    y_all = train_y.to(device)
    # The task's random draws, drawn exactly as the trainer does (generator seeded per run).
    gen = schedule.aux_generator()
    aux = [task.sample_aux(len(b), gen) for b in batches]
    aux = [None if a is None else {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                                   for k, v in a.items()} for a in aux]

    def batch(t: int):
        idx = torch.as_tensor(batches[t], device=device)
        return idx, x_all[idx], y_all[idx], aux[t], float(schedule.lrs[t])

    def forward(params, state, t):
        _, x, y, a, lr = batch(t)
        w_b = torch.ones(len(y), dtype=dtype, device=device)
        with torch.no_grad():
            return opt.step(params, grad(loss_fn)(params, x, y, w_b, a), state, lr)

    def step_fn(t: int, const: dict):
        """The step as a function of (theta_t, differentiable state, w_batch), for vjp."""
        _, x, y, a, lr = batch(t)

        def f(params, diff_state, w_b):
            g = grad(loss_fn)(params, x, y, w_b, a)
            new_p, new_s = opt.step(params, g, {**diff_state, **const}, lr)
            return new_p, _split_state(new_s)[0]

        return f

    params = {k: v.detach().to(device=device, dtype=dtype) for k, v in params0.items()}
    state = opt.init(params)
    block = max(1, math.ceil(math.sqrt(T)))
    starts: list[tuple[dict, dict]] = []
    for t in range(T):
        if t % block == 0:
            starts.append((params, state))
        params, state = forward(params, state, t)
    theta_T = params

    def single_measure(p, xi, yi):
        call = lambda inp: functional_call(model, (p, buffers), (inp,))  # noqa: E731
        return task.measure(call, xi[None], yi[None])[0]

    qx = query_x.to(device=device, dtype=dtype if query_x.is_floating_point() else query_x.dtype)
    qy = query_y.to(device)
    tau = torch.zeros(len(qy), n, dtype=dtype, device=device)
    chunk = query_chunk or len(qy)
    for q0 in range(0, len(qy), chunk):
        sl = slice(q0, q0 + chunk)
        adj_p = vmap(grad(single_measure), in_dims=(None, 0, 0))(theta_T, qx[sl], qy[sl])
        n_q = len(qy[sl])
        adj_s = {k: {name: v.new_zeros(n_q, *v.shape) for name, v in d.items()}
                 for k, d in _split_state(state)[0].items()}
        for b in reversed(range(len(starts))):
            # Recompute this block's trajectory, then sweep it backwards.
            p, s = starts[b]
            traj = []
            for t in range(b * block, min(T, (b + 1) * block)):
                traj.append((t, p, s))
                p, s = forward(p, s, t)
            for t, p_t, s_t in reversed(traj):
                diff, const = _split_state(s_t)
                idx = batch(t)[0]
                _, pullback = vjp(step_fn(t, const), p_t, diff, torch.ones(len(idx), dtype=dtype, device=device))
                adj_p, adj_s, adj_w = vmap(pullback)((adj_p, adj_s))
                tau[sl].index_add_(1, idx, adj_w)
    return tau.cpu().numpy(), {k: v.detach() for k, v in theta_T.items()}


class Unrolled(Method):
    """Options: dtype (float32 | float64; float32 agrees with float64 to ~1e-5 relative on digits-mlp and
    is ~1.7x faster), query_chunk (queries per backward sweep; default all at once)."""

    name = "unrolled"
    stage_aware = True  # replays the recorded batches of every stage
    max_params = 20_000  # reverse mode through every step: only for small models

    def score(self, ctx) -> np.ndarray:
        return self.score_seed(ctx, ctx.seed)

    def score_seed(self, ctx, seed: int) -> np.ndarray:
        dtype_name = self.opts["dtype"]  # declared in methods/options.py UNROLLED
        traj = ctx.trajectory(seed)
        ckpts = traj.checkpoints
        if ckpts[0].step != 0:
            raise TdaError(f"unrolled needs the initial parameters (checkpoint at step 0) of seed {seed}")
        if traj.replay is None:
            raise TdaError(f"unrolled needs the recorded schedule of seed {seed} to replay its training")
        tau, theta_T = unrolled_weight_derivative(
            traj.replay(), traj.optimizer, ctx.train_x, ctx.train_y, ctx.build_model(seed), ctx.task,
            ckpts[0].params, ctx.query_x, ctx.query_y, _DTYPES[dtype_name], ctx.device, self.opts["query_chunk"],
        )
        _check_replay(theta_T, ckpts[-1].params, seed)
        return tau.astype(np.float32)


def _check_replay(replayed: dict, recorded: dict, seed: int) -> None:
    """The replay must reproduce the recorded run (same batches, same optimiser), up to rounding."""
    num = sum(float((replayed[k].double().cpu() - recorded[k].double()).pow(2).sum()) for k in recorded)
    den = sum(float(recorded[k].double().pow(2).sum()) for k in recorded)
    rel = math.sqrt(num / max(den, 1e-300))
    if rel > 1e-2:
        raise TdaError(f"unrolled: replaying seed {seed} does not reproduce its recorded final parameters "
                       f"(relative difference {rel:.2e}); was the model trained with another config?")
    if rel > 1e-4:
        log.warning("unrolled: replay of seed %s differs from the recorded run by %.2e (relative)", seed, rel)
