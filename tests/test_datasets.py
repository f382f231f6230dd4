"""Datasets by config (npz, sklearn, image_folder, hf_disk), real torchvision file formats written by
the test itself, non-finite rejection, the data hash, safe names, and regression (LDS of if_ekfac
against brute-force retrained ground truth on scikit-learn's diabetes data)."""
import gzip
import pickle
import struct
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_config
from scipy.stats import spearmanr

from tda_core.api import load_experiment
from tda_core.config import resolve_experiment, validate_config
from tda_core.data import load_splits
from tda_core.errors import ConfigError


def _exp(tmp_path, dataset, **overrides):
    cfg = tiny_config(**overrides)
    cfg["experiments"]["tiny"]["dataset"] = dataset
    cfg["data_dir"] = str(tmp_path)
    cfg["results_dir"] = str(tmp_path / "results")
    return load_experiment(cfg, "tiny")


def _train_and_score(exp, methods=("grad_dot",), epochs_note=None):
    from tda_core.stages.context import build_context
    from tda_core.methods.registry import get_method
    from tda_core.stages.train import train_full

    meta = train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    ctx = build_context(exp, [0], chunk_size=64)
    return meta, {m: get_method(m)().score(ctx) for m in methods}


# -- npz ---------------------------------------------------------------------------------------
def test_npz_tabular_classification_trains_an_mlp_and_hash_follows_content(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    ds = {"name": "npz", "path": "tab.npz", "n_train": 60, "n_val": 20, "n_query": 8, "n_test": 40}
    exp = _exp(tmp_path, ds, train={"epochs": 20, "batch_size": 20})
    s = exp.splits
    assert s.train_x.shape == (60, 5) and s.train_y.dtype == torch.int64 and s.n_classes == 2
    rows = {r.tobytes() for r in x}
    assert all(r.numpy().tobytes() in rows for r in s.train_x)
    meta, scores = _train_and_score(exp)
    assert meta["test_accuracy"] > 0.8 and scores["grad_dot"].shape == (8, 60)
    # absolute path: same content, same hash; changed content: another hash
    same = _exp(tmp_path, {**ds, "path": str(tmp_path / "tab.npz")}, train={"epochs": 20, "batch_size": 20})
    assert same.hash == exp.hash and same.cfg["data_sha256"] == exp.cfg["data_sha256"]
    np.savez(tmp_path / "tab.npz", x=x, y=1 - y)
    assert _exp(tmp_path, ds, train={"epochs": 20, "batch_size": 20}).hash != exp.hash
    with pytest.raises(ConfigError, match="changed since"):  # the resolved config no longer matches the data
        load_splits(exp.cfg)


def test_npz_non_finite_is_one_line_naming_file_and_row(tmp_path):
    x = np.zeros((50, 3), dtype=np.float32)
    x[17, 1] = np.nan
    x[30, 0] = np.inf
    np.savez(tmp_path / "bad.npz", x=x, y=np.zeros(50, dtype=np.int64))
    exp = _exp(tmp_path, {"name": "npz", "path": "bad.npz", "n_train": 20, "n_val": 5, "n_query": 5})
    with pytest.raises(ConfigError, match=r"bad\.npz.*non-finite value in x at row 17 \(2 bad rows\)") as err:
        exp.splits
    assert "\n" not in str(err.value)


def test_npz_float_labels_need_regression_and_missing_file_is_one_line(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.zeros((30, 2), np.float32), y=np.linspace(0, 1, 30))
    exp = _exp(tmp_path, {"name": "npz", "path": "r.npz", "n_train": 10, "n_val": 5, "n_query": 5})
    with pytest.raises(ConfigError, match="kind: regression"):
        exp.splits
    with pytest.raises(ConfigError, match="nope.npz does not exist"):
        _exp(tmp_path, {"name": "npz", "path": "nope.npz"})


# -- sklearn -----------------------------------------------------------------------------------
def test_sklearn_loader_and_fetch_refused(tmp_path):
    exp = _exp(tmp_path, {"name": "sklearn", "loader": "load_wine", "n_train": 100, "n_val": 30, "n_query": 10,
                          "standardize": True})
    s = exp.splits
    assert s.train_x.shape == (100, 13) and s.n_classes == 3
    np.testing.assert_allclose(s.train_x.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(s.train_x.std(0, unbiased=False).numpy(), 1, atol=1e-4)
    for loader, msg in (("fetch_openml", "downloads data"), ("load_nothing", "unknown sklearn loader")):
        with pytest.raises(ConfigError, match=msg) as err:
            _exp(tmp_path, {"name": "sklearn", "loader": loader}).splits
        assert "\n" not in str(err.value)


# -- image folder ------------------------------------------------------------------------------
def test_image_folder_resizes_and_labels_by_sorted_class(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, cls in enumerate(["cat", "dog"]):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(12):
            size = (10 + i, 9)  # mixed sizes: resized to image_size
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    exp = _exp(tmp_path, {"name": "image_folder", "path": "imgs", "image_size": 8, "n_train": 12, "n_val": 4,
                          "n_query": 4}, model={"name": "mlp", "hidden": [8]})
    s = exp.splits
    assert s.train_x.shape == (12, 3, 8, 8) and s.n_classes == 2
    assert float(s.train_x.min()) >= -1 and float(s.train_x.max()) <= 1
    assert len(exp.cfg["data_sha256"]) == 64
    grey = _exp(tmp_path, {"name": "image_folder", "path": "imgs", "image_size": [6, 5], "channels": 1,
                           "n_train": 12, "n_val": 4, "n_query": 4})
    assert grey.splits.train_x.shape == (12, 1, 6, 5)


# -- Hugging Face datasets ---------------------------------------------------------------------
def test_hf_disk_dataset_dict_and_missing_package(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    make = lambda n: datasets.Dataset.from_dict(  # noqa: E731
        {"features": rng.normal(size=(n, 4)).tolist(), "target": rng.integers(0, 3, n).tolist()})
    datasets.DatasetDict({"train": make(40), "test": make(30)}).save_to_disk(str(tmp_path / "hf"))
    ds = {"name": "hf_disk", "path": "hf", "input_column": "features", "label_column": "target",
          "n_train": 30, "n_val": 10, "n_query": 5}
    s = _exp(tmp_path, ds).splits
    assert s.train_x.shape == (30, 4) and len(s.test_y) == 15 and s.train_y.dtype == torch.int64
    with pytest.raises(ConfigError, match="no column 'image'"):
        _exp(tmp_path, {**ds, "input_column": "image"}).splits
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ConfigError, match="pip install datasets") as err:
        _exp(tmp_path, ds).splits
    assert "\n" not in str(err.value)


# -- real torchvision file formats, then prepare + a short training ----------------------------
def _write_idx(path, array, gz):
    dims = array.shape
    blob = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    blob += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST", True), ("fashionmnist", "FashionMNIST", False)])
def test_idx_files_prepare_and_train(tmp_path, name, folder, gz):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    tr_x, tr_y = rng.integers(0, 256, (40, 28, 28)), rng.integers(0, 10, 40)
    te_x, te_y = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    for stem, arr in [("train-images-idx3-ubyte", tr_x), ("train-labels-idx1-ubyte", tr_y),
                      ("t10k-images-idx3-ubyte", te_x), ("t10k-labels-idx1-ubyte", te_y)]:
        _write_idx(raw / (f"{stem}.gz" if gz else stem), arr, gz)
    _prepare_and_train(tmp_path, {"name": name, "n_train": 30, "n_val": 10, "n_query": 5}, (30, 1, 28, 28))
    exp = _exp(tmp_path, {"name": name, "n_train": 30, "n_val": 10, "n_query": 5})
    written = {((r.astype(np.float32) / 255) * 2 - 1).tobytes() for r in tr_x}
    assert all(x[0].numpy().tobytes() in written for x in exp.splits.train_x)
    assert sorted(exp.splits.test_y.tolist() + exp.splits.val_y.tolist() + exp.splits.query_y.tolist()) == sorted(te_y)


def test_cifar10_pickles_prepare_and_train(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, 8).tolist()}
        (base / name).write_bytes(pickle.dumps(batch))  # md5s differ from the real ones: not checked
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    _prepare_and_train(tmp_path, {"name": "cifar10", "n_train": 30, "n_val": 3, "n_query": 3}, (30, 3, 32, 32))


def _prepare_and_train(tmp_path, dataset, shape):
    from tda_core import io
    from tda_core.stages.prepare import prepare
    from tda_core.stages.train import train_full

    exp = _exp(tmp_path, dataset, train={"epochs": 1, "batch_size": 10})
    prepare(exp, tmp_path / "config.json", tmp_path / "masks.npy")
    assert io.load_npy(tmp_path / "masks.npy", expect_hash=exp.hash).shape == (8, 30)
    assert tuple(exp.splits.train_x.shape) == shape
    meta = train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    assert np.isfinite(meta["final_train_loss"]) and meta["total_steps"] == 3


# -- safe names --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../../evil", "a/b", "with space", ".hidden", "a..b", "tab\t", "é"])
def test_unsafe_experiment_and_method_names_fail_in_one_line(bad):
    cfg = tiny_config()
    cfg["experiments"] = {bad: cfg["experiments"]["tiny"]}
    with pytest.raises(ConfigError, match="not safe as a file name") as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)
    cfg = tiny_config(method_options={bad: {}})
    with pytest.raises(ConfigError, match="method name .* not safe"):
        validate_config(cfg)


def test_safe_names_pass():
    cfg = tiny_config()
    cfg["experiments"] = {"cifar2-resnet9_v1.0": cfg["experiments"]["tiny"]}
    assert resolve_experiment(validate_config(cfg), "cifar2-resnet9_v1.0")["name"] == "cifar2-resnet9_v1.0"


# -- regression --------------------------------------------------------------------------------
@pytest.mark.parametrize("change,message", [
    ({"measurement": "margin"}, "measurement margin"),
    ({"metrics": ["lds", "mislabel_auc"]}, "mislabel_auc"),
    ({"pruning": {"methods": ["grad_dot"]}}, "pruning"),
])
def test_regression_refuses_classification_only_settings(change, message):
    cfg = tiny_config(kind="regression", dataset={"name": "sklearn", "loader": "load_diabetes"}, **change)
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


def test_regression_defaults_to_loss_measurement_and_float_targets(tmp_path):
    exp = _exp(tmp_path, {"name": "sklearn", "loader": "load_diabetes", "n_train": 50, "n_val": 10, "n_query": 5},
               kind="regression")
    assert exp.cfg["measurement"] == "loss" and exp.n_outputs == 1
    assert exp.splits.train_y.dtype == torch.float32 and exp.build_model(0)(exp.splits.train_x[:2]).shape == (2, 1)


def test_regression_if_ekfac_lds_beats_random_on_diabetes(tmp_path):
    """Ground truth by brute force: retrain on 40 random halves (2 seeds each), measure the query
    losses; LDS = Spearman (per query, over subsets) of the summed scores vs the measured loss."""
    from tda_core.training import Run, train_models

    exp = _exp(tmp_path, {"name": "sklearn", "loader": "load_diabetes", "n_train": 80, "n_val": 20,
                          "n_query": 12, "n_test": 50, "standardize": True},
               kind="regression", model={"name": "mlp", "hidden": [16], "activation": "tanh"},
               train={"optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "batch_size": 20, "epochs": 100,
                      "n_checkpoints": 2, "weight_decay": 0.01},  # weight decay: near-unique optimum
               seeds=1, groundtruth={"n_subsets": 40, "alpha": 0.5, "seeds_per_subset": 2, "shard_size": 40})
    _, scores = _train_and_score(exp, ("if_ekfac", "random"))
    s, masks = exp.splits, exp.masks()
    runs = [Run(seed, m) for m in masks for seed in (0, 1)]
    results = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device)
    from tda_core.stages.common import measure

    measured = np.stack([measure(exp, r.params, s.query_x, s.query_y) for r in results]).reshape(40, 2, -1)
    actual = measured.mean(1)
    lds = {}
    for m, tau in scores.items():
        predicted = masks.astype(np.float64) @ tau.T.astype(np.float64)  # [subsets, Q]
        lds[m] = float(np.mean([spearmanr(predicted[:, q], actual[:, q])[0] for q in range(tau.shape[0])]))
    print("regression LDS", lds)
    assert lds["if_ekfac"] >= 0.3 and abs(lds["random"]) < 0.2, lds
    # the leaderboard's paired test (joint bootstrap, Holm) separates them
    from tda_core.metrics.compare import compare_methods
    from tda_core.metrics.groundtruth import GroundTruth
    from tda_core.metrics.registry import get_metric
    from tda_core.scores import Scores

    gt = GroundTruth(masks=masks, subset=measured)
    res = {m: get_metric("lds")(Scores.from_arrays([tau], method=m), gt) for m, tau in scores.items()}
    assert res["if_ekfac"]["value"] == pytest.approx(lds["if_ekfac"])  # the metric agrees with the brute force
    cmp = compare_methods({m: r["value"] for m, r in res.items()}, {m: np.asarray(r["replicates"]) for m, r in res.items()})
    assert cmp["best"] == "if_ekfac" and cmp["methods"]["random"]["tied_with_best"] is False, cmp["methods"]


def test_regression_expected_fisher_is_the_ggn_and_sampled_approaches_it(tmp_path):
    """For a linear model f = W x + b the GGN of 0.5 (f - y)^2 is mean_n a_n a_n^T (a = [x, 1]),
    computed here directly; the expected Fisher equals it, the sampled one is close."""
    from tda_core.curvature import fit_curvature

    exp = _exp(tmp_path, {"name": "sklearn", "loader": "load_diabetes", "n_train": 200, "n_val": 10, "n_query": 5,
                          "standardize": True}, kind="regression", model={"name": "mlp", "hidden": []})
    model, x = exp.build_model(0), exp.splits.train_x
    params = dict(model.named_parameters())
    a = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    ggn = a.T @ a / len(x)
    for fisher, n, tol in (("expected", 1, 1e-6), ("sampled", 400, 0.1)):
        dense = fit_curvature(model, params, exp.task, x, kind="ekfac", fisher=fisher, n_samples=n).dense()
        err = float((dense - ggn).norm() / ggn.norm())
        assert err < tol, (fisher, err)
