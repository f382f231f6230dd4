"""The one registry of attribution methods: name -> where the class lives, how it uses seeds, its options.

Adding a built-in method = one new file in tda_core/methods/ plus one row here; every experiment
that lists it, and the leaderboard, pick it up.

The built-in rows are plain data: reading them imports no method module (and so no torch), which
keeps building the Snakemake DAG cheap. How a method uses the R full-data seeds is declared here, once:

  per_seed          one score file per full-data seed, seed{r} ([Q, N], ctx.seeds = [r])
  pooled            one file "seedall" computed from all seeds together ([Q, N]; ensembles)
  per_seed_samples  one file "seedall" holding every seed's own scores ([R, Q, N]; d-TDA)

and so are its options (methods/options.py: defaults, types, one line of help each). Method.seed_usage,
Method.options (and the flags all_seeds_at_once, per_seed_samples derived from seed_usage) read the row of the
class's `name`, or of the nearest registered base class (methods/base.py).

Methods from elsewhere (bring your own method), both read by config validation:
  - plugins: installed packages that declare an entry point in the group `tda_bench.methods`
    (name = "module:Class"; the class subclasses tda_core.methods.base.Method and declares
    `seed_usage` and `options` as class attributes). Listing their names imports nothing; using one
    (an experiment lists it, `tda methods`) imports its module, and with it torch: plugins are
    imported while Snakemake builds the DAG. A plugin name equal to a built-in one is an error.
  - "module:Class" strings in an experiment's `methods:` list (the module must be importable,
    e.g. on PYTHONPATH); the method's name is the class's `name` (or else the string, which is
    then refused as no safe file name). register_path records name -> path in this process and
    in the environment variable TDA_METHOD_PATHS, so the jobs Snakemake starts resolve the name too.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import ConfigError
from ..layout import SAFE_NAME, SEED_USAGES  # score files are named by seed usage: the layout owns the names
from . import options as O
from .options import Option

__all__ = [
    "MethodEntry", "CurvatureUse", "ENTRY_POINT_GROUP", "PATHS_ENV", "SEED_USAGES", "SEP_OPTION", "SEP_VALUE",
    "builtin_methods", "plugin_entry_points", "known_methods", "register_path", "resolve_method", "method_entry",
    "split_variant", "curvature_fit", "get_method", "registry_attr", "registry_flag",
]

ENTRY_POINT_GROUP = "tda_bench.methods"
PATHS_ENV = "TDA_METHOD_PATHS"  # JSON {name: "module:Class"} of inline methods (register_path)


CURVATURE_KINDS = ("kfac", "ekfac")
# final: each seed's last checkpoint (IF); segments: each SOURCE segment's checkpoints, statistics averaged;
# segments_wavg: each segment's checkpoints with their weights averaged (source_fast)
CURVATURE_CHECKPOINTS = ("final", "segments", "segments_wavg")


@dataclass(frozen=True)
class CurvatureUse:
    """The curvature a method fits at every full-data seed (methods/influence.py seed_curvature): its kind
    and at which checkpoints. Its curvature options (Option.curvature) complete what the fit depends on."""

    kind: str
    checkpoints: str

    def __post_init__(self):
        if self.kind not in CURVATURE_KINDS or self.checkpoints not in CURVATURE_CHECKPOINTS:
            raise ValueError(f"bad curvature use {self.kind!r} at {self.checkpoints!r}")


@dataclass(frozen=True)
class MethodEntry:
    path: str  # "module:Class", imported on first use by get_method
    seed_usage: str = "per_seed"  # how it uses the R full-data seeds: one of SEED_USAGES
    options: Mapping[str, Option] = field(default_factory=dict)  # methods/options.py
    source: str = "built-in"  # built-in | plugin (distribution) | inline
    curvature: CurvatureUse | None = None  # the shared curvature fit it reads (curvature_fit); None: none

    def __post_init__(self):
        if self.seed_usage not in SEED_USAGES:
            raise ConfigError(f"{self.path}: seed_usage must be one of {', '.join(SEED_USAGES)}, not "
                              f"{self.seed_usage!r}")

    @property
    def all_seeds_at_once(self) -> bool:
        """One job over all seeds writing one 'seedall' file."""
        return self.seed_usage != "per_seed"

    @property
    def per_seed_samples(self) -> bool:
        return self.seed_usage == "per_seed_samples"


_M = "tda_core.methods."
_IF_FIT, _KFAC_FIT = CurvatureUse("ekfac", "final"), CurvatureUse("kfac", "final")
_SOURCE_FIT, _SOURCE_FAST_FIT = CurvatureUse("ekfac", "segments"), CurvatureUse("ekfac", "segments_wavg")
_METHODS: dict[str, MethodEntry] = {
    "random": MethodEntry(_M + "random_scores:RandomScores"),
    "grad_dot": MethodEntry(_M + "grad_dot:GradDot"),
    "grad_cos": MethodEntry(_M + "grad_cos:GradCos"),
    "tracin": MethodEntry(_M + "tracin:TracIn", options=O.TRACIN),
    "if_exact": MethodEntry(_M + "if_exact:IfExact", options=O.IF_EXACT),
    "if_kfac": MethodEntry(_M + "if_kfac:IfKfac", options=O.IF, curvature=_KFAC_FIT),
    "if_ekfac": MethodEntry(_M + "if_ekfac:IfEkfac", options=O.IF, curvature=_IF_FIT),
    "if_ensemble": MethodEntry(_M + "if_ensemble:IfEnsemble", seed_usage="pooled", options=O.IF, curvature=_IF_FIT),
    "source": MethodEntry(_M + "source:Source", options=O.SOURCE, curvature=_SOURCE_FIT),
    "source_fast": MethodEntry(_M + "source_fast:SourceFast", options=O.SOURCE, curvature=_SOURCE_FAST_FIT),
    "source_ensemble": MethodEntry(_M + "source_ensemble:SourceEnsemble", seed_usage="pooled", options=O.SOURCE,
                                   curvature=_SOURCE_FIT),
    "unrolled": MethodEntry(_M + "unrolled:Unrolled", options=O.UNROLLED),
    "trak": MethodEntry(_M + "trak:Trak", seed_usage="pooled", options=O.TRAK),
    # d-TDA: the base estimator on every seed's own model, with the base estimator's options
    "dtda_if": MethodEntry(_M + "dtda_if:DtdaIf", seed_usage="per_seed_samples", options=O.IF, curvature=_IF_FIT),
    "dtda_source": MethodEntry(_M + "dtda_source:DtdaSource", seed_usage="per_seed_samples", options=O.SOURCE,
                               curvature=_SOURCE_FIT),
    "dtda_unrolled": MethodEntry(_M + "dtda_unrolled:DtdaUnrolled", seed_usage="per_seed_samples", options=O.UNROLLED),
    "if_ekfac_kronfluence": MethodEntry(_M + "if_ekfac_kronfluence:IfEkfacKronfluence", options=O.KRONFLUENCE),
    "trak_traker": MethodEntry(_M + "trak_traker:TrakTraker", seed_usage="pooled", options=O.TRAK_TRAKER),
    "trackstar": MethodEntry(_M + "trackstar:TrackStar", options=O.TRACKSTAR),
    "logra": MethodEntry(_M + "logra:LoGra", options=O.LOGRA),
    "datainf": MethodEntry(_M + "datainf:DataInf", options=O.DATAINF),
    "loss_covariance": MethodEntry(_M + "loss_covariance:LossCovariance", options=O.LOSS_COVARIANCE),
}
_EXTRA: dict[str, MethodEntry] = {}  # plugin and inline rows loaded in this process


def builtin_methods() -> list[str]:
    return sorted(_METHODS)


@functools.lru_cache(maxsize=None)
def plugin_entry_points() -> dict:
    """name -> importlib.metadata.EntryPoint of the group tda_bench.methods (imports no plugin)."""
    from importlib.metadata import entry_points

    found: dict = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = _dist_name(ep)
        if ep.name in _METHODS:
            raise ConfigError(f"plugin method '{ep.name}' ({ep.value}, package {where}) has the name of a built-in "
                              f"method; rename its entry point in group {ENTRY_POINT_GROUP}")
        if ep.name in found and found[ep.name].value != ep.value:
            raise ConfigError(f"two plugin methods are named '{ep.name}': {found[ep.name].value} and {ep.value}")
        found[ep.name] = ep
    return found


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


def known_methods() -> list[str]:
    """Built-in, plugin (entry point) and registered inline method names (imports no plugin)."""
    return sorted({*_METHODS, *plugin_entry_points(), *_EXTRA})


def _load_class(path: str, what: str):
    """The Method subclass at "module:Class" (imports the module)."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ConfigError(f"{what}: {path!r} is not 'module:Class'")
    try:
        obj = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure of user code is a config error
        first = (str(e).splitlines() or [""])[0]
        raise ConfigError(f"{what}: cannot import module {module!r}: {type(e).__name__}: {first}") from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{what}: module {module!r} has no {attr!r}")
    if not isinstance(obj, type):
        raise ConfigError(f"{what}: {path} is not a class (a subclass of tda_core.methods.base.Method)")
    # base.Method by its qualified name: importing methods.base here would close an import cycle
    # (base reads its class defaults from this registry)
    if "tda_core.methods.base.Method" not in (f"{k.__module__}.{k.__qualname__}" for k in obj.__mro__):
        raise ConfigError(f"{what}: {path} is not a subclass of tda_core.methods.base.Method")
    return obj


