"""tda_core/spec.py's one row per experiment key, checked against the schema both ways; the hash of every
shipped experiment pinned (a refactor must change none: nothing reruns); has_fixed_track's truth table."""
from __future__ import annotations

import glob
import os

import pytest
import yaml
from conftest import REPO

from tda_core.config import SCHEMA_PATH, load_config, resolve_experiment
from tda_core.spec import EXPERIMENT_KEYS, GLOBAL_KEYS, JOB_LOCAL, UNHASHED, has_fixed_track

# resolve_experiment(config, name)["config_hash"] of every experiment in workflow/config/*.yaml. Change a pin
# only when a config edit is meant to change numbers (then say so in the commit).
PINNED = {
    "config.yaml:digits-ddpm": "44c3cdf1128ee0d4",
    "config.yaml:digits-mlp": "8f0bdd0ab6e4daa2",
    "config.yaml:digits-mlp-multistage": "03291d6ce8a9d4d3",
    "config.yaml:digits-mlp-nonconverged": "44b5f415c6fb20d7",
    "config.yaml:digits-mlp-smallstep": "6b37b5de71b4365d",
    "config.yaml:digits-vit": "8250794336bd0196",
    "config.yaml:text-gpt": "ff257409deeacc33",
    "extended.yaml:digits-mlp": "2942b2a872f628db",
    "paper.yaml:cifar10-ddpm": "bf8ab3bb58292a29",
    "paper.yaml:cifar10-vit": "29a3bb7805b2e36d",
    "paper.yaml:fashionmnist-mlp": "4b109ee157856334",
    "paper.yaml:fashionmnist-mlp-multistage": "ce1efb764c725e49",
    "paper.yaml:fashionmnist-mlp-nonconverged": "8272a9cafa55244b",
    "paper.yaml:mnist-mlp": "83d36bc06656f6b7",
    "reproduce.yaml:digits-lr-dattri": "b1c3eb3b4e699e79",
    "reproduce.yaml:digits-mlp-dattri": "a8f56862865bbe19",
    "tiny.yaml:tiny-mlp": "17227cf8bcbe6b1a"
}


def test_rows_match_the_schema_both_ways():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    experiment = set(schema["$defs"]["experiment"]["properties"])
    assert {k for k, row in EXPERIMENT_KEYS.items() if row.origin == "experiment"} == experiment
    assert set(GLOBAL_KEYS) == set(schema["properties"]) - {"experiments", "run_experiments"}


def test_every_resolved_experiment_has_only_keys_with_a_row():
    for path in sorted(glob.glob(str(REPO / "workflow" / "config" / "*.yaml"))):
        config = load_config(path)
        for name in config["experiments"]:
            assert set(resolve_experiment(config, name)) <= set(EXPERIMENT_KEYS), (path, name)


def test_hashed_and_job_local_keys():
    # what the hash leaves out and what jobs take on their command line, as they were before the rows
    assert UNHASHED == {"tracking", "results_dir", "threads", "name", "data_dir", "download", "chunk_size",
                        "methods", "method_options", "metrics", "config_hash", "pruning", "loo", "mislabel",
                        "pictures", "tuning", "removal"}
    assert JOB_LOCAL == {"tracking", "methods", "method_options", "metrics", "pruning", "loo", "mislabel", "pictures",
                         "tuning", "removal"}
    assert JOB_LOCAL <= UNHASHED  # a job-local key never changes a trained model


def test_every_shipped_config_hash_is_pinned():
    got = {}
    for path in sorted(glob.glob(str(REPO / "workflow" / "config" / "*.yaml"))):
        config = load_config(path)
        for name in config["experiments"]:
            got[f"{os.path.basename(path)}:{name}"] = resolve_experiment(config, name)["config_hash"]
    assert got == PINNED


@pytest.mark.parametrize("groundtruth, expected", [
    (None, False), ({}, False), ({"track": "distributional"}, False), ({"track": "fixed_seed"}, True),
    ({"track": "both"}, True),
])
def test_has_fixed_track(groundtruth, expected):
    exp = {} if groundtruth is None else {"groundtruth": groundtruth}
    assert has_fixed_track(exp) is expected
