"""A regular (non-editable) install carries everything the library reads: the config and bundle schemas are
package data."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_non_editable_install_validates_configs(tmp_path):
    src = tmp_path / "src"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "results", ".snakemake", "build", "*.egg-info",
                                                              "__pycache__", "wandb", ".pytest_cache", "tests", "bench"))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(src)], capture_output=True, text=True)
    if pip.returncode != 0 and "setuptools" in pip.stderr and "No module named" in pip.stderr:
        pytest.skip("setuptools is not installed (needed to build without isolation)")
    assert pip.returncode == 0, pip.stderr
    assert (target / "tda_core" / "schemas" / "config.schema.yaml").is_file()
    assert (target / "tda_core" / "schemas" / "bundle.schema.json").is_file()  # tda_core.bundle.SCHEMA_PATH
    code = ("import sys, tda_core; from tda_core.config import SCHEMA_PATH, load_config; "
            f"assert tda_core.__file__.startswith({str(target)!r}), tda_core.__file__; "
            f"assert SCHEMA_PATH.is_file(); c = load_config({str(ROOT / 'workflow/config/tiny.yaml')!r}); "
            "print(c['tracking']['mode'])")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "offline"


def test_readme_test_command_is_what_ci_runs():
    """README's first lines give two set-up commands; the second (install + tests) is what .ci/run runs:
    the same extras installed, the same pytest options (parallel workers included), .ci/run adding only
    --durations."""
    import re
    import shlex

    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands

    def tool_and_args(words):  # `pip ...` and `python3 -m pip ...` are the same command
        return words[words.index("-m") + 1:] if words[0].startswith("python") else words

    install, tests = (tool_and_args(shlex.split(part)) for part in commands[1].split("&&"))
    ci = [tool_and_args(shlex.split(line)) for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if re.match(r"python3? -m (pip|pytest) ", line)]
    assert len(ci) == 2, ci
    ci_install = [w for w in ci[0] if w != "-q"]
    ci_tests = [w for w in ci[1] if not w.startswith("--durations")]
    assert install == ci_install and install[:4] == ["pip", "install", "-e", ".[test,reference]"], (install, ci_install)
    assert tests == ci_tests and tests[0] == "pytest" and "-n" in tests, (tests, ci_tests)
