"""Tuning sensitivity, config side: an experiment's `tuning:` grid -> method variants (torch-free).

    tuning: {if_ekfac: {damping_rel: [0.001, 0.01, 1.0]}, trak: {proj_dim: [64, 1024]}}

Each grid value becomes a method *variant* named `{method}.{option}-{value}` (e.g.
`if_ekfac.damping_rel-0.001`, a safe file name): its own attribute job (query target only) with the
method's options from `method_options` plus that one value. The method's own row (its configured
setting, the "default") is the grid's reference point, so a grid value equal to it makes no variant.
Variants are evaluated only by the tune stage (tda_core/stages/tune.py, LDS with held-out selection),
never by the evaluate stage: they are not rows of the main tables.

The registry resolves a variant's name to its base method's row (methods/registry.py, method_entry).
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .methods.registry import SEP_OPTION, SEP_VALUE, split_variant  # noqa: F401 (variants are named there)


def value_text(value: Any) -> str:
    """A grid value as it appears in a variant name (floats in %g: 0.001, 1e-05)."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def variant_name(method: str, option: str, value: Any) -> str:
    return f"{method}{SEP_OPTION}{option}{SEP_VALUE}{value_text(value)}"


def default_value(cfg: dict, method: str, option: str) -> Any:
    """The option's value in the method's own row: method_options, else the declared default."""
    from .methods.registry import method_entry

    given = cfg.get("method_options", {}).get(method, {})
    return given[option] if option in given else method_entry(method).options[option].default


def check_tuning(name: str, cfg: dict) -> None:
    """One-line ConfigErrors: a tuned method the experiment does not list, an option it does not declare,
    a grid value of the wrong type, a variant name that is not a safe file name."""
    from .layout import check_safe_name
    from .methods import options as O
    from .methods.registry import method_entry

    for method, grid in (cfg.get("tuning") or {}).items():
        if method not in cfg["methods"]:
            raise ConfigError(f"experiment '{name}': tuning.{method} is given, but method '{method}' is not in its "
                              f"methods [{', '.join(cfg['methods'])}] (its own row is the grid's default point)")
        declared = method_entry(method).options
        for option, values in grid.items():
            if option not in declared:
                raise ConfigError(f"experiment '{name}': tuning.{method}: {O.message(method, option, None, declared)}")
            for v in values:
                why = declared[option].check(v)
                if why:
                    raise ConfigError(f"experiment '{name}': tuning.{method}.{option}: "
                                      f"{O.message(method, option, why, declared)}")
                check_safe_name(variant_name(method, option, v), f"experiment '{name}': tuning variant")
            if len({value_text(v) for v in values}) != len(values):
                raise ConfigError(f"experiment '{name}': tuning.{method}.{option} lists a value twice: {values}")


def grid_points(cfg: dict) -> list[dict]:
    """Every (method, option, value) of the experiment's grid in config order, the default point included:
    {method, option, value, default (bool), scores: the method or variant whose scores it reads}."""
    out = []
    for method, grid in (cfg.get("tuning") or {}).items():
        for option, values in grid.items():
            default = default_value(cfg, method, option)
            out.append({"method": method, "option": option, "value": default, "default": True, "scores": method})
            for v in values:
                if value_text(v) != value_text(default):
                    out.append({"method": method, "option": option, "value": v, "default": False,
                                "scores": variant_name(method, option, v)})
    return out


def variants(cfg: dict) -> dict[str, dict]:
    """variant name -> {method, option, value, options: the base's method_options with the grid value}."""
    out = {}
    for p in grid_points(cfg):
        if not p["default"]:
            options = {**cfg.get("method_options", {}).get(p["method"], {}), p["option"]: p["value"]}
            out[p["scores"]] = {"method": p["method"], "option": p["option"], "value": p["value"], "options": options}
    return out
