"""SOURCE (Bae et al. 2024): segment-wise unrolling with stationary EK-FAC curvature per segment.

The T steps are split into L segments (option n_segments, default 3) of the intervals between
the checkpoints the trainer saved (n_checkpoints, default 6 => 2 checkpoints per segment).
Segment l: K_l steps, summed learning rate eta_l K_l (times 1/(1-beta) for SGD momentum beta),
c_l = that product; H_l = EK-FAC of the GGN (+ weight decay) with A, S averaged over the
segment's checkpoints, one eigendecomposition, eigenvalues re-fitted at each and averaged;
g_i^l = mean over the segment's checkpoints of the per-example gradients. With u_L = v_q(theta_T):
    score += -(1/N) u_l . F_r(H_l) g_i^l,   F_r(s) = (1 - exp(-c_l s)) / s  (-> c_l at s = 0)
    u_{l-1} = F_S(H_l) u_l,                  F_S(s) = exp(-c_l s)
evaluated right to left (l = L..1). With L = 1 this is an EK-FAC IF with damping 1/c.

Multi-stage training (Interval.pool: each checkpoint interval trained on one pool of examples):
segments never straddle a stage switch (at least one per stage), and segment l, trained on the
pool P_l of N_l examples, uses 1/N_l for i in P_l and 0 for the others (an example seen only in
the pretraining stage gets no fine-tuning response), with H_l fitted on the examples of P_l.
`source_fast` averages the weights within a segment instead of the statistics (one fit per
segment instead of one per checkpoint).

Adam (an approximation, stated): within a segment the update is theta -= eta P grad with
P = diag(1 / (sqrt(v_hat) + eps)) frozen at the mean of the second-moment estimates v_hat over
the segment's checkpoints (m_hat taken as the gradient: no momentum scale). The linearised
segment map is then exp(-c P H) = P^1/2 exp(-c H~) P^-1/2 with H~ = P^1/2 (H + wd) P^1/2, and the
response (I - exp(-c P H)) (P H)^-1 P g = P^1/2 F_r(H~) P^1/2 g. H~ is fitted as an EK-FAC in the
Kronecker eigenbasis of H (not of H~: exact only if P is constant within a layer's blocks), with
its eigenvalues re-fitted exactly from the P^1/2-scaled per-example gradients, and wd P kept on
the diagonal of that basis.
"""
from __future__ import annotations

import numpy as np
import torch

from ..curvature import filters
from ..errors import TdaError
from ..gradients import flatten
from ..training.optim import Adam
from .base import Method
from .context import Interval
from .influence import seed_curvature


def segment_plan(intervals: list[Interval], n_segments: int) -> list[dict]:
    """Group the trainer's checkpoint intervals (Trajectory.intervals) into L segments: checkpoint
    indices (into Trajectory.checkpoints, 0 = initialisation), the summed learning rate eta K, the
    training stage and its pool (indices; None = all examples) of each. A segment never straddles a stage switch: the
    L segments are split across the stages, at least one each, the rest going one at a time to the
    stage with the most training steps per segment (the earlier stage on ties) that still has more
    checkpoint intervals than segments."""
    if n_segments < 1:
        raise TdaError(f"n_segments must be >= 1, got {n_segments}")
    if n_segments > len(intervals):
        raise TdaError(f"n_segments={n_segments} > the {len(intervals)} checkpoint intervals saved "
                       f"(raise train.n_checkpoints)")
    stages: list[list[int]] = []  # runs of consecutive intervals with one pool
    for j, iv in enumerate(intervals):
        if stages and intervals[stages[-1][0]].stage == iv.stage:
            stages[-1].append(j)
        else:
            stages.append([j])
    if n_segments < len(stages):
        raise TdaError(f"n_segments={n_segments} < the {len(stages)} training stages: SOURCE needs at least one "
                       f"segment per stage")
    counts = [1] * len(stages)
    for _ in range(n_segments - len(stages)):
        open_ = [s for s in range(len(stages)) if counts[s] < len(stages[s])]
        counts[max(open_, key=lambda s: (sum(intervals[j].steps for j in stages[s]) / counts[s], -s))] += 1
    out = []
    for members, count in zip(stages, counts):
        for group in np.array_split(np.asarray(members), count):
            steps = sum(intervals[j].steps for j in group)
            lr_sum = sum(intervals[j].mean_lr * intervals[j].steps for j in group)
            first = intervals[int(group[0])]
            out.append({"ckpts": [int(j) + 1 for j in group], "steps": int(steps), "lr_sum": float(lr_sum),
                        "stage": first.stage, "pool": first.pool})
    return out


