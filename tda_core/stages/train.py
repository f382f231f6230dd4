"""Stage 2: full-data models (with checkpoints) and ground-truth subset shards (measurements only)."""
from __future__ import annotations

import numpy as np

from .. import io
from ..api import Experiment
from ..seeds import GROUNDTRUTH_PROTOCOL, fixed_track_seeds, groundtruth_seeds
from ..tracking import tracked_run
from ..training import Run, full_data_steps, train_models
from .common import CostMeter, accuracy, measure


def train_full(exp: Experiment, seed: int, out, tracking: dict) -> dict:
    s = exp.splits
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "train", f"{exp.name}/train/seed{seed}",
                     exp.cfg) as run:
        with CostMeter() as cost:
            res = train_models(exp.cfg, s, [Run(seed)], exp.build_model, exp.task, exp.device,
                               keep_checkpoints=True, desc=f"{exp.name} seed {seed}")[0]
        summary = {"final_train_loss": res.final_loss,
                   "query_measurement_mean": float(measure(exp, res.params, s.query_x, s.query_y).mean())}
        kind = exp.spec.kind
        if kind in ("classification", "language_model"):  # language model: next-token accuracy
            summary["test_accuracy"] = accuracy(exp, res.params, s.test_x, s.test_y)
        if kind in ("classification", "regression"):
            summary["test_loss"] = test_loss(exp, res.params, s.test_x, s.test_y)  # read by evaluate's model_fit
        if kind == "language_model":
            summary["test_loss"] = test_token_loss(exp, res.params, s.test_x, s.test_y)
            summary["test_perplexity"] = float(np.exp(summary["test_loss"]))
        run.summary_update({**summary, **cost.as_dict()})
    plan = res.plan
    meta = {
        "seed": seed,
        "total_steps": plan.total_steps,
        "checkpoint_steps": plan.checkpoint_steps,
        "lrs": plan.lrs.tolist(),
        "segments": plan.segments(),  # per checkpoint interval: start, end, steps, mean_lr, pool
        "stage_starts": plan.stage_starts,  # first step of each training stage
        "pools": [p.tolist() for p in plan.pools],  # per stage: indices into the full training set
        "train": exp.cfg["train"],
        **summary,
        **cost.as_dict(),
    }
    io.save_torch(out, {"config_hash": exp.hash, "meta": meta, "checkpoints": res.checkpoints})
    return meta


def test_loss(exp: Experiment, params: dict, x, y) -> float:
    """Mean training loss (the task's) of the final model on the test split."""
    import torch

    model = exp.build_model(0).to(exp.device)
    with torch.no_grad():
        call = exp.caller(model, {k: v.to(exp.device) for k, v in params.items()})
        return float(exp.task.loss(call, x.to(exp.device), y.to(exp.device)).mean())


def test_token_loss(exp: Experiment, params: dict, x, y, chunk_size: int = 256) -> float:
    """A language model's test cross-entropy per real token (nats; exp of it is the perplexity): every
    token weighs the same, unlike the task's loss, a mean over sequences of each sequence's token mean."""
    import torch

    model = exp.build_model(0).to(exp.device)
    total, count = 0.0, 0
    with torch.no_grad():
        call = exp.caller(model, {k: v.to(exp.device) for k, v in params.items()})
        for i in range(0, len(x), chunk_size):
            nll, mask = exp.task.token_losses(call(x[i : i + chunk_size].to(exp.device)), y[i : i + chunk_size].to(exp.device))
            total, count = total + float(nll.double().sum()), count + int(mask.sum())
    return total / max(count, 1)


def shard_subsets(exp: Experiment, shard: int) -> range:
    gt = exp.cfg["groundtruth"]
    start = shard * gt["shard_size"]
    return range(start, min(start + gt["shard_size"], gt["n_subsets"]))


