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
