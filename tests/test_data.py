"""Splits, subset masks, label noise, and the torchvision loaders on files written in torchvision's
on-disk formats by the test itself."""
import gzip
import pickle
import struct

import numpy as np
import pytest

from tda_core.data import load_splits, subset_masks
from tda_core.errors import ConfigError


def _digits_cfg(**ds):
    return {"dataset": {"name": "digits", "n_train": 300, "n_val": 50, "n_query": 20, "n_test": None,
                        "split_seed": 0, "label_noise": 0.0, **ds}}


def test_digits_splits_are_disjoint_deterministic_and_sized():
    a, b = load_splits(_digits_cfg()), load_splits(_digits_cfg())
    assert a.train_x.shape == (300, 1, 8, 8) and a.n_classes == 10
    assert len(a.val_y) == 50 and len(a.query_y) == 20 and len(a.test_y) == 1797 - 370
    assert (a.train_x == b.train_x).all() and (a.query_y == b.query_y).all()
    rows = lambda t: {r.tobytes() for r in t.reshape(len(t), -1).numpy()}  # noqa: E731
    # digits has a few duplicate images; splits must still be index-disjoint, so compare sizes
    assert len(rows(a.train_x) & rows(a.query_x)) <= 2
    assert float(a.train_x.min()) >= -1.0 and float(a.train_x.max()) <= 1.0
    c = load_splits(_digits_cfg(split_seed=1))
    assert not (c.train_y == a.train_y).all()


def test_label_noise_flips_exactly_the_marked_labels():
    clean, noisy = load_splits(_digits_cfg()), load_splits(_digits_cfg(label_noise=0.2))
    changed = (clean.train_y != noisy.train_y).numpy()
    assert noisy.corrupted.sum() == 60
    np.testing.assert_array_equal(changed, noisy.corrupted)


def test_subset_masks_have_exact_size_and_are_seeded():
    m = subset_masks(101, 20, 0.3, seed=4)
    assert m.shape == (20, 101) and (m.sum(1) == 30).all()
    np.testing.assert_array_equal(m, subset_masks(101, 20, 0.3, seed=4))
    assert len({r.tobytes() for r in m}) == 20
    for alpha in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="alpha"):
            subset_masks(10, 2, alpha, 0)


def _write_idx(path, array):
    dims = array.shape
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims))
        f.write(array.astype(np.uint8).tobytes())


def test_mnist_loader_reads_torchvision_format(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    tr_x, tr_y = rng.integers(0, 256, (40, 28, 28)), rng.integers(0, 10, 40)
    te_x, te_y = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    for stem, arr in [("train-images-idx3-ubyte", tr_x), ("train-labels-idx1-ubyte", tr_y),
                      ("t10k-images-idx3-ubyte", te_x), ("t10k-labels-idx1-ubyte", te_y)]:
        _write_idx(raw / f"{stem}.gz", arr)
        with gzip.open(raw / f"{stem}.gz") as f:  # torchvision reads the uncompressed files
            (raw / stem).write_bytes(f.read())
    s = load_splits({"data_dir": str(tmp_path), "dataset": {"name": "mnist", "n_train": 25, "n_val": 5,
                                                             "n_query": 5, "n_test": None, "split_seed": 0}})
    assert s.train_x.shape == (25, 1, 28, 28) and len(s.test_y) == 20
    # every training image is one of the written ones, rescaled to [-1, 1]
    written = {((r.astype(np.float32) / 255) * 2 - 1).tobytes() for r in tr_x}
    assert all(x[0].numpy().tobytes() in written for x in s.train_x)


def test_cifar10_loader_reads_torchvision_format(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, 6).tolist()}
        (base / name).write_bytes(pickle.dumps(batch))
    s = load_splits({"data_dir": str(tmp_path), "dataset": {"name": "cifar10", "n_train": 20, "n_val": 2,
                                                             "n_query": 2, "n_test": None, "split_seed": 0,
                                                             "classes": None}})
    assert s.train_x.shape == (20, 3, 32, 32) and len(s.test_y) == 2


def test_missing_data_dir_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="data_dir .* does not exist"):
        load_splits({"data_dir": str(tmp_path / "nope"), "dataset": {"name": "mnist", "n_train": 5, "n_val": 1,
                                                                      "n_query": 2, "split_seed": 0}})
