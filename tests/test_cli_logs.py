"""Debugging a failed job: every `tda` sub-command prints one line on stderr and leaves the traceback in the
log file the rule passes (--log), never a 0-byte log; a plugin returning scores of the wrong shape is one
line naming the method and both shapes."""
from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import tiny_config

from tda_core.api import load_experiment
from tda_core.cli import main
from tda_core.methods import registry
from tda_core.stages.train import train_full

PLUGIN = '''
import numpy as np
from tda_core.methods.base import Method


class Boom(Method):
    name = "boom"

    def score(self, ctx):
        return helper_that_fails(ctx)


def helper_that_fails(ctx):
    raise RuntimeError("the plugin's own bug")


class Wrong(Method):
    name = "wrong_shape"

    def score(self, ctx):
        return np.zeros(ctx.n_train)  # forgot the query axis


class NotAnArray(Method):
    name = "not_an_array"

    def score(self, ctx):
        return {"scores": 1}
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny experiment with seed 0 trained, its workflow config YAML (methods: the plugin classes)."""
    root = tmp_path_factory.mktemp("cli_logs")
    (root / "cli_log_methods.py").write_text(PLUGIN)
    sys.path.insert(0, str(root))
    cfg = tiny_config(seeds=1, train={"n_checkpoints": 2},
                      methods=["random", "cli_log_methods:Boom", "cli_log_methods:Wrong",
                               "cli_log_methods:NotAnArray"])
    cfg["results_dir"] = str(root / "results")
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    exp = load_experiment(str(root / "config.yaml"), "tiny")
    train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    yield root, exp
    sys.path.remove(str(root))
    sys.modules.pop("cli_log_methods", None)
    registry._EXTRA.clear()


def _attribute(root, method: str, log=None) -> list[str]:
    return [*(["--log", str(log)] if log else []), "attribute", "--config", str(root / "config.yaml"),
            "--experiment", "tiny", "--tracking", '{"mode": "none"}', "--method", method, "--seed", "0"]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_an_exception_in_a_method_is_one_line_and_its_traceback_is_in_the_log(trained, capsys):
    root, _ = trained
    log = root / "results" / "logs" / "tiny" / "attribute_boom.log"
    rc = main(_attribute(root, "boom", log))
    err = capsys.readouterr().err
    assert rc == 1
    assert _lines(err) == [f"tda: error: RuntimeError: the plugin's own bug (traceback in {log})"]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "helper_that_fails" in text
    assert "cli_log_methods.py" in text and "RuntimeError: the plugin's own bug" in text


def test_without_log_the_traceback_goes_to_a_named_temporary_file(trained, capsys):
    root, _ = trained
    rc = main(_attribute(root, "boom"))
    lines = _lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("tda: error: RuntimeError: the plugin's own bug")
    where = lines[0].split("(traceback in ")[1].rstrip(")")
    assert "helper_that_fails" in open(where).read()


def test_a_user_error_is_one_line_in_the_console_and_in_the_log(trained, capsys):
    root, _ = trained
    log = root / "user_error.log"
    rc = main(["--log", str(log), "attribute", "--config", str(root / "config.yaml"), "--experiment", "nope",
               "--method", "random", "--seed", "0"])
    lines = _lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("tda: error:") and "nope" in lines[0]
    assert "nope" in log.read_text() and "Traceback" not in log.read_text()


@pytest.mark.parametrize("method, message", [
    ("wrong_shape", "wrong_shape.score returned an array of shape [120]; expected [Q, N] = [12, 120]"),
    ("not_an_array", "not_an_array.score returned dict, not an array of scores"),
])
def test_a_plugin_returning_the_wrong_shape_is_one_line_and_a_failed_row(trained, capsys, method, message):
    root, exp = trained
    log = root / f"{method}.log"
    rc = main(_attribute(root, method, log))
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err and len([line for line in _lines(err) if message in line]) == 1, err
    assert _lines(err)[-1] == f"tda: {method} seed 0 (query): failed"  # the job's progress line
    sidecar = json.loads(exp.scores_path(method, "0", "query").with_suffix(".json").read_text())
    assert sidecar["status"] == "failed" and message in sidecar["reason"]
    assert message in log.read_text()


def test_every_rule_passes_its_log_file_to_tda(repo):
    """The per-job log Snakemake points to is the file `tda --log` writes the traceback to."""
    for smk in sorted((repo / "rules").glob("*.smk")):
        for rule in smk.read_text().split("\nrule ")[1:]:
            if "shell:" in rule and '"tda ' in rule:
                assert "log:" in rule and '"tda --log {log} ' in rule, f"{smk.name}: rule {rule.split(':')[0]}"
