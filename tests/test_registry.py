"""The method and metric registries: rows are plain data (no imports), and the classes agree with them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tda_core.methods.registry import SEED_USAGES, get_method, known_methods, method_entry
from tda_core.metrics.registry import get_metric, known_metrics, metric_target
from tda_core.targets import TARGETS


@pytest.mark.parametrize("name", known_methods())
def test_method_class_agrees_with_its_row(name):
    row, cls = method_entry(name), get_method(name)
    assert cls.name == name
    assert row.seeds in SEED_USAGES
    assert cls.ensemble == row.ensemble == (row.seeds != "per_seed")
    assert cls.per_seed_samples == row.per_seed_samples == (row.seeds == "per_seed_samples")
    # no class overrides the registry's flags with its own (one source of truth)
    for klass in cls.__mro__:
        for attr in ("ensemble", "per_seed_samples"):
            if attr in vars(klass):
                assert klass.__name__ == "Method", f"{klass.__name__} sets {attr}; declare it in the registry row"


def test_unregistered_method_defaults_to_per_seed():
    from tda_core.methods.base import Method

    class Mine(Method):
        name = "not_registered"

    assert not Mine.ensemble and not Mine().per_seed_samples


@pytest.mark.parametrize("name", known_metrics())
def test_metric_targets_are_known(name):
    assert callable(get_metric(name))
    assert metric_target(name) in TARGETS
    assert not hasattr(get_metric(name), "target"), "declare a metric's target in metrics/registry.py"


def test_registry_lookups_import_no_torch():
    code = ("import sys; from tda_core.methods.registry import known_methods, method_entry; "
            "from tda_core.metrics.registry import known_metrics, metric_target; "
            "from tda_core.config import n_shards, load_config; "
            "[method_entry(m).ensemble for m in known_methods()]; [metric_target(m) for m in known_metrics()]; "
            "load_config('workflow/config/config.yaml'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"
