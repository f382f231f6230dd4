"""tda_core/spec.py's one row per experiment key, checked against the schema both ways; the hash of every
shipped experiment pinned (a refactor must change none: nothing reruns); has_fixed_track's truth table."""
from __future__ import annotations

import glob
import os

import pytest
from conftest import REPO

from tda_core.config import _schema, load_config, resolve_experiment
from tda_core.spec import (EXPERIMENT_KEYS, GLOBAL_KEYS, JOB_LOCAL, UNHASHED, ExperimentSpec, GroundTruthSpec, TrainSpec,
                           has_fixed_track)

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
    schema = _schema()  # config.schema.yaml with the studies' own block schemas (tda_core/studies.py)
    experiment = set(schema["$defs"]["experiment"]["properties"])
    assert {k for k, row in EXPERIMENT_KEYS.items() if row.origin == "experiment"} == experiment
    assert set(GLOBAL_KEYS) == set(schema["properties"]) - {"experiments", "run_experiments"}


def test_nested_blocks_match_the_schema_both_ways():
    from dataclasses import fields

    props = _schema()["$defs"]["experiment"]["properties"]
    for cls, block in ((TrainSpec, "train"), (GroundTruthSpec, "groundtruth")):
        assert {f.metadata.get("key") or f.name for f in fields(cls)} == set(props[block]["properties"]), block


def _plain(value):
    """A spec value as the config dict holds it (read-only views back to dicts, tuples to lists)."""
    from types import MappingProxyType

    if isinstance(value, MappingProxyType):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def test_the_spec_holds_what_the_resolved_config_holds():
    """For every shipped experiment, each key's spec value is the validated config's (the schema's defaults filled
    in by Snakemake's validate, not restated), and a hand-made dict gets the same defaults."""
    from dataclasses import asdict

    for path in sorted(glob.glob(str(REPO / "workflow" / "config" / "*.yaml"))):
        config = load_config(path)
        for name in config["experiments"]:
            exp = resolve_experiment(config, name)
            spec = ExperimentSpec.of(exp)
            for key, row in EXPERIMENT_KEYS.items():
                if key == "seeds":
                    assert spec.n_seeds == exp["seeds"]
                elif key == "train":
                    assert asdict(spec.train) == {k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in exp["train"].items()}, (path, name)
                elif key == "groundtruth":
                    gt = {("source" if k == "from" else k): v for k, v in exp["groundtruth"].items()}
                    assert asdict(spec.groundtruth) == {"source": None, **gt}, (path, name)
                elif key in spec.studies:
                    assert _plain(spec.study(key)) == (exp.get(key) or None), (path, name, key)
                else:
                    assert _plain(getattr(spec, key)) == exp.get(key), (path, name, key)
    bare = ExperimentSpec.of({"name": "bare", "dataset": {"name": "digits"}, "model": {"name": "mlp"}})
    full = resolve_experiment(load_config(REPO / "workflow/config/tiny.yaml"), "tiny-mlp")
    assert bare.train.vectorize is True and bare.groundtruth.steps == "same_epochs" and bare.kind == "classification"
    assert bare.chunk_size == full["chunk_size"] and bare.precision == full["precision"]
    assert bare.dataset["label_noise"] == 0.0 and bare.model["hidden"] == (64, 32) and bare.study("pruning") is None
    # the measurement's default depends on the kind (the schema's allOf), as validate fills it
    for kind, measurement in (("classification", "margin"), ("regression", "loss"), ("diffusion", "denoising_loss"),
                              ("language_model", "loss")):
        assert ExperimentSpec.of({"kind": kind, "dataset": {"name": "x"}, "model": {"name": "y"}}).measurement == measurement


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
