"""Training loop: functional steps, optionally vmapped over a stack of models (one shard of runs).

A run is (seed, mask, weights, total_steps): the seed fixes initialisation, batch order and the
task's random draws; the mask selects the training subset; per-example loss weights w_i (default 1)
are what the `unrolled` method and the re-weighting tests differentiate with respect to;
total_steps (default None = `train.epochs` over the run's subset) fixes the step count instead, e.g.
to the full-data run's (`full_data_steps`) so that a model on fewer examples trains equally long.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import functional_call, grad_and_value, vmap
from tqdm.auto import tqdm

from ..errors import TrainingDiverged
from ..spec import ExperimentSpec
from .optim import build_optimizer
from .plan import TrainPlan, batch_schedule, make_plan


@dataclass
class Run:
    seed: int
    mask: np.ndarray | None = None  # bool [N]; None = the full training set
    weights: np.ndarray | None = None  # float [N] per-example loss weights; None = all ones
    total_steps: int | None = None  # None = train.epochs over the subset; else exactly this many steps


@dataclass
class TrainResult:
    params: dict[str, torch.Tensor]  # final parameters
    checkpoints: list[dict] = field(default_factory=list)  # [{step, params, opt_state}] incl. step 0
    plan: TrainPlan | None = None
    final_loss: float = float("nan")


def run_schedule(cfg: dict, run: Run, n_train: int) -> tuple[TrainPlan, list[np.ndarray]]:
    """The run's plan (with its stages and their pools) and its batches (index arrays into the full
    training set)."""
    tcfg = cfg["train"]
    pool = np.flatnonzero(run.mask) if run.mask is not None else np.arange(n_train)
    total = make_plan(tcfg, len(pool), total_steps=run.total_steps).total_steps
    rng = np.random.default_rng([run.seed, 1])
    if ExperimentSpec.of(cfg).scenario == "multi_stage":
        # Pretrain on the first half of the training set, fine-tune on the second half.
        first = pool[pool < n_train // 2]
        second = pool[pool >= n_train // 2]
        k = int(round(tcfg["pretrain_fraction"] * total))
        stages = [(s, p, n) for s, p, n in ((0, first, k), (k, second, total - k)) if n > 0]  # (start, pool, steps)
        plan = make_plan(tcfg, len(pool), total_steps=total, stage_starts=[s for s, _, _ in stages])
        plan.pools = [p for _, p, _ in stages]
        batches = batch_schedule(k, first, tcfg["batch_size"], rng) + batch_schedule(
            total - k, second, tcfg["batch_size"], rng
        )
    else:
        plan = make_plan(tcfg, len(pool), total_steps=total)
        plan.pools = [pool]
        batches = batch_schedule(total, pool, tcfg["batch_size"], rng)
    return plan, batches


def full_data_steps(cfg: dict, n_train: int) -> int:
    """Steps of a full-data run (`train.epochs` over all n_train examples): the step-matched budget."""
    return make_plan(cfg["train"], n_train).total_steps


def task_generator(seed: int) -> torch.Generator:
    """The generator of a run's task draws (diffusion's noise and timesteps), seeded by the run's seed:
    the one place the formula lives (the trainer and the unrolled replay must draw the same)."""
    return torch.Generator().manual_seed(int(seed) * 7919 + 17)


FP16_LOSS_SCALE = 1024.0


def make_loss_fn(model, task, buffers, precision: str = "fp32", device_type: str = "cpu"):
    """loss(params, x, y, w, aux) = (1/B) sum_i w_i loss_i: the mini-batch objective."""
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def loss_fn(params, x, y, w, aux):
        def call(inp):
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = functional_call(model, (params, buffers), (inp,))
            # Cast only low-precision autocast outputs: float64 replays (unrolled, its tests) stay float64.
            return out.float() if autocast_dtype is not None else out

        return (task.loss(call, x, y, aux) * w).sum() / x.shape[0]

    return loss_fn


def train_models(
    cfg: dict,
    splits,
    runs: list[Run],
    model_factory,
    task,
    device: torch.device,
    keep_checkpoints: bool = False,
    vectorize: bool = True,
    desc: str = "train",
) -> list[TrainResult]:
    """Train every run; with `vectorize`, runs with equal batch shapes train together under vmap."""
    n = splits.n_train
    schedules = [run_schedule(cfg, r, n) for r in runs]
    same_shape = all(
        len(b) == len(schedules[0][1]) and all(len(x) == len(y) for x, y in zip(b, schedules[0][1]))
        for _, b in schedules
    )
    if vectorize and len(runs) > 1 and same_shape and not keep_checkpoints:
        return _train_stacked(cfg, splits, runs, schedules, model_factory, task, device, desc)
    return [
        _train_stacked(cfg, splits, [r], [s], model_factory, task, device, f"{desc} seed {r.seed}", keep_checkpoints)[0]
        for r, s in zip(runs, schedules)
    ]


def _train_stacked(cfg, splits, runs, schedules, model_factory, task, device, desc, keep_checkpoints=False):
    opt = build_optimizer(cfg["train"])
    models = [model_factory(r.seed) for r in runs]
    template = models[0].to(device)
    buffers = {k: v.to(device) for k, v in template.named_buffers()}
    # Each model's parameters live in ONE flat vector ([M, P] for the stack): the optimiser then runs
    # ~15 elementwise ops per step instead of ~15 per parameter tensor (a UNet has over 100), each a
    # vmap-dispatched call; the numbers are the same elementwise (see FlatParams).
    flat = FlatParams(template)
    params = torch.stack([flat.flatten(dict(m.named_parameters())) for m in models]).to(device)
    state = vmap(opt.init)({FLAT: params})
    precision = ExperimentSpec.of(cfg).precision
    loss_fn = make_loss_fn(template, task, buffers, precision, device.type)
    # fp16 backward passes underflow small gradients to zero: scale the loss up, the gradients back
    # down (static scaling; an overflow makes the loss non-finite and stops training below).
    loss_scale = FP16_LOSS_SCALE if precision == "fp16" else 1.0

    def step(p, s, x, y, w, aux, lr):
        g, loss = grad_and_value(lambda q: loss_fn(flat.unflatten(q), x, y, w, aux) * loss_scale)(p)
        if loss_scale != 1.0:
            g = g / loss_scale
            loss = loss / loss_scale
        p, s = opt.step({FLAT: p}, {FLAT: g}, s, lr)
        return p[FLAT], s, loss

    plain_aux = task.sample_aux(1, torch.Generator()) is None
    vstep = vmap(step, in_dims=(0, 0, 0, 0, 0, None if plain_aux else 0, None))
    x_all, y_all = splits.train_x.to(device), splits.train_y.to(device)
    weights = torch.stack([
        torch.as_tensor(r.weights if r.weights is not None else np.ones(len(y_all)), dtype=torch.float32)
        for r in runs
    ]).to(device)
    plan = schedules[0][0]
    # every step's [M, B] batch indices, built before the loop (the last batch of an epoch may be shorter)
    batch_idx = [torch.as_tensor(np.stack([b[t] for _, b in schedules]), device=device) for t in range(plan.total_steps)]
    gens = [task_generator(r.seed) for r in runs]
    checkpoints = [[] for _ in runs]
    ckpt_steps = set(plan.checkpoint_steps)

    def snapshot(t):
        for i in range(len(runs)):
            checkpoints[i].append({
                "step": t,
                "params": {k: v.detach().cpu().clone() for k, v in flat.unflatten(params[i]).items()},
                "opt_state": _index_state(flat.unflatten_state(state), i),
            })

    if keep_checkpoints and 0 in ckpt_steps:
        snapshot(0)
    losses = torch.zeros(len(runs))
    for t in tqdm(range(plan.total_steps), desc=desc, leave=False, mininterval=2.0, disable=None):
        idx = batch_idx[t]  # [M, B]
        aux = _stack_aux([task.sample_aux(idx.shape[1], g) for g in gens], device)
        params, state, losses = vstep(params, state, x_all[idx], y_all[idx], weights.gather(1, idx), aux,
                                      float(plan.lrs[t]))
        if not torch.isfinite(losses).all():
            bad = [runs[i].seed for i in torch.nonzero(~torch.isfinite(losses)).flatten().tolist()]
            raise TrainingDiverged(
                f"{cfg.get('name', 'experiment')}: training loss became non-finite at step {t} (seeds {bad}); "
                f"lower train.lr (now {cfg['train']['lr']})"
                + (" or use precision: bf16 (fp16 gradients may overflow the loss scale)" if loss_scale != 1.0 else "")
            )
        if keep_checkpoints and (t + 1) in ckpt_steps:
            snapshot(t + 1)
    return [
        TrainResult({k: v.detach().cpu().clone() for k, v in flat.unflatten(params[i]).items()}, checkpoints[i], plan,
                    float(losses[i]))
        for i in range(len(runs))
    ]


FLAT = "flat"  # the one key of the optimiser's params / grads / state dicts on the flat parameter vector


class FlatParams:
    """A model's named parameters as one flat vector and back (views, in named_parameters order).

    The optimisers are elementwise, so stepping the flat vector gives every parameter the numbers
    stepping it alone gives; the gradient of the flat vector is the per-parameter gradients
    concatenated (one cat in the backward of `split`)."""

    def __init__(self, model: torch.nn.Module):
        named = list(model.named_parameters())
        self.names = [k for k, _ in named]
        self.shapes = [tuple(v.shape) for _, v in named]
        self.sizes = [v.numel() for _, v in named]

    def flatten(self, params: dict) -> torch.Tensor:
        return torch.cat([params[k].detach().reshape(-1) for k in self.names])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(vector, self.sizes, dim=-1)
        lead = tuple(vector.shape[:-1])
        return {k: v.view(lead + shape) for k, shape, v in zip(self.names, self.shapes, parts)}

    def unflatten_state(self, state):
        """The optimiser state in the per-parameter-name layout checkpoints keep ({FLAT: v} -> {name: v})."""
        if isinstance(state, dict):
            if set(state) == {FLAT}:
                return self.unflatten(state[FLAT])
            return {k: self.unflatten_state(v) for k, v in state.items()}
        return state


def _stack_aux(items, device):
    if items[0] is None:
        return None
    return {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}


def _index_state(state, i):
    if isinstance(state, dict):
        return {k: _index_state(v, i) for k, v in state.items()}
    return state[i].detach().cpu().clone()
