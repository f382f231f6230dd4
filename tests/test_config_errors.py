"""Bad input -> one clear line and a non-zero exit, nothing overwritten."""
import json
import subprocess
import sys

import pytest
from conftest import tiny_config

from tda_core.config import config_hash, load_config, resolve_experiment, validate_config
from tda_core.errors import ConfigError


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["experiments"]["tiny"]["groundtruth"].update(alpha=1.5), r"groundtruth\.alpha"),
    (lambda c: c["experiments"]["tiny"]["groundtruth"].update(alpha=0.0), r"groundtruth\.alpha"),
    (lambda c: c["experiments"]["tiny"].update(methods=["nope"]), "unknown method 'nope'"),
    (lambda c: c["experiments"]["tiny"]["model"].update(name="resnet"), r"model\.name"),
    (lambda c: c["experiments"]["tiny"].update(epochz=3), "epochz"),
    (lambda c: c.update(run_experiments=["ghost"]), "unknown experiment 'ghost'"),
])
def test_schema_and_names_fail_in_one_line(mutate, message):
    cfg = tiny_config()
    mutate(cfg)
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


def test_defaults_are_filled_and_hash_ignores_method_list():
    cfg = validate_config(tiny_config())
    exp = resolve_experiment(cfg, "tiny")
    assert exp["train"]["weight_decay"] == 0.001 and exp["kind"] == "classification"
    other = dict(exp, methods=["random"])
    assert config_hash(other) == exp["config_hash"]
    assert config_hash(dict(exp, seeds=5)) != exp["config_hash"]


def test_shipped_configs_validate(repo):
    for name in ("config.yaml", "tiny.yaml"):
        assert load_config(repo / "workflow" / "config" / name)["experiments"]


def _tda(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tda_core.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_unknown_experiment_and_method_are_one_line(tmp_path, repo):
    cfg = repo / "workflow" / "config" / "tiny.yaml"
    out = tmp_path / "x.json"
    r = _tda("attribute", "--config", str(cfg), "--experiment", "ghost", "--method", "random", "--seed", "0",
             "--out", str(out))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["tda: error: unknown experiment 'ghost'; known: tiny-mlp"]
    r = _tda("prepare", "--config", str(tmp_path / "missing.yaml"), "--experiment", "x", "--out-config",
             str(out), "--out-masks", str(tmp_path / "m.npy"))
    assert r.returncode == 2 and "config file not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_missing_data_dir_leaves_existing_outputs_untouched(tmp_path):
    cfg = tiny_config(dataset={"name": "mnist"})
    cfg["data_dir"] = str(tmp_path / "no-such-dir")
    validate_config(cfg)
    exp = resolve_experiment(cfg, "tiny")
    out_cfg = tmp_path / "config.json"
    out_cfg.write_text("previous")
    r = _tda("prepare", "--experiment-json", json.dumps(exp), "--out-config", str(out_cfg),
             "--out-masks", str(tmp_path / "m.npy"))
    assert r.returncode == 2
    assert "data_dir" in r.stderr and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out_cfg.read_text() == "previous"


def test_cli_edited_config_json_is_rejected(tmp_path):
    cfg = validate_config(tiny_config())
    exp = resolve_experiment(cfg, "tiny")
    exp["seeds"] = 9  # edited by hand: hash no longer matches
    path = tmp_path / "config.json"
    path.write_text(json.dumps(exp))
    r = _tda("train", "--exp-config", str(path), "--seed", "0", "--out", str(tmp_path / "m.pt"))
    assert r.returncode == 2 and "edited by hand" in r.stderr
