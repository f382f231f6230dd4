"""Issue 18 item 1: errors at plan time (`snakemake -n`), one line each, before any job runs; and item 2's
label check (a stray label 1000 among 0-9 would silently build a 1001-class head)."""
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import tiny_config

from tda_core.config import check_plan, resolve_experiment, validate_config
from tda_core.errors import ConfigError


@pytest.fixture(autouse=True)
def _own_model_check_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no verdict from an earlier run


def _xy(n=300, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n)


def _npz_config(path, **dataset):
    exp = {"dataset": {"name": "npz", "path": str(path), "n_train": 100, "n_val": 50, "n_query": 20, **dataset},
           "model": {"name": "mlp", "hidden": [8]}}
    return {"tracking": {"mode": "none"}, "experiments": {"e": exp}}


def _plan(cfg):
    validate_config(cfg)
    for name in cfg["experiments"]:
        check_plan(resolve_experiment(cfg, name))


def _write_nan(p):
    x, y = _xy()
    x[5, 2] = np.nan
    np.savez(p, x=x, y=y)


def _write_negative(p):
    x, y = _xy()
    y[3] = -1
    np.savez(p, x=x, y=y)


def _write_mismatch(p):
    x, y = _xy()
    np.savez(p, x=x, y=y[:-1])


def _write_few(p):
    x, y = _xy(n=20)
    np.savez(p, x=x, y=y)


def _write_empty(p):
    np.savez(p, x=np.zeros((0, 6), np.float32), y=np.zeros(0, np.int64))


def _write_text(p):
    p.write_text("this is a text file, not an archive\n")


def _write_label_1000(p):
    x, y = _xy(classes=10)
    y[7] = 1000
    np.savez(p, x=x, y=y)


@pytest.mark.parametrize("write,message", [
    (_write_nan, r"non-finite value in x at row 5"),
    (_write_negative, r"class labels must be >= 0 \(found -1\)"),
    (_write_mismatch, r"'x' has 300 rows, 'y' 299"),
    (_write_few, r"20 examples, but the splits need 171"),
    (_write_empty, r"'x' holds no examples"),
    (_write_text, r"not an \.npz archive"),
    (_write_label_1000, r"labels run up to 1000 but only 11 distinct values occur .*set dataset\.n_classes"),
])
def test_bad_data_fails_at_plan_time_in_one_line(tmp_path, write, message):
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(ConfigError, match=message) as err:
        _plan(_npz_config(path))
    assert "\n" not in str(err.value) and str(err.value).startswith("experiment 'e': ")


def test_n_classes_admits_far_labels_and_sizes_the_head(tmp_path):
    from tda_core.data import load_splits

    path = tmp_path / "data.npz"
    _write_label_1000(path)
    cfg = _npz_config(path, n_classes=1001)
    _plan(cfg)  # the gap is declared: no error
    assert load_splits(resolve_experiment(cfg, "e")).n_classes == 1001
    with pytest.raises(ConfigError, match=r"label 1000 is outside dataset\.n_classes = 12"):
        _plan(_npz_config(path, n_classes=12))
    x, y = _xy(classes=10)
    np.savez(tmp_path / "trimmed.npz", x=x, y=np.where(y == 3, 4, y))  # one class never seen: a trimmed copy
    _plan(_npz_config(tmp_path / "trimmed.npz"))
    with pytest.raises(ConfigError, match=r"labels run up to 1000"):  # the prepare job refuses it too
        load_splits(resolve_experiment(validate_config(_npz_config(path)), "e"))


@pytest.mark.parametrize("mutate,message", [
    (lambda e: e.update(methods=[]), r"methods: \[\] should be non-empty"),
    (lambda e: e["groundtruth"].update(n_subsets=4), r"n_subsets: 4 is less than the minimum of 8"),
    (lambda e: e["dataset"].update(n_train=2000), r"1797 examples, but the splits need 2152"),
    (lambda e: e.update(model={"name": "torchvision", "arch": "squeezenet1_1"}),
     r"model torchvision squeezenet1_1 cannot take inputs of shape \[1, 8, 8\]"),
])
def test_bad_settings_fail_at_plan_time_in_one_line(mutate, message):
    cfg = tiny_config()
    mutate(cfg["experiments"]["tiny"])
    with pytest.raises(ConfigError, match=message) as err:
        _plan(cfg)
    assert "\n" not in str(err.value)


def test_a_compatible_model_passes_the_plan_check():
    cfg = tiny_config(model={"name": "torchvision", "arch": "squeezenet1_1", "kwargs": {}},
                      dataset={"name": "cifar10", "n_train": 100, "n_val": 10, "n_query": 10, "n_test": 10})
    _plan(cfg)  # 3 x 32 x 32 inputs: squeezenet takes them (data not read at plan time)


def _dry_run(repo, tmp_path, cfg):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(path), "--cores", "1", "-n"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["label_1000", "empty_npz", "n_subsets_4"])
def test_snakemake_dry_run_stops_with_one_line(repo, tmp_path, case):
    if case == "n_subsets_4":
        cfg = tiny_config(groundtruth={"n_subsets": 4})
        expected = "tda-bench: config error at experiments.tiny.groundtruth.n_subsets: 4 is less than the minimum of 8"
    else:
        path = tmp_path / "data.npz"
        (_write_label_1000 if case == "label_1000" else _write_empty)(path)
        cfg = _npz_config(path)
        expected = f"tda-bench: experiment 'e': {path}: " + (
            "labels run up to 1000" if case == "label_1000" else "'x' holds no examples")
    r = _dry_run(repo, tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert expected in out, out[-2000:]
    assert "Traceback" not in out and sum(expected in line for line in out.splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_model_check_cache_is_replaced_whole_not_rewritten_in_place(tmp_path, monkeypatch):
    """Plans running at once (parallel test workers) share the model-check cache: a passing check is
    written to a temporary file and renamed into place, so a reader sees the old file or the new one,
    never half of one (a rename gives the path a new inode; rewriting in place keeps the old one)."""
    import json
    import os

    from tda_core.config import _model_check_key, check_models

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout="", stderr=""))
    spec = {"experiment": "e", "model": {"name": "timm", "arch": "resnet18"}, "in_shape": [3, 8, 8], "n_out": 10}
    cache = tmp_path / "cache" / "tda-bench" / "model_checks.json"  # the autouse fixture's XDG_CACHE_HOME
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps(["an earlier verdict"]))
    before = os.stat(cache).st_ino
    check_models([spec])
    assert json.loads(cache.read_text()) == sorted(["an earlier verdict", _model_check_key(spec)])
    assert os.stat(cache).st_ino != before
    assert sorted(p.name for p in cache.parent.iterdir()) == ["model_checks.json"]  # no temporary file left