def _row_of_class(path: str, cls, source: str) -> MethodEntry:
    """A plugin's row, from what its class declares (seed_usage, options)."""
    try:
        return MethodEntry(path, seed_usage=declared_seed_usage(cls), options=O.normalize(cls.options), source=source)
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"method {path}: {e}") from None


def register_path(path: str) -> str:
    """Register the method class at "module:Class" (an entry of an experiment's `methods:`); return
    its name: the class's `name`, else the string (refused: not a safe file name). The name is also
    recorded in os.environ[TDA_METHOD_PATHS] so that processes started from this one (the jobs of
    Snakemake) resolve it."""
    for name, row in _EXTRA.items():
        if row.path == path and row.source == "inline":
            return name
    from ..layout import check_safe_name

    cls = _load_class(path, f"method '{path}'")
    name = cls.name or path
    check_safe_name(name, f"method '{path}': the class's")
    if name in _METHODS or name in plugin_entry_points():
        kind = "built-in" if name in _METHODS else "plugin"
        raise ConfigError(f"method '{path}' is named '{name}' like a {kind} method; give the class another `name`")
    if name in _EXTRA and _EXTRA[name].path != path:
        raise ConfigError(f"methods '{_EXTRA[name].path}' and '{path}' are both named '{name}'")
    _EXTRA[name] = _row_of_class(path, cls, "inline")
    paths = _env_paths()
    paths[name] = path
    os.environ[PATHS_ENV] = json.dumps(paths, sort_keys=True)
    return name


