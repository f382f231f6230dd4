"""Our EK-FAC influence and TRAK vs the reference libraries (kronfluence, traker): wall time ratios.

    python bench/bench_reference.py [--config workflow/config/config.yaml] [--experiments digits-mlp digits-vit]
                                    [--threads 1] [--repeats 1]

For each experiment, on the full-data models under results/{exp}/models (trained here in a temporary
results_dir if they are missing):
  EK-FAC: if_ekfac (fit + score, no cache) on seed 0  vs  if_ekfac_kronfluence (fit + score)
  TRAK:   trak over all R seeds                       vs  trak_traker over the same seeds
Same proj_dim (256) and damping heuristic; best of --repeats. Ratio = ours / reference (< 1: ours faster).
Also prints the Pearson correlation of the two score matrices, so a fast but different answer shows.
They are not equal by design: if_ekfac adds the optimiser's weight decay to the curvature and keeps
LayerNorm / embedding / pos_embed gradients (diagonal curvature), kronfluence sees neither; traker
draws its own projection per model and rescales each model's (Phi^T Phi)^-1. With the same inputs
they agree to Pearson 1 - 1e-10 (tests/test_reference.py).
Needs the optional extra: pip install 'tda-bench[reference]'.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import time
import warnings

import numpy as np
import torch


def _experiment(config: str, name: str, tmp: str):
    from tda_core.api import Experiment, load_experiment
    from tda_core.stages.train import train_full

    exp = load_experiment(config, name)
    if all(exp.model_path(r).exists() for r in range(exp.cfg["seeds"])):
        return exp
    cfg = copy.deepcopy(exp.cfg)
    cfg["results_dir"] = tmp  # never write into the real results/
    exp = Experiment(cfg)
    for r in range(cfg["seeds"]):
        print(f"  training {name} seed {r} (no saved model)", flush=True)
        train_full(exp, r, exp.model_path(r), {"mode": "none"})
    return exp


def _timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.add_argument("--experiments", nargs="+", default=["digits-mlp", "digits-vit"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="best of N (the first run pays warm-up costs)")
    p.add_argument("--proj-dim", type=int, default=256)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("TRAK").setLevel(logging.WARNING)
    warnings.simplefilter("ignore", FutureWarning)

    from tda_core.stages.context import build_context
    from tda_core.methods.registry import get_method

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_reference_") as tmp:
        for name in args.experiments:
            exp = _experiment(args.config, name, tmp)
            seeds = list(range(exp.cfg["seeds"]))
            n_params = sum(q.numel() for q in exp.build_model(0).parameters())
            print(f"{name}: {n_params} parameters, N={exp.splits.n_train}, Q={len(exp.splits.query_y)}, "
                  f"R={len(seeds)}, device {exp.device}, {args.threads} thread(s)", flush=True)
            ctx = lambda s: build_context(exp, s)  # noqa: E731
            pairs = [
                ("EK-FAC IF (fit+score, seed 0)", get_method("if_ekfac")(cache=False), [0],
                 get_method("if_ekfac_kronfluence")(), [0]),
                (f"TRAK (k={args.proj_dim}, {len(seeds)} seeds)", get_method("trak")(proj_dim=args.proj_dim), seeds,
                 get_method("trak_traker")(proj_dim=args.proj_dim), seeds),
            ]
            for label, ours, s_ours, ref, s_ref in pairs:
                t_ours, a = _timed(lambda: ours.score(ctx(s_ours)), args.repeats)
                t_ref, b = _timed(lambda: ref.score(ctx(s_ref)), args.repeats)
                rows.append((name, label, t_ours, t_ref, t_ours / t_ref, _pearson(a, b)))
                print(f"  {label:34s} ours {t_ours:7.2f}s  reference {t_ref:7.2f}s  ratio {t_ours / t_ref:5.2f}"
                      f"  Pearson {rows[-1][5]:.4f}", flush=True)
    print("\n| experiment | method | ours (s) | reference (s) | ratio ours/ref | Pearson |")
    print("|---|---|---|---|---|---|")
    for name, label, t_ours, t_ref, ratio, corr in rows:
        print(f"| {name} | {label} | {t_ours:.2f} | {t_ref:.2f} | {ratio:.2f} | {corr:.4f} |")


if __name__ == "__main__":
    main()
