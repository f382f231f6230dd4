"""Attribute wall time of if_ekfac vs grad_dot with the shared curvature fit (one fit_curvature job per key).

    python bench/bench_shared_curvature.py [--config workflow/config/config.yaml]
                                           [--experiments digits-mlp digits-vit digits-ddpm text-gpt]
                                           [--threads 1] [--repeats 2]

For each experiment, in a temporary results_dir (or --work-dir; full-data models copied from
results/{exp}/models when there, else trained there), with the experiment's own method_options and every full-data seed, as the
workflow's jobs run them (stages in-process, so each job's start-up, mostly importing torch, is left out):
  fit        the fit_curvature job of if_ekfac's key (tda_core/stages/curvature.py), every seed
  grad_dot   its attribute job (query target)
  if_ekfac   its attribute job reading the shared fit
  old        its attribute job fitting in-process (cache: false: the path before the fit was shared)
and prints if_ekfac / grad_dot, the fit alone, and the fit amortised over the experiment's methods
(and tuning variants) that read the same key: (if_ekfac + fit / n) / grad_dot. Best of --repeats.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

NONE = {"mode": "none"}


def _experiment(config: str, name: str, tmp: str):
    from tda_core.api import Experiment, load_experiment
    from tda_core.stages.train import train_full

    real = load_experiment(config, name)
    cfg = copy.deepcopy(real.cfg)
    cfg["results_dir"] = tmp  # never write into the real results/
    exp = Experiment(cfg)
    for r in range(cfg["seeds"]):
        if exp.model_path(r).exists():  # --work-dir of an earlier run
            continue
        if real.model_path(r).exists():
            exp.model_path(r).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real.model_path(r), exp.model_path(r))
        else:
            print(f"  training {name} seed {r} (no saved model)", flush=True)
            train_full(exp, r, exp.model_path(r), NONE)
    return exp


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _sharing(exp, key: str) -> list[str]:
    """The experiment's methods and tuning variants whose attribute jobs read the fit `key`."""
    from tda_core.config import method_options
    from tda_core.methods.registry import curvature_fit
    from tda_core.tuning import grid_points

    names = dict.fromkeys([*exp.cfg["methods"], *(p["scores"] for p in grid_points(exp.cfg))])
    return [m for m in names if (curvature_fit(m, method_options(exp.cfg, m)) or {}).get("key") == key]


def bench(exp, repeats: int) -> dict:
    from tda_core.config import method_options
    from tda_core.methods.registry import curvature_fit
    from tda_core.stages.attribute import attribute_method
    from tda_core.stages.curvature import fit_shared_curvature

    seeds = [str(r) for r in range(exp.cfg["seeds"])]
    opts = method_options(exp.cfg, "if_ekfac")
    fit = curvature_fit("if_ekfac", opts)
    folder = Path(exp.layout.curvature_dir(fit["key"]))

    def fit_job():
        shutil.rmtree(folder, ignore_errors=True)  # Snakemake removes a directory output before its job
        fit_shared_curvature(exp, fit, folder)

    def attribute(method, options):
        metas = attribute_method(exp, method, seeds, ["query"], options, NONE)
        if any(m["status"] != "ok" for m in metas):
            raise RuntimeError(f"{method} failed: {metas[0].get('reason')}")

    attribute("grad_dot", method_options(exp.cfg, "grad_dot"))  # warm-up: lazy imports, first-call costs
    t_fit = _best(fit_job, repeats)
    t_grad = _best(lambda: attribute("grad_dot", method_options(exp.cfg, "grad_dot")), repeats)
    t_shared = _best(lambda: attribute("if_ekfac", opts), repeats)
    t_old = _best(lambda: attribute("if_ekfac", {**opts, "cache": False}), repeats)
    sharing = _sharing(exp, fit["key"])
    return {"key": fit["key"], "grad_dot": t_grad, "if_ekfac": t_shared, "fit": t_fit, "old": t_old,
            "sharing": sharing, "amortised": t_shared + t_fit / len(sharing)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.add_argument("--experiments", nargs="+", default=["digits-mlp", "digits-vit", "digits-ddpm", "text-gpt"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the workflow's jobs: 1)")
    p.add_argument("--repeats", type=int, default=2, help="best of N")
    p.add_argument("--work-dir", help="keep the bench's results_dir here (models trained once, reused by a rerun); "
                   "default: a temporary folder")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_shared_curvature_") as tmp:
        tmp = args.work_dir or tmp
        for name in args.experiments:
            exp = _experiment(args.config, name, tmp)
            n_params = sum(q.numel() for q in exp.build_model(0).parameters())
            print(f"{name}: {n_params} parameters, N={exp.splits.n_train}, Q={len(exp.splits.query_y)}, "
                  f"R={exp.cfg['seeds']}, device {exp.device}, {args.threads} thread(s)", flush=True)
            row = bench(exp, args.repeats)
            rows.append((name, row))
            print(f"  fit {row['key']}: {row['fit']:.2f}s, read by {', '.join(row['sharing'])}\n"
                  f"  grad_dot {row['grad_dot']:.2f}s  if_ekfac {row['if_ekfac']:.2f}s "
                  f"(ratio {row['if_ekfac'] / row['grad_dot']:.2f}; amortised fit {row['amortised'] / row['grad_dot']:.2f};"
                  f" in-process fit {row['old']:.2f}s, ratio {row['old'] / row['grad_dot']:.2f})", flush=True)
    print("\n| experiment | grad_dot (s) | if_ekfac, shared fit (s) | ratio | fit job (s) | methods reading it "
          "| ratio, fit amortised | if_ekfac, in-process fit (s) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        g = r["grad_dot"]
        print(f"| {name} | {g:.2f} | {r['if_ekfac']:.2f} | {r['if_ekfac'] / g:.2f} | {r['fit']:.2f} | "
              f"{len(r['sharing'])} | {r['amortised'] / g:.2f} | {r['old']:.2f} | {r['old'] / g:.2f} |")


if __name__ == "__main__":
    main()
