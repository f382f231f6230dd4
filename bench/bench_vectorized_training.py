"""Ground-truth subset training: models trained per minute, vectorised (torch.func.vmap over a shard's
models) vs one-by-one (the same functional trainer, one model at a time), in one run.

    python bench/bench_vectorized_training.py [--config workflow/config/config.yaml]
        [--experiments digits-mlp digits-vit] [--models 16 8] [--threads 2] [--repeats 2]

For each experiment: the first --models (subset, seed) runs of shard 0, exactly as `tda train-shard`
builds them (full epochs of the experiment's config), trained both ways on the CPU (or `--device`).
Prints wall time (best of --repeats, the two ways alternating, so load from other processes hits
both alike), models per minute and the ratio (goal on the digits MLP: >= 5x on 2 cores), and
the largest difference between the two ways' query measurements, so a fast but different answer
shows. Expect ~1e-5 on the MLP (vmap reorders float sums; 0 with one thread) but O(0.1-1) on the
ViT: its Adam training is chaotic in float32 (one vs two threads alone moves f by as much), so this
column is only a bug detector for the MLP.
Threads: the workflow runs each job with 1 thread (two jobs side by side on 2 cores); --threads 2
gives one job both cores. On a machine shared with other work, 2 threads can be much slower.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def shard_runs(exp, n_models: int):
    from tda_core.stages.train import shard_subsets
    from tda_core.training import Run

    masks = exp.masks()
    seeds = range(exp.cfg["groundtruth"]["seeds_per_subset"])
    runs = [Run(seed, masks[j]) for j in shard_subsets(exp, 0) for seed in seeds]
    if n_models > len(runs):  # more than one shard holds: continue with the next subsets
        runs = [Run(seed, masks[j]) for j in range(len(masks)) for seed in seeds]
    return runs[:n_models]


def timed_training(exp, runs, vectorize: bool):
    from tda_core.stages.common import measure
    from tda_core.training import train_models

    t0 = time.perf_counter()
    results = train_models(exp.cfg, exp.splits, runs, exp.build_model, exp.task, exp.device, vectorize=vectorize,
                           desc="vectorised" if vectorize else "one-by-one")
    seconds = time.perf_counter() - t0
    s = exp.splits
    return seconds, np.stack([measure(exp, r.params, s.query_x, s.query_y) for r in results])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.add_argument("--experiments", nargs="+", default=["digits-mlp", "digits-vit"])
    p.add_argument("--models", nargs="+", type=int, default=[16, 8], help="models per experiment (one value or one each)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    p.add_argument("--repeats", type=int, default=2, help="alternating timings of each way; the best counts")
    args = p.parse_args(argv)

    from tda_core.api import load_experiment
    from tda_core.training.trainer import run_schedule

    torch.set_num_threads(args.threads)
    counts = args.models if len(args.models) == len(args.experiments) else args.models[:1] * len(args.experiments)
    rows = []
    for name, n_models in zip(args.experiments, counts):
        exp = load_experiment(args.config, name)
        exp.cfg["device"] = args.device
        runs = shard_runs(exp, n_models)
        shapes = {tuple(len(b) for b in run_schedule(exp.cfg, r, exp.splits.n_train)[1]) for r in runs}
        assert len(shapes) == 1, "runs differ in batch shapes: train_models would not vectorise them"
        timed_training(exp, runs[:2], True)  # warm-up (first vmap trace, lazy imports, allocator)
        t_vec = t_one = float("inf")
        for _ in range(args.repeats):  # alternate the two, keep the best: robust to other load on the CPU
            t, m_vec = timed_training(exp, runs, True)
            t_vec = min(t_vec, t)
            t, m_one = timed_training(exp, runs, False)
            t_one = min(t_one, t)
        n_params = sum(v.numel() for v in exp.build_model(0).parameters())
        steps = len(next(iter(shapes)))
        rows.append((name, n_params, len(runs), steps, t_one, t_vec, float(np.abs(m_vec - m_one).max())))

    print(f"\ntorch {torch.__version__}, {args.threads} threads, device {exp.device}")
    print(f"{'experiment':<12} {'params':>7} {'models':>6} {'steps':>5} {'one-by-one':>14} {'vectorised':>14} "
          f"{'ratio':>6} {'max |f diff|':>12}")
    for name, n_params, n, steps, t_one, t_vec, diff in rows:
        print(f"{name:<12} {n_params:>7} {n:>6} {steps:>5} {60 * n / t_one:>8.1f} /min {60 * n / t_vec:>8.1f} /min "
              f"{t_one / t_vec:>5.1f}x {diff:>12.1e}")
        print(f"{'':<12} {'':>7} {'':>6} {'':>5} {t_one:>12.1f} s {t_vec:>12.1f} s")


if __name__ == "__main__":
    main()
