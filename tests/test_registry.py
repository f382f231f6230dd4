"""The method and metric registries: rows are plain data (no imports), and the classes agree with them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tda_core.errors import ConfigError
from tda_core.methods.registry import SEED_USAGES, builtin_methods, get_method, method_entry
from tda_core.metrics.registry import get_metric, known_metrics, metric_target
from tda_core.targets import TARGETS


@pytest.mark.parametrize("name", builtin_methods())
def test_method_class_agrees_with_its_row(name):
    row, cls = method_entry(name), get_method(name)
    assert cls.name == name and row.source == "built-in"
    assert row.seed_usage in SEED_USAGES
    assert cls.seed_usage == row.seed_usage and cls.options is row.options
    assert cls.all_seeds_at_once == row.all_seeds_at_once == (row.seed_usage != "per_seed")
    assert cls.per_seed_samples == row.per_seed_samples == (row.seed_usage == "per_seed_samples")
    # no class overrides the registry's seeds, flags or options with its own (one source of truth)
    for klass in cls.__mro__:
        for attr in ("seed_usage", "options", "all_seeds_at_once", "per_seed_samples"):
            if attr in vars(klass):
                assert klass.__name__ == "Method", f"{klass.__name__} sets {attr}; declare it in the registry row"
    # the class reads its defaults from the declared options (no defaults dict of its own)
    method = cls()
    assert method.opts == {k: o.default for k, o in row.options.items()}


@pytest.mark.parametrize("name", builtin_methods())
def test_declared_options_have_help_and_valid_defaults(name):
    for key, opt in method_entry(name).options.items():
        assert opt.help and "\n" not in opt.help, f"{name}.{key} needs one line of help"
        assert opt.check(opt.default) is None, f"{name}.{key}: default {opt.default!r} fails its own type"


def test_unknown_option_and_bad_type_fail_at_construction():
    with pytest.raises(ConfigError, match=r"method 'trak' has no option 'proj_dimm'; known options: .*proj_dim"):
        get_method("trak")(proj_dimm=64)
    with pytest.raises(ConfigError, match=r"option 'proj_dim' must be int, not str"):
        get_method("trak")(proj_dim="64")
    with pytest.raises(ConfigError, match=r"option 'dtype' must be one of float32\|float64"):
        get_method("unrolled")(dtype="float16")
    m = get_method("trak")(proj_dim=64, max_params=10)
    assert m.opts["proj_dim"] == 64 and m.opts["proj_type"] == "rademacher" and m.max_params == 10
    assert "max_params" not in m.opts and m.given == {"proj_dim": 64}
    # d-TDA passes its options on to the base estimator, checked there too
    d = get_method("dtda_if")(fisher="expected")
    assert d.estimator.opts["fisher"] == "expected"


def test_unregistered_method_defaults_to_per_seed():
    from tda_core.methods.base import Method

    class Mine(Method):
        name = "not_registered"

    assert not Mine.all_seeds_at_once and not Mine().per_seed_samples
    assert Mine.seed_usage == "per_seed" and Mine.options == {} and Mine().opts == {}
    with pytest.raises(ConfigError, match="has no option 'x'"):
        Mine(x=1)

    class Pooled(Method):  # a plugin declares its own seeds usage and options
        name = "pooled_plugin"
        seeds = "pooled"
        options = {"k": 3}

    assert Pooled.all_seeds_at_once and not Pooled.per_seed_samples and Pooled(k=4).opts == {"k": 4}


def test_subclass_of_a_builtin_inherits_its_row():
    from tda_core.methods.source import Source

    class MySource(Source):
        name = "my_source"

    assert MySource.options is method_entry("source").options and MySource().opts["n_segments"] == 3


@pytest.mark.parametrize("name", known_metrics())
def test_metric_targets_are_known(name):
    assert callable(get_metric(name))
    assert metric_target(name) in TARGETS
    assert not hasattr(get_metric(name), "target"), "declare a metric's target in metrics/registry.py"


def test_registry_lookups_import_no_torch():
    code = ("import sys; from tda_core.methods.registry import known_methods, method_entry; "
            "from tda_core.metrics.registry import known_metrics, metric_target; "
            "from tda_core.config import n_shards, load_config; "
            "[(method_entry(m).all_seeds_at_once, method_entry(m).options) for m in known_methods()]; "
            "[metric_target(m) for m in known_metrics()]; "
            "load_config('workflow/config/config.yaml'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"
