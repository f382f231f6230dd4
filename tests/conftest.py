import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)


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