def adam_preconditioner(ckpts, indices: list[int], optimizer) -> torch.Tensor:
    """Flat P = 1 / (sqrt(v_hat) + eps), v_hat (bias-corrected) averaged over the checkpoints."""
    b2 = optimizer.betas[1]
    v_hats = []
    for i in indices:
        state = ckpts[i].opt_state
        step = float(state["step"])
        if step < 1:
            raise TdaError("SOURCE with Adam needs checkpoints after at least one step")
        v_hats.append(flatten(state["exp_avg_sq"]).double() / (1 - b2**step))
    return 1.0 / (torch.stack(v_hats).mean(0).sqrt() + optimizer.eps)


def source_scores(ctx, seed: int, opts: dict, fast: bool = False) -> torch.Tensor:
    """[Q, N] SOURCE scores of one seed's training run. Segment l trained on the pool P_l (N_l
    examples): its response term weighs the examples of P_l by 1/N_l and the others by 0, and its
    curvature H_l is the (EK-FAC) curvature of the mean loss over P_l (multi-stage runs)."""
    traj = ctx.trajectory(seed)
    opt = traj.optimizer
    adam = isinstance(opt, Adam)
    segments = segment_plan(traj.intervals, int(opts["n_segments"]))
    n = ctx.n_train
    u = ctx.query_grads(seed, ctx.params(seed, -1)).double()  # v_q at theta_T
    total = torch.zeros(u.shape[0], n, dtype=torch.float64, device=u.device)
    for seg in reversed(segments):
        c = seg["lr_sum"] * opt.effective_lr_scale
        idx = seg["ckpts"]
        pool = seg["pool"]  # None: all N examples
        curv, half = segment_curvature(ctx, seed, seg, opts, fast, device=u.device)
        G = _segment_train_grads(ctx, seed, idx, fast, pool)
        uu = u * half if adam else u
        r = curv.precondition(uu, filters.source_response(c))
        if pool is None:
            total -= ((r * half) if adam else r) @ G.T / n
        else:  # r_l = 0 outside the segment's pool, 1/N_l inside
            cols = torch.as_tensor(pool, device=total.device)
            total[:, cols] -= ((r * half) if adam else r) @ G.T / len(pool)
        u_next = curv.precondition(uu, filters.propagator(c))
        u = u_next / half if adam else u_next
    return total


def segment_curvature(ctx, seed: int, seg: dict, opts: dict, fast: bool, device=None):
    """(H_l + weight decay, P^1/2 or None) of one segment of segment_plan: the EK-FAC fit at its checkpoints
    on its pool (Adam: of P^1/2 H P^1/2, with wd P), read from ctx.cache when fitted there before (the
    experiment's fit_curvature job: tda_core/stages/curvature.py runs this very function)."""
    traj = ctx.trajectory(seed)
    idx, pool = seg["ckpts"], seg["pool"]
    if isinstance(traj.optimizer, Adam):
        P = adam_preconditioner(traj.checkpoints, idx, traj.optimizer).to(device or ctx.device)
        half = P.sqrt()
        curv = seed_curvature(ctx, seed, "ekfac", idx, opts, average_weights=fast, grad_scale=half,
                              tag="_adam", pool=pool).shifted(traj.weight_decay * P)
        return curv, half
    return seed_curvature(ctx, seed, "ekfac", idx, opts, average_weights=fast, pool=pool).shifted(traj.weight_decay), None


def _segment_train_grads(ctx, seed, idx, fast, pool=None) -> torch.Tensor:
    """[N, P] (or [N_l, P] for the examples of `pool`) train gradients averaged over the segment."""
    xy = {} if pool is None else {"x": ctx.train_x[torch.as_tensor(pool)], "y": ctx.train_y[torch.as_tensor(pool)]}
    plist = [ctx.params(seed, i) for i in idx]
    if fast:
        avg = {k: torch.stack([p[k] for p in plist]).mean(0) for k in plist[0]}
        return ctx.train_grads(seed, avg, **xy).double()
    return sum(ctx.train_grads(seed, p, **xy).double() for p in plist) / len(plist)


class Source(Method):
    name = "source"
    stage_aware = True
    fast = False  # options (registry rows): methods/options.py SOURCE

    def score(self, ctx) -> np.ndarray:
        total = sum(source_scores(ctx, s, self.opts, self.fast) for s in ctx.seeds)
        return (total / len(ctx.seeds)).cpu().numpy().astype(np.float32)
