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
difference between the vectorised and one-at-a-time query measurements: 0 on the MLP at 1 thread
(~1e-5 with more, where vmap reorders float sums), ~1e-6 on the UNet, O(0.1-1) on the ViT, whose Adam
training is chaotic in float32 and amplifies round-off (one vs two threads alone moves f by as much):
on the ViT this column is no bug detector; the trainer's tests compare the two ways on the MLP.

Where the time goes (1 thread, this 2-core machine shared with other jobs: load 3-9, so absolute
times move 2-4x between runs; torch.profiler op self times, whose shares are what count):
  MLP   overhead-bound: a few hundred tiny ops per step; vmap divides that cost by the number of models.
  ViT   (timm, 17 tokens x 32 dims, batch 64) one model: ~2100 op calls per step, about half the wall
        outside the ops (Python, dispatch). vmap over 16 models cuts the outside-ops time ~10x per
        model, but the matrix products cost the same per model stacked or not (26 vs 24 ms/model-step
        under the profiler, 39% of the vectorised op time): the linear layers' [M, 1088, 32] x
        [M, 32, 32..96] and attention's [M*64*2, 17, 16] x [16, 17] products are small-K GEMMs that
        stacking does not make cheaper. Then elementwise 22% (bias adds and the layer-norm affine, which
        vmap splits off the norm; GELU), copies/layout 16% (qkv permute, head reshapes), norms 6%,
        softmax 5%. Fused attention (timm fused_attn / SDPA) does not help: torch.func has no batching
        rule for the CPU flash kernel (vmap warns and loops per example: 97 vs 56 ms for 8 x 64
        examples' attention forward+backward) and unvmapped it is still slower than the plain path at
        17 tokens (68 vs 49 ms).
  UNet  (diffusers, 8x8 images, 8/16 channels, batch 50) one model: ~7000 op calls per step, ~half the
        wall outside the ops. Vectorised (16 models) the op time is 46% convolutions: vmap turns the
        stacked conv weights into one conv with M groups, and mkldnn's grouped conv forward + backward
        (its backward is the largest single cost) gains only ~2x per model over M separate convs
        (im2col + bmm and the non-mkldnn conv, measured, are 1.4-5x slower still); elementwise 26%
        (group-norm affine split off by vmap, SiLU, time embedding), copies 10%.
        Measured without the profiler (8 steps, 24 models): one at a time 99-112 ms per model-step,
        vmapped in chunks of 4 / 8 / 24 models 57-64 / 48-59 / 42 ms: 2.4-2.7x in one process.
  Optimiser: the trainer keeps each model's parameters in one flat vector, so Adam is ~15 vmapped
  elementwise ops per step instead of ~15 per parameter tensor (the UNet has over 100 tensors, the
  ViT 32); bit-identical results.
So the ViT and the UNet cannot reach 5x over one model at a time IN ONE PROCESS on this CPU (their
FLOPs dominate and vmap removes overhead, not FLOPs); against one model per process, the issue's
baseline, they do, because every fresh process also pays 3-5 s of startup (interpreter, torch and
timm / diffusers imports, data) plus first-call costs, 6-9 s per model in all at load 2-3 (more under
load), which a shard pays once.

Final run (python bench/bench_vectorized_training.py --models 24 --repeats 2; 1 thread):
    torch 2.14.1+cu130, 1 thread(s), device cpu, best of 2; per process = n x (wall of one fresh process training one model)
    experiment    params models steps    per process     one-by-one     vectorised vs proc vs one startup max |f diff|
    digits-mlp      6570     24   160      8.0 /min     98.5 /min   1073.8 /min  133.4x  10.9x    4.6s      0.0e+00
                                             179.0 s         14.6 s          1.3 s
    digits-vit     18218     24   120      7.6 /min     26.6 /min     62.4 /min    8.2x   2.3x    3.2s      5.2e-01
                                             189.9 s         54.1 s         23.1 s
    digits-ddpm    41609     24    40      5.0 /min     23.1 /min     61.6 /min   12.3x   2.7x    3.9s      2.5e-06
                                             287.2 s         62.2 s         23.4 s
    (load 2-3 on the 2 cores during this run; an earlier run at load ~8 gave 86.6x / 9.7x for the
    MLP / ViT against one model per process and 8.4x / 2.5x against one at a time.) The per-process
    wall exceeds startup + the one-at-a-time time per model: a fresh process's first run also pays
    first-call costs (vmap tracing, mkldnn primitive creation, the lazy timm / diffusers import in the
    model builder), which `startup` (wall minus the child's own train-and-measure time) leaves out.
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
