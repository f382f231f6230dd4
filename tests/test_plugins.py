"""Bring your own method: entry-point plugins (group tda_bench.methods), "module:Class" entries in an
experiment's methods, their declared seeds and options, name clashes, and a real out-of-tree package
(examples/plugin_method) through the whole tiny workflow."""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import TINY_WORKFLOW_GROUP, copy_workflow_run, run_snakemake, tiny_config

from tda_core.config import validate_config
from tda_core.errors import ConfigError
from tda_core.methods import registry

MODULE = '''
import numpy as np
from tda_core.methods.base import Method
from tda_core.methods.grad_dot import GradDot
from tda_core.methods.options import Option


class Halved(GradDot):
    name = "halved_grad_dot"
    options = {"factor": Option(0.5, "scale of grad_dot")}

    def score(self, ctx):
        return self.opts["factor"] * super().score(ctx)


class Pooled(Method):
    name = "my_pooled"
    seed_usage = "pooled"


class Unnamed(Method):
    pass


class Clash(GradDot):
    pass  # inherits the name grad_dot


class BadSeeds(Method):
    name = "bad_seeds"
    seeds = "sometimes"
'''


@pytest.fixture
def fresh_registry(monkeypatch, tmp_path):
    """A registry without plugin/inline rows, a module `my_methods` on sys.path, no entry points."""
    (tmp_path / "my_methods.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_EXTRA", {})
    monkeypatch.setenv(registry.PATHS_ENV, "{}")
    eps: list = []
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [e for e in eps if e.group == group])
    registry.plugin_entry_points.cache_clear()
    yield eps
    registry.plugin_entry_points.cache_clear()
    sys.modules.pop("my_methods", None)


def _ep(name, value):
    return importlib.metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)


def test_module_class_entries_are_named_by_their_class(fresh_registry):
    cfg = tiny_config(methods=["random", "my_methods:Halved", "my_methods:Pooled"],
                      method_options={"halved_grad_dot": {"factor": 2.0}})
    exp = validate_config(cfg)["experiments"]["tiny"]
    assert exp["methods"] == ["random", "halved_grad_dot", "my_pooled"]
    row = registry.method_entry("halved_grad_dot")
    assert row.path == "my_methods:Halved" and row.source == "inline" and row.seed_usage == "per_seed"
    assert set(row.options) == {"factor"}
    assert registry.method_entry("my_pooled").all_seeds_at_once
    # job processes started from this one find the name through the environment
    assert '"halved_grad_dot": "my_methods:Halved"' in os.environ[registry.PATHS_ENV]
    cfg = tiny_config(methods=["my_methods:Halved"], method_options={"halved_grad_dot": {"factr": 2.0}})
    with pytest.raises(ConfigError, match="method 'halved_grad_dot' has no option 'factr'; known options: factor"):
        validate_config(cfg)