def _env_paths() -> dict:
    try:
        paths = json.loads(os.environ.get(PATHS_ENV) or "{}")
    except json.JSONDecodeError:
        raise ConfigError(f"environment variable {PATHS_ENV} is not JSON {{name: 'module:Class'}}") from None
    return paths if isinstance(paths, dict) else {}


def resolve_method(spec: str) -> str:
    """The name of an entry of `methods:`: a known name as is, "module:Class" registered (register_path)."""
    if ":" in spec:
        return register_path(spec)
    method_entry(spec)
    return spec


def method_entry(name: str) -> MethodEntry:
    """The registry row of `name`: a built-in row imports nothing (safe while Snakemake builds the DAG);
    a plugin's row imports the plugin (its class declares seed_usage and options)."""
    if name in _METHODS:
        return _METHODS[name]
    if name in _EXTRA:
        return _EXTRA[name]
    eps = plugin_entry_points()
    if name in eps:
        ep = eps[name]
        cls = _load_class(ep.value, f"plugin method '{name}'")
        if cls.name and cls.name != name:
            raise ConfigError(f"plugin method '{name}': its class {ep.value} is named '{cls.name}'; "
                              "use one name for both (or leave the class's `name` empty)")
        _EXTRA[name] = _row_of_class(ep.value, cls, f"plugin ({_dist_name(ep)})")
        return _EXTRA[name]
    path = _env_paths().get(name)
    if path and register_path(path) == name:
        return _EXTRA[name]
    variant = split_variant(name)  # a tuning variant runs its base's class
    if variant is not None:
        return method_entry(variant[0])
    raise ConfigError(f"unknown method '{name}'; known: {', '.join(known_methods())}")


