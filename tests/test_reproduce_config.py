"""workflow/config/reproduce.yaml (docs/reproduction.md) validates, keeps dattri's published protocol, and plans."""

import math
import subprocess
import sys

from conftest import planned_jobs
from tda_core.config import load_config

# dattri's MNIST+LR/MLP benchmark (experiments/benchmark_result.py, dattri/benchmark/datasets/mnist/)
DATTRI_IF_REGULARIZATION = [1e0, 1e-1, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5]
DATTRI_TRAIN = {
    "digits-lr-dattri": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "batch_size": 32, "epochs": 20},
    "digits-mlp-dattri": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 64, "epochs": 50},
}


def test_reproduce_config_keeps_the_published_protocol(repo):
    exps = load_config(repo / "workflow/config/reproduce.yaml")["experiments"]
    assert set(exps) == set(DATTRI_TRAIN)
    assert exps["digits-lr-dattri"]["model"]["hidden"] == []          # logistic regression
    assert exps["digits-mlp-dattri"]["model"]["hidden"] == [128, 64]
    for name, train in DATTRI_TRAIN.items():
        exp = exps[name]
        assert {k: exp["train"][k] for k in train} == train and exp["train"]["weight_decay"] == 0.0
        assert exp["measurement"] == "loss" and exp["dataset"]["n_query"] == 500
        assert exp["groundtruth"]["n_subsets"] == 100 and exp["groundtruth"]["alpha"] == 0.5
        assert exp["groundtruth"]["steps"] == "same_epochs"               # dattri trains subsets for the same epochs
        assert exp["seeds"] == 10 and exp["method_options"]["trak"]["proj_dim"] == 512
    assert exps["digits-lr-dattri"]["tuning"]["if_exact"]["damping"] == DATTRI_IF_REGULARIZATION


def test_reproduce_config_plans_every_job(repo, tmp_path):
    cfg = load_config(repo / "workflow/config/reproduce.yaml")
    exps = cfg["experiments"]
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "-s", str(repo / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(repo / "workflow/config/reproduce.yaml"),
           "--config", f"results_dir={tmp_path / 'results'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    grid = sum(len(values) for x in exps.values() for opts in x.get("tuning", {}).values() for values in opts.values())
    assert jobs["train_full"] == sum(x["seeds"] for x in exps.values())
    assert jobs["train_shard"] == sum(math.ceil(x["groundtruth"]["n_subsets"] / x["groundtruth"]["shard_size"])
                                      for x in exps.values())
    assert jobs["attribute"] == sum(len(x["methods"]) for x in exps.values()) + grid
    assert jobs["evaluate"] == len(exps) and jobs["tune"] == 1 and jobs["leaderboard"] == 1
