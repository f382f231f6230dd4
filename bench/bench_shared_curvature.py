"""Attribute wall time of if_ekfac vs grad_dot with the shared curvature fit (one fit_curvature job per key).

    python bench/bench_shared_curvature.py [--config workflow/config/config.yaml] [--experiments NAME ...]
                                           [--threads 1] [--repeats 2] [--no-jobs] [--work-dir DIR]

Experiments: by default every one of the config that lists both if_ekfac and grad_dot.

For each experiment, in a temporary results_dir (or --work-dir; full-data models copied from
results/{exp}/models when there, else trained there), with the experiment's own method_options and every full-data seed, as the
workflow's jobs run them (stages in-process, so each job's start-up, mostly importing torch, is left out):
  fit        the fit_curvature job of if_ekfac's key (tda_core/stages/curvature.py), every seed
  grad_dot   its attribute job (query target)
  if_ekfac   its attribute job reading the shared fit
  old        its attribute job fitting in-process (cache: false: the path before the fit was shared)
and prints if_ekfac / grad_dot, the fit alone, and the fit amortised over the experiment's methods
(and tuning variants) that read the same key: (if_ekfac + fit / n) / grad_dot. Best of --repeats.
Then (unless --no-jobs) the same three as the workflow runs them, one `tda` process each (start-up and
all, W&B off), once: what a job costs the workflow, and the attribute jobs' sidecar wall_time_s summed
over seeds (method.score in a fresh process, first-call costs included): the wall time the board shows;
also for if_ekfac fitting in its own job (cache: false), as before the fit was shared.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
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


def jobs(exp) -> dict:
    """Wall time of the fit_curvature job and of grad_dot's and if_ekfac's attribute jobs, as `tda` processes."""
    from tda_core import io
    from tda_core.config import method_options, shared_experiment_config
    from tda_core.methods.registry import curvature_fit

    io.write_json(exp.layout.config, shared_experiment_config(exp.cfg))  # what `tda prepare` writes
    seeds = [str(r) for r in range(exp.cfg["seeds"])]
    opts = method_options(exp.cfg, "if_ekfac")
    fit = curvature_fit("if_ekfac", opts)
    folder = exp.layout.curvature_dir(fit["key"])
    shutil.rmtree(folder, ignore_errors=True)
    head = [sys.executable, "-m", "tda_core.cli", "--threads", "1"]
    common = ["--exp-config", exp.layout.config, "--tracking", json.dumps(NONE)]
    commands = {
        "fit_curvature": [*head, "fit-curvature", *common, "--fit", json.dumps({k: fit[k] for k in
                                                                              ("kind", "checkpoints", "options")}),
                          "--out", folder],
        "grad_dot": [*head, "attribute", *common, "--method", "grad_dot", "--seed", *seeds, "--options",
                     json.dumps(method_options(exp.cfg, "grad_dot"))],
        "if_ekfac": [*head, "attribute", *common, "--method", "if_ekfac", "--seed", *seeds, "--options",
                     json.dumps(opts)],
        "if_ekfac_old": [*head, "attribute", *common, "--method", "if_ekfac", "--seed", *seeds, "--options",
                         json.dumps({**opts, "cache": False})],  # fits in the job: the path before the shared fit
    }
    out = {}
    for name, cmd in commands.items():  # the fit first: if_ekfac's job reads it
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"})
        out[name] = time.perf_counter() - t0
        if name != "fit_curvature":  # the sidecars' wall_time_s (method.score, per seed): the board's wall time
            method = name.removesuffix("_old")
            out[f"{name}_score"] = sum(io.read_json(exp.scores_path(method, r).with_suffix(".json"))["wall_time_s"]
                                       for r in seeds)
    return out


def _default_experiments(config: str) -> list[str]:
    from tda_core.config import load_config

    cfg = load_config(config)
    return [n for n, e in cfg["experiments"].items() if {"if_ekfac", "grad_dot"} <= set(e.get("methods", []))]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.add_argument("--experiments", nargs="+", help="default: every experiment listing if_ekfac and grad_dot")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the workflow's jobs: 1)")
    p.add_argument("--repeats", type=int, default=2, help="best of N")
    p.add_argument("--no-jobs", action="store_true", help="skip timing the jobs as `tda` processes")
    p.add_argument("--work-dir", help="keep the bench's results_dir here (models trained once, reused by a rerun); "
                   "default: a temporary folder")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_shared_curvature_") as tmp:
        tmp = args.work_dir or tmp
        for name in args.experiments or _default_experiments(args.config):
            exp = _experiment(args.config, name, tmp)
            n_params = sum(q.numel() for q in exp.build_model(0).parameters())
            print(f"{name}: {n_params} parameters, N={exp.splits.n_train}, Q={len(exp.splits.query_y)}, "
                  f"R={exp.cfg['seeds']}, device {exp.device}, {args.threads} thread(s)", flush=True)
            row = bench(exp, args.repeats)
            row["jobs"] = None if args.no_jobs else jobs(exp)
            rows.append((name, row))
            print(f"  fit {row['key']}: {row['fit']:.2f}s, read by {', '.join(row['sharing'])}\n"
                  f"  grad_dot {row['grad_dot']:.2f}s  if_ekfac {row['if_ekfac']:.2f}s "
                  f"(ratio {row['if_ekfac'] / row['grad_dot']:.2f}; amortised fit {row['amortised'] / row['grad_dot']:.2f};"
                  f" in-process fit {row['old']:.2f}s, ratio {row['old'] / row['grad_dot']:.2f})", flush=True)
            if row["jobs"]:
                j = row["jobs"]
                print(f"  jobs: fit_curvature {j['fit_curvature']:.1f}s, grad_dot {j['grad_dot']:.1f}s, if_ekfac "
                      f"{j['if_ekfac']:.1f}s (ratio {j['if_ekfac'] / j['grad_dot']:.2f}); their sidecars' wall time "
                      f"(the board's): grad_dot {j['grad_dot_score']:.2f}s, if_ekfac {j['if_ekfac_score']:.2f}s "
                      f"(ratio {j['if_ekfac_score'] / j['grad_dot_score']:.2f}; fitting in the job "
                      f"{j['if_ekfac_old_score']:.2f}s, ratio {j['if_ekfac_old_score'] / j['grad_dot_score']:.2f})",
                      flush=True)
    print("\n| experiment | grad_dot (s) | if_ekfac, shared fit (s) | ratio | fit (s) | methods reading it "
          "| ratio, fit amortised | if_ekfac, in-process fit (s) | ratio | jobs: grad_dot / if_ekfac / fit (s) "
          "| job ratio | board wall time: grad_dot / if_ekfac (s) | board ratio | board ratio, fit in the job |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        g, j = r["grad_dot"], r["jobs"]
        job = (f"{j['grad_dot']:.1f} / {j['if_ekfac']:.1f} / {j['fit_curvature']:.1f} | {j['if_ekfac'] / j['grad_dot']:.2f}"
               f" | {j['grad_dot_score']:.2f} / {j['if_ekfac_score']:.2f} | {j['if_ekfac_score'] / j['grad_dot_score']:.2f}"
               f" | {j['if_ekfac_old_score'] / j['grad_dot_score']:.2f}" if j else "- | - | - | - | -")
        print(f"| {name} | {g:.2f} | {r['if_ekfac']:.2f} | {r['if_ekfac'] / g:.2f} | {r['fit']:.2f} | "
              f"{len(r['sharing'])} | {r['amortised'] / g:.2f} | {r['old']:.2f} | {r['old'] / g:.2f} | {job} |")


if __name__ == "__main__":
    main()