@pytest.mark.parametrize("entry,message", [
    ("my_methods:Clash", "experiment 'tiny': method 'my_methods:Clash' is named 'grad_dot' like a built-in method"),
    ("my_methods:Unnamed", "name 'my_methods:Unnamed' is not safe as a file name"),
    ("my_methods:BadSeeds", "seed_usage must be one of per_seed, pooled, per_seed_samples, not 'sometimes'"),
    ("my_methods:Nope", "module 'my_methods' has no 'Nope'"),
    ("my_methods:np", "is not a class"),
    ("no_such_module:X", "cannot import module 'no_such_module': ModuleNotFoundError"),
])
def test_bad_module_class_entries_fail_in_one_line(fresh_registry, entry, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(tiny_config(methods=["random", entry]))
    assert "\n" not in str(err.value)


def test_entry_point_plugins(fresh_registry):
    fresh_registry.append(_ep("halved_grad_dot", "my_methods:Halved"))
    assert "halved_grad_dot" in registry.known_methods() and "my_methods" not in sys.modules  # listing imports nothing
    exp = validate_config(tiny_config(methods=["random", "halved_grad_dot"],
                                      method_options={"halved_grad_dot": {"factor": 3}}))["experiments"]["tiny"]
    assert exp["methods"] == ["random", "halved_grad_dot"]
    row = registry.method_entry("halved_grad_dot")
    assert row.source.startswith("plugin") and registry.get_method("halved_grad_dot").__name__ == "Halved"
    with pytest.raises(ConfigError, match="method 'halved_grad_dot' option 'factor' must be float, not str"):
        validate_config(tiny_config(methods=["halved_grad_dot"], method_options={"halved_grad_dot": {"factor": "x"}}))


def test_entry_point_named_like_a_builtin_fails_in_one_line(fresh_registry):
    fresh_registry.append(_ep("trak", "my_methods:Halved"))
    with pytest.raises(ConfigError, match=r"plugin method 'trak' \(my_methods:Halved, package .*\) has the name "
                                          "of a built-in method") as err:
        validate_config(tiny_config())
    assert "\n" not in str(err.value)


def test_entry_point_whose_class_has_another_name_fails(fresh_registry):
    fresh_registry.append(_ep("other", "my_methods:Halved"))
    with pytest.raises(ConfigError, match="plugin method 'other': its class my_methods:Halved is named 'halved_grad_dot'"):
        validate_config(tiny_config(methods=["other"]))


@pytest.mark.slow
@pytest.mark.xdist_group(TINY_WORKFLOW_GROUP)
def test_example_plugin_package_reaches_the_leaderboard(repo, tmp_path, tiny_workflow_run):
    """pip-install examples/plugin_method into a temporary prefix; its method (entry point) and an inline
    "module:Class" method run through the tiny workflow and get leaderboard rows. The workflow runs on a
    copy of the shared tiny.yaml run: methods are outside the config hash, so no model is trained again."""
    site = tmp_path / "site"
    src = tmp_path / "src"
    shutil.copytree(repo / "examples" / "plugin_method", src)  # the build writes egg-info beside the sources
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True, text=True, timeout=300)
    (tmp_path / "inline_methods.py").write_text(textwrap.dedent('''
        from tda_core.methods.grad_dot import GradDot


        class Twice(GradDot):
            name = "twice_grad_dot"

            def score(self, ctx):
                return 2 * super().score(ctx)
    '''))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(tmp_path), str(repo)])}
    env.pop(registry.PATHS_ENV, None)

    r = subprocess.run([sys.executable, "-m", "tda_core.cli", "methods", "grad_norm_dot"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "grad_norm_dot" in r.stdout and "power" in r.stdout and "plugin (tda-bench-example)" in r.stdout

    cfg = tmp_path / "config.yaml"
    cfg.write_text((repo / "workflow/config/tiny.yaml").read_text()
                   .replace("tracking: {mode: offline, project: tda-bench-tiny}", "tracking: {mode: none}")
                   .replace("removal: {", "# removal: {")  # tiny.yaml's top-k removal is tested in test_workflow
                   .replace("methods: [random, grad_dot, tracin]",
                            "methods: [grad_dot, grad_norm_dot, 'inline_methods:Twice']\n"
                            "    method_options: {grad_norm_dot: {power: 0.5}}"))
    work = copy_workflow_run(tiny_workflow_run, tmp_path / "work")
    r = run_snakemake(work, configfile=cfg, cores=1, env=env, check=False, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    df = pd.read_csv(work / "results" / "leaderboard.csv")
    lds = df[(df.metric == "lds") & (df.variant == "per-seed")].set_index("method")
    assert set(lds.index) == {"grad_dot", "grad_norm_dot", "twice_grad_dot"}
    assert (lds.loc[["grad_norm_dot", "twice_grad_dot"], "status"] == "ok").all()
    # twice grad_dot: the same rank correlations as grad_dot
    assert lds.loc["twice_grad_dot", "value"] == pytest.approx(lds.loc["grad_dot", "value"])
    side = json.loads((work / "results/tiny-mlp/scores/grad_norm_dot/seed0.json").read_text())
    assert side["options"] == {"power": 0.5} and side["status"] == "ok"
