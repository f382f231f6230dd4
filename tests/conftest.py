import os
from pathlib import Path

import pytest
import threadpoolctl
import torch

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)
# One BLAS / OpenMP thread per process too, here and in the subprocesses tests start (snakemake jobs):
# `pytest -n 2` runs a worker per core, and more BLAS threads than cores spin against each other (numpy's
# eigh of a 610 x 610 matrix took 8x longer with 2 OpenBLAS threads than with 1 on a busy 2-core machine).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # read by BLAS libraries loaded from now on (scipy's, subprocesses')
threadpoolctl.threadpool_limits(1)  # and the ones already loaded (numpy's, through torch)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def tiny_config(**overrides) -> dict:
    """A small digits classification config (full workflow config dict, not yet validated)."""
    exp = {
        "dataset": {"name": "digits", "n_train": 120, "n_val": 40, "n_query": 12, "n_test": 100},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 32, "epochs": 4,
                  "n_checkpoints": 3},
        "seeds": 2,
        "groundtruth": {"n_subsets": 8, "alpha": 0.5, "seeds_per_subset": 2, "shard_size": 4},
        "methods": ["random", "grad_dot", "tracin"],
    }
    for key, value in overrides.items():
        exp[key] = {**exp[key], **value} if isinstance(exp.get(key), dict) else value
    return {"tracking": {"mode": "none"}, "experiments": {"tiny": exp}}


def float64_flat_setup(exp, seed: int = 0):
    """For exact-curvature references on a trained tiny experiment: the float64 model, training x / y,
    and `unflat` (a flat float64 parameter vector -> the model's named parameters, in checkpoint order)."""
    model = exp.build_model(seed).double()
    x, y = exp.splits.train_x.double(), exp.splits.train_y
    template = {k: v.double() for k, v in exp.load_checkpoints(seed)[0]["params"].items()}
    sizes = [v.numel() for v in template.values()]

    def unflat(v):
        return {k: t.reshape(template[k].shape) for k, t in zip(template, torch.split(v, sizes))}

    return model, x, y, unflat


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """The job table of `snakemake -n` (rule -> count); {} when nothing is to be done."""
    jobs, table = {}, False
    for line in dry_run_output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            table = True
        elif table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            jobs[parts[0]] = int(parts[1])
    return jobs


# -- one run of workflow/config/tiny.yaml, shared ------------------------------------------------------
# Tests that read a finished tiny.yaml run use `tiny_workflow_run`; tests that need a variant of it (other
# methods, metrics, a tuning grid: keys outside the config hash) copy it with `copy_workflow_run` and let
# Snakemake run only the jobs the variant adds. Mark them @pytest.mark.xdist_group(TINY_WORKFLOW_GROUP): with
# `pytest -n 2 --dist loadgroup` (the README's command) they then share one worker and one run.
TINY_WORKFLOW_GROUP = "tiny_workflow"


def run_snakemake(workdir: Path, *args, configfile=None, cores: int = 2, env=None, check: bool = True,
                  timeout: float = 900):
    """`snakemake` on this repository's Snakefile in `workdir` (default config: tiny.yaml)."""
    import subprocess
    import sys

    configfile = configfile or REPO / "workflow" / "config" / "tiny.yaml"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", str(cores), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return r


@pytest.fixture(scope="session")
def tiny_workflow_run(tmp_path_factory) -> Path:
    """The working directory of one finished `snakemake` run of workflow/config/tiny.yaml (results in
    results/, Snakemake's records in .snakemake/). Read it; copy it (copy_workflow_run) to change it."""
    work = tmp_path_factory.mktemp("tiny_workflow")
    run_snakemake(work)
    return work


def copy_workflow_run(run: Path, dest: Path) -> Path:
    """A copy of a finished workflow directory, results and Snakemake's metadata (so its outputs stay up to
    date: same mtimes, same recorded params and code), without the locks of a running Snakemake."""
    import shutil

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("locks"), dirs_exist_ok=True)
    return dest


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, hand the slow end-to-end tests out first (the xdist_group ones go first anyway,
    largest group first): a minute-long test started last would keep one worker busy after the other is done."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: same order otherwise


def dense_grads(model, params, fn, x, y):
    """[n, P] float64 gradients, one autograd call per example (no vmap, no projection)."""
    params = {k: v.double().requires_grad_(True) for k, v in params.items()}
    out = []
    for xi, yi in zip(x.double(), y):
        val = fn(torch.func.functional_call(model.double(), params, (xi[None],)), yi[None]).sum()
        out.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(val, list(params.values()))]))
    return torch.stack(out).numpy()