SEP_OPTION, SEP_VALUE = ".", "-"  # tuning variants (tda_core/tuning.py): {method}.{option}-{value}


def split_variant(name: str) -> tuple[str, str] | None:
    """(base method, option) if `name` reads `{method}.{option}-{value}` with a known method that declares
    that option, else None. Tries every '.' (plugin names may hold dots themselves)."""
    known = set(known_methods())
    for i, ch in enumerate(name):
        if ch != SEP_OPTION or name[:i] not in known:
            continue
        option, sep, value = name[i + 1:].partition(SEP_VALUE)
        if sep and value and option in method_entry(name[:i]).options:
            return name[:i], option
    return None


def curvature_fit(name: str, options: Mapping) -> dict | None:
    """The shared curvature fit the method `name` reads with `options` (its method_options), or None (it
    fits none, or its `cache` option is off): {"key", "kind", "checkpoints", "options"}, where "options"
    holds only the curvature options (Option.curvature) the fit depends on. Damping and every other option
    applied at score time are left out, so methods (and tuning variants) with equal curvature options
    get one key, one fit_curvature job and one folder results/{exp}/curvature/{key}/ (tda_core/layout.py)."""
    row = method_entry(name)
    if row.curvature is None:
        return None
    opts = O.resolve(name, row.options, options)
    if not opts.get("cache", True):
        return None
    fit = {k: opts[k] for k, o in sorted(row.options.items()) if o.curvature}
    if fit.get("fisher") == "expected":
        fit = {k: v for k, v in fit.items() if k not in O.SAMPLED_FISHER_ONLY}
    use = row.curvature
    key = ".".join([f"{use.kind}_{use.checkpoints}", *(f"{k}-{_key_text(v)}" for k, v in fit.items())])
    if not SAFE_NAME.fullmatch(key):
        raise ConfigError(f"method '{name}': curvature options {fit} do not make a safe folder name ({key!r})")
    return {"key": key, "kind": use.kind, "checkpoints": use.checkpoints, "options": fit}


def _key_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else format(value, "g") if isinstance(value, float) else str(value)


def get_method(name: str):
    """The method class registered as `name` (imports its module, and with it torch)."""
    return _load_class(method_entry(name).path, f"method '{name}'")


def builtin_row_of(cls) -> MethodEntry | None:
    """The built-in row of `cls` or of its nearest registered base class (None: not a built-in method)."""
    for klass in cls.__mro__:
        row = _METHODS.get(klass.__dict__.get("name", ""))
        if row is not None and row.path == f"{klass.__module__}:{klass.__qualname__}":
            return row
    return None


def declared_seed_usage(cls) -> str:
    """A plugin class's seed usage: its `seed_usage`, or `seeds` (the attribute's earlier name, still read),
    else "per_seed"."""
    for klass in cls.__mro__:
        for attr in ("seed_usage", "seeds"):
            value = klass.__dict__.get(attr)
            if isinstance(value, str):
                return value
    return "per_seed"


class registry_attr:
    """A Method class attribute (seed_usage, options) read from the built-in row of the class (or of its
    nearest registered base class); other classes (plugins, test doubles) declare their own, else
    get the default (seed_usage "per_seed", no options)."""

    def __init__(self, default):
        self.default = default

    def __set_name__(self, owner, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj, owner=None):
        row = builtin_row_of(owner or type(obj))
        if row is not None:
            return getattr(row, self.attr)
        return declared_seed_usage(owner or type(obj)) if self.attr == "seed_usage" else self.default


class registry_flag:
    """A Method class attribute (all_seeds_at_once, per_seed_samples) derived from the class's `seed_usage`
    (its registry row for built-in methods, the class's own declaration for plugins)."""

    def __set_name__(self, owner, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj, owner=None) -> bool:
        usage = (owner or type(obj)).seed_usage
        return usage != "per_seed" if self.attr == "all_seeds_at_once" else usage == "per_seed_samples"
