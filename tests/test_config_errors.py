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
    (lambda c: c["experiments"]["tiny"]["model"].update(name="resnet"), r"experiment 'tiny': unknown model 'resnet'; known: .*resnet9"),
    (lambda c: c["experiments"]["tiny"].update(epochz=3), "epochz"),
    (lambda c: c.update(run_experiments=["ghost"]), "unknown experiment 'ghost'"),
])
def test_schema_and_names_fail_in_one_line(mutate, message):
    cfg = tiny_config()
    mutate(cfg)
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("metric", ["dlds_variance", "dlds_w2"])
@pytest.mark.parametrize("groundtruth,ok", [
    ({}, False),                                                   # same_epochs, 2 seeds per subset
    ({"steps": "same_steps"}, False),                              # 2 seeds per subset
    ({"seeds_per_subset": 4}, False),                              # same_epochs
    ({"steps": "same_steps", "seeds_per_subset": 3}, False),
    ({"steps": "same_steps", "seeds_per_subset": 4}, True),
])
def test_spread_metrics_need_same_steps_and_four_seeds_per_subset(metric, groundtruth, ok):
    cfg = tiny_config(metrics=["lds", metric], groundtruth=groundtruth)
    if ok:
        validate_config(cfg)
        return
    with pytest.raises(ConfigError, match=f"lists {metric}: these need groundtruth.steps: same_steps") as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


def test_spread_metric_error_stops_a_dry_run(repo, tmp_path):
    """`snakemake -n` (plan time) stops at dlds_w2 on a same_epochs ground truth, in one line."""
    bad = tmp_path / "bad.yaml"
    text = (repo / "workflow/config/tiny.yaml").read_text()
    assert "metrics:" not in text  # tiny.yaml leaves metrics at their default
    bad.write_text(text.replace("methods: [random, grad_dot, tracin]",
                                "methods: [random, grad_dot, tracin]\n    metrics: [lds, dlds_w2]"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(bad), "--cores", "1", "-n"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    lines = [line for line in out.splitlines() if "dlds_w2" in line]
    assert r.returncode != 0 and len(lines) == 1 and "these need groundtruth.steps: same_steps" in lines[0], out
    assert "Traceback" not in out


def test_defaults_are_filled_and_hash_ignores_method_list():
    cfg = validate_config(tiny_config())
    exp = resolve_experiment(cfg, "tiny")
    assert exp["train"]["weight_decay"] == 0.001 and exp["kind"] == "classification"
    other = dict(exp, methods=["random"])
    assert config_hash(other) == exp["config_hash"]
    assert config_hash(dict(exp, seeds=5)) != exp["config_hash"]


def test_shipped_configs_validate(repo):
    for name in ("config.yaml", "tiny.yaml", "extended.yaml", "paper.yaml"):
        assert load_config(repo / "workflow" / "config" / name)["experiments"]


def _tda(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tda_core.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_unknown_experiment_and_method_are_one_line(tmp_path, repo):
    cfg = repo / "workflow" / "config" / "tiny.yaml"
    out = tmp_path / "x.json"
    r = _tda("attribute", "--config", str(cfg), "--experiment", "ghost", "--method", "random", "--seed", "0")
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


# -- method options: declared per method (tda_core/methods/options.py), checked at config time --------
@pytest.mark.parametrize("methods,options,message", [
    (["random", "trak"], {"trak": {"proj_dimm": 64}},
     "experiment 'tiny': method 'trak' has no option 'proj_dimm'; known options: damping_rel, dtype, max_params, "
     "proj_dim, proj_seed, proj_type, rcond"),
    (["trak"], {"trak": {"proj_dim": "64"}},
     "experiment 'tiny': method 'trak' option 'proj_dim' must be int, not str ('64'); known options: "),
    (["if_ekfac"], {"if_ekfac": {"fisher": "exact"}},
     "experiment 'tiny': method 'if_ekfac' option 'fisher' must be one of sampled|expected, not 'exact'; "
     "known options: cache, damping, damping_rel, fisher, "),
    (["if_ekfac"], {"if_ekfac": {"cache": 1}}, "experiment 'tiny': method 'if_ekfac' option 'cache' must be bool, "
     "not int (1); known options: "),
    (["unrolled"], {"unrolled": {"query_chunk": 2.5}},
     "experiment 'tiny': method 'unrolled' option 'query_chunk' must be int or None, not float (2.5); known options: "
     "dtype, max_params, query_chunk"),
    (["random", "grad_dot"], {"grad_dot": {"anything": 1}},
     "experiment 'tiny': method 'grad_dot' has no option 'anything'; known options: max_params"),
    (["random", "grad_dot"], {"trak": {"proj_dim": 64}},
     "experiment 'tiny': method_options.trak is given, but method 'trak' is not in its methods [random, grad_dot] "
     "(known options of trak: damping_rel, dtype, max_params, proj_dim, proj_seed, proj_type, rcond)"),
])
def test_bad_method_options_fail_in_one_line(methods, options, message):
    cfg = tiny_config(methods=methods, method_options=options)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_good_method_options_pass():
    cfg = tiny_config(methods=["trak", "if_ekfac", "dtda_if", "unrolled"], method_options={
        "trak": {"proj_dim": 64, "damping_rel": 0, "rcond": None}, "if_ekfac": {"damping": 1, "fisher": "expected"},
        "dtda_if": {"max_params": 100, "n_fisher_samples": 2}, "unrolled": {"query_chunk": 4, "dtype": "float64"}})
    assert validate_config(cfg)["experiments"]["tiny"]["method_options"]["trak"] == {
        "proj_dim": 64, "damping_rel": 0, "rcond": None}


def test_dry_run_with_a_misspelt_option_fails_in_one_line(repo, tmp_path):
    """`snakemake -n` stops at the typo (before, trak ran with its default and the sidecar recorded the typo)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((repo / "workflow/config/tiny.yaml").read_text().replace(
        "methods: [random, grad_dot, tracin]", "methods: [random, grad_dot, tracin, trak]\n"
        "    method_options: {trak: {proj_dimm: 64}}"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(bad), "--cores", "1", "-n"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    lines = [line for line in out.splitlines() if "proj_dimm" in line]
    assert lines == ["tda-bench: experiment 'tiny-mlp': method 'trak' has no option 'proj_dimm'; known options: "
                     "damping_rel, dtype, max_params, proj_dim, proj_seed, proj_type, rcond"], out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()


def test_tda_methods_lists_seeds_options_and_help_without_torch(repo):
    code = ("import sys; from tda_core.cli import main; rc = main(['methods']); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["method", "seeds", "source", "option", "type", "=", "default", "help"]
    assert any(line.split()[:6] == ["trak", "pooled", "built-in", "damping_rel", "float", "="] for line in lines)
    assert any("proj_dim" in line and "int = 256" in line and "random projection" in line for line in lines)
    assert any(line.startswith("dtda_if ") and "per_seed_samples" in line for line in lines)
    assert lines[-1] == "TORCH False"
