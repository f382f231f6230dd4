"""Ground-truth subset training, three ways, measured in one run: vectorised (torch.func.vmap over the
models, as a `train_shard` job trains its shard), one model at a time in one process (the same functional
trainer), and one model per process (a fresh Python process per model, as one job per model would run).

    python bench/bench_vectorized_training.py [--config workflow/config/config.yaml]
        [--experiments digits-mlp digits-vit digits-ddpm] [--models 24] [--threads 1] [--repeats 2]

For each experiment (default: the MLP, the ViT and the DDPM UNet): the first --models (subset, seed)
runs as `tda train-shard` builds them (shard 0 onwards, `groundtruth.steps` honoured, the config's full
epochs), each trained and its query measurements taken. Unchanged configs: nothing is shortened.

One model per process is MEASURED, not estimated: a subprocess (`python <this file> --one-model ...`)
starts Python, imports tda_core / torch (and timm or diffusers), loads the experiment, trains the
first run and measures its queries; the parent times its whole wall clock. Every run of an experiment
has the same step count and batch shapes, so n models cost n times one such process. Its startup
(interpreter, imports, data) is printed separately.

Timing: best of --repeats, the three ways alternating, so load from other processes hits all alike.
Threads: --threads 1 by default, like the workflow's jobs (`--threads 1`, several jobs side by side).
The ratio columns are vectorised models/min over the other way's. `max |f diff|` is the largest
difference between the vectorised and one-at-a-time query measurements: ~1e-6 on the MLP (vmap
reorders float sums), larger on the ViT and UNet, whose Adam training amplifies round-off (one vs two
threads alone moves f by as much); a bug shows as a difference of the size of f itself.

Where the time goes (torch.profiler, 1 thread, vectorised steps; see bench/README or the commit
messages for the measured numbers): the MLP is overhead-bound (a few hundred tiny ops per step), so
vmap divides that cost by the number of models. The ViT and the UNet are compute-bound already per
model: per model-step the vmapped ViT spends most of its time in batched matmuls (attention's
[M*B*heads, 17, 16] products are too small for efficient GEMM) plus elementwise layer-norm / GELU /
softmax passes; the UNet in grouped convolutions (vmap turns a stack of conv weights into one conv with
M groups; its weight gradient is the largest single cost) and group norm. vmap removes per-op
overhead, not FLOPs, so their vectorised gain over one model at a time is bounded by the overhead
share of the one-model step.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def shard_runs(exp, n_models: int):
    """The first n_models (subset, seed) runs of the ground truth, as train_shard builds them."""
    from tda_core.stages.train import subset_steps
    from tda_core.training import Run

    masks = exp.masks()
    seeds = range(exp.cfg["groundtruth"]["seeds_per_subset"])
    _, steps = subset_steps(exp)
    runs = [Run(seed, masks[j], total_steps=steps) for j in range(len(masks)) for seed in seeds]
    return runs[:n_models]


def timed_training(exp, runs, vectorize: bool):
    """Seconds to train `runs` and measure their queries; the [n, Q] measurements."""
    from tda_core.stages.common import measure
    from tda_core.training import train_models

    s = exp.splits
    t0 = time.perf_counter()
    results = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device, vectorize=vectorize,
                           desc="vectorised" if vectorize else "one-by-one")
    query = np.stack([measure(exp, r.params, s.query_x, s.query_y) for r in results])
    return time.perf_counter() - t0, query


def one_model_process(config: str, name: str, threads: int, device: str) -> tuple[float, float]:
    """Wall seconds of a fresh process training one model; its startup seconds (the wall minus the child's
    own training-and-measuring time)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one-model", name, "--config", config,
           "--threads", str(threads), "--device", device]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    wall = time.perf_counter() - t0
    return wall, wall - json.loads(out.strip().splitlines()[-1])["train_s"]


def _child(args) -> None:
    """--one-model: what a one-model-per-process job does (imports, experiment, one run, its queries)."""
    from tda_core.api import load_experiment

    torch.set_num_threads(args.threads)
    exp = load_experiment(args.config, args.one_model)
    exp.cfg["device"] = args.device
    runs = shard_runs(exp, 1)
    seconds, _ = timed_training(exp, runs, False)
    print(json.dumps({"train_s": seconds}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.add_argument("--experiments", nargs="+", default=["digits-mlp", "digits-vit", "digits-ddpm"])
    p.add_argument("--models", nargs="+", type=int, default=[24], help="models per experiment (one value or one each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the workflow's jobs run with 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    p.add_argument("--repeats", type=int, default=2, help="alternating timings of each way; the best counts")
    p.add_argument("--one-model", metavar="EXPERIMENT", help=argparse.SUPPRESS)  # the per-process child
    args = p.parse_args(argv)
    if args.one_model:
        return _child(args)

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
        t_vec = t_one = t_proc = startup = float("inf")
        for _ in range(args.repeats):  # alternate the three, keep the best: robust to other load on the CPU
            t, m_vec = timed_training(exp, runs, True)
            t_vec = min(t_vec, t)
            t, m_one = timed_training(exp, runs, False)
            t_one = min(t_one, t)
            t, s = one_model_process(args.config, name, args.threads, args.device)
            t_proc, startup = min(t_proc, t * len(runs)), min(startup, s)
            print(f"  {name}: vectorised {t_vec:.1f} s, one-by-one {t_one:.1f} s, "
                  f"per process {t_proc:.1f} s (best so far)", file=sys.stderr, flush=True)
        n_params = sum(v.numel() for v in exp.build_model(0).parameters())
        steps = len(next(iter(shapes)))
        rows.append((name, n_params, len(runs), steps, t_proc, t_one, t_vec, startup,
                     float(np.abs(m_vec - m_one).max())))

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), device {exp.device}, "
          f"best of {args.repeats}; per process = n x (wall of one fresh process training one model)")
    print(f"{'experiment':<12} {'params':>7} {'models':>6} {'steps':>5} {'per process':>14} {'one-by-one':>14} "
          f"{'vectorised':>14} {'vs proc':>7} {'vs one':>6} {'startup':>7} {'max |f diff|':>12}")
    for name, n_params, n, steps, t_proc, t_one, t_vec, startup, diff in rows:
        print(f"{name:<12} {n_params:>7} {n:>6} {steps:>5} {60 * n / t_proc:>8.1f} /min {60 * n / t_one:>8.1f} /min "
              f"{60 * n / t_vec:>8.1f} /min {t_proc / t_vec:>6.1f}x {t_one / t_vec:>5.1f}x {startup:>6.1f}s "
              f"{diff:>12.1e}")
        print(f"{'':<12} {'':>7} {'':>6} {'':>5} {t_proc:>12.1f} s {t_one:>12.1f} s {t_vec:>12.1f} s")


if __name__ == "__main__":
    main()
