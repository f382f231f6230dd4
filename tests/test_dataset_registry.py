"""One row per dataset: the registry's DatasetEntry is what config validation, the loaders and error messages
read, so a new dataset is its loader function plus one row (checked with a toy dataset)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config

from tda_core.config import resolve_experiment, validate_config
from tda_core.data import registry
from tda_core.data.registry import BUNDLED, DATASETS, DatasetEntry
from tda_core.data.sources import source_origin
from tda_core.data.splits import load_splits
from tda_core.errors import ConfigError


def load_blobs(ds, data_dir, download):
    """The toy dataset: 3 Gaussian blobs in 5 dimensions, 400 examples, a fixed generator."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 400)
    x = (rng.normal(size=(400, 5)) + 3.0 * np.eye(3, 5)[y]).astype(np.float32)
    return (x, y), None


TOY = DatasetEntry("blobs", f"{__name__}:load_blobs", BUNDLED, "blobs (test_dataset_registry)")


def test_every_row_names_an_importable_loader():
    for name in DATASETS:
        assert callable(registry.loader(name)), name


def test_a_new_dataset_is_one_row(monkeypatch):
    monkeypatch.setitem(DATASETS, TOY.name, TOY)
    cfg = validate_config(tiny_config(dataset={"name": "blobs", "n_train": 200, "n_val": 50, "n_query": 20,
                                               "n_test": 100}))
    exp = resolve_experiment(cfg, "tiny")
    splits = load_splits(exp)
    (x, y), _ = load_blobs(None, None, False)
    assert splits.n_train == 200 and splits.n_classes == 3 and tuple(splits.train_x.shape[1:]) == (5,)
    # every split's rows are rows of the toy data (a permutation of it, nothing invented)
    rows = {tuple(r) for r in np.round(x, 5)}
    assert all(tuple(r) in rows for r in np.round(splits.train_x.numpy(), 5))
    assert source_origin(exp["dataset"], "data") == "blobs (test_dataset_registry)"


@pytest.mark.parametrize("block, match", [
    ({"name": "nope"}, "unknown dataset 'nope'; known: .*digits"),
    ({"name": "npz"}, "dataset npz needs dataset.path"),
    ({"name": "sklearn"}, "dataset sklearn needs dataset.loader"),
])
def test_a_bad_dataset_block_is_one_line(block, match):
    with pytest.raises(ConfigError, match=f"experiment 'tiny': {match}"):
        validate_config(tiny_config(dataset=block | {"n_train": 10}))