def subset_steps(exp: Experiment) -> tuple[str, int | None]:
    """`groundtruth.steps` and the step count it fixes for a subset model (None: train.epochs over the subset).

    same_epochs (default) is the LDS protocol of TRAK, SOURCE and kronfluence and costs alpha of the
    full-data steps per subset model. Every subset has the same size, so the step offset against
    the full-data models is common to all subsets: it does not change the Spearman ranks of LDS or
    dLDS-mean, only the absolute deltas of dLDS-variance / W2 (distribution of subset models vs the
    full-data distribution). same_steps trains each subset model for the full-data run's step count,
    the d-TDA-consistent choice for the variance / W2 deltas."""
    mode = exp.spec.groundtruth.steps
    return mode, (full_data_steps(exp.cfg, exp.splits.n_train) if mode == "same_steps" else None)


def train_shard(exp: Experiment, shard: int, masks_path, out, tracking: dict) -> None:
    """Train every (subset, seed) of the shard, keep [n, R, Q] query measurements (no weights).

    The subset models train on tda_core.seeds.groundtruth_seeds, disjoint from the scoring seeds
    0..R-1: a subset model sharing a scoring model's initialisation and batch order would agree with
    that model's attributions more than an independent retrain does (recorded as `subset_seeds`)."""
    masks = io.load_npy(masks_path, expect_hash=exp.hash)
    subsets = shard_subsets(exp, shard)
    seeds = groundtruth_seeds(exp.cfg)
    mode, steps = subset_steps(exp)
    runs = [Run(seed, masks[j], total_steps=steps) for j in subsets for seed in seeds]
    results, query, cost = _train_and_measure(exp, runs, len(subsets), tracking, "train_subsets",
                                              f"{exp.name}/shard{shard}", f"{exp.name} shard {shard}")
    io.save_npz(out, {"config_hash": exp.hash, "shard": shard, "subsets": list(subsets), "groundtruth_steps": mode,
                      "subset_total_steps": sorted({r.plan.total_steps for r in results}),
                      "subset_seeds": seeds, "groundtruth_protocol": GROUNDTRUTH_PROTOCOL, **cost.as_dict()},
                query=query, subsets=np.asarray(list(subsets)))


def _train_and_measure(exp: Experiment, runs: list, n_subsets: int, tracking: dict, job_type: str, run_name: str,
                       desc: str):
    """Train a shard's runs (subset-major order) in one tracked job; their [n_subsets, runs per subset, Q]
    query measurements. Returns (training results, measurements, cost)."""
    s = exp.splits
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, job_type, run_name, exp.cfg) as run:
        with CostMeter() as cost:
            results = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device,
                                   vectorize=exp.spec.train.vectorize, desc=desc)
            query = np.stack([measure(exp, r.params, s.query_x, s.query_y) for r in results])
            query = query.reshape(n_subsets, len(runs) // n_subsets, -1)
        run.summary_update({"models": len(runs), **cost.as_dict()})
    return results, query, cost


def train_fixed_shard(exp: Experiment, shard: int, masks_path, out, tracking: dict) -> None:
    """Fixed-seed track: retrain every subset S_j of the shard from every full-data seed r = 0..R-1
    with that seed's initialisation and batch order, the removed examples zero-weighted
    (Run(seed=r, mask=None, weights=mask_j)). Batches keep their composition and the mini-batch mean
    still divides by B: exactly the perturbation `unrolled` differentiates (w_i = 1 -> 0). Keeps the
    [n, R, Q] query measurements. All runs share batch shapes: one vmapped group."""
    masks = io.load_npy(masks_path, expect_hash=exp.hash)
    subsets = shard_subsets(exp, shard)
    seeds = fixed_track_seeds(exp.cfg)  # the scoring seeds, on purpose (tda_core.seeds)
    runs = [Run(seed, None, weights=masks[j].astype(np.float32)) for j in subsets for seed in seeds]
    _, query, cost = _train_and_measure(exp, runs, len(subsets), tracking, "train_fixed",
                                        f"{exp.name}/fixed_shard{shard}", f"{exp.name} fixed shard {shard}")
    io.save_npz(out, {"config_hash": exp.hash, "shard": shard, "subsets": list(subsets), "track": "fixed_seed",
                      "subset_seeds": seeds, **cost.as_dict()}, query=query, subsets=np.asarray(list(subsets)))
