"""The one registry of attribution methods: name -> where the class lives and how it uses seeds.

Adding a method = one new file in tda_core/methods/ plus one row here; every experiment that
lists it, and the leaderboard, pick it up.

The rows are plain data: reading them imports no method module (and so no torch), which keeps
building the Snakemake DAG cheap. How a method uses the R full-data seeds is declared here, once:

  per_seed          one score file per full-data seed, seed{r} ([Q, N], ctx.seeds = [r])
  pooled            one file "seedall" computed from all seeds together ([Q, N]; ensembles)
  per_seed_samples  one file "seedall" holding every seed's own scores ([R, Q, N]; d-TDA)

Method.ensemble / Method.per_seed_samples read the row of the class's `name` (methods/base.py).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ConfigError

SEED_USAGES = ("per_seed", "pooled", "per_seed_samples")


@dataclass(frozen=True)
class MethodEntry:
    path: str  # "module:Class", imported on first use by get_method
    seeds: str = "per_seed"  # one of SEED_USAGES

    def __post_init__(self):
        if self.seeds not in SEED_USAGES:
            raise ValueError(f"{self.path}: seeds must be one of {SEED_USAGES}, not {self.seeds!r}")

    @property
    def ensemble(self) -> bool:
        """One job over all seeds writing one 'seedall' file."""
        return self.seeds != "per_seed"

    @property
    def per_seed_samples(self) -> bool:
        return self.seeds == "per_seed_samples"


_M = "tda_core.methods."
_METHODS: dict[str, MethodEntry] = {
    "random": MethodEntry(_M + "random_scores:RandomScores"),
    "grad_dot": MethodEntry(_M + "grad_dot:GradDot"),
    "grad_cos": MethodEntry(_M + "grad_cos:GradCos"),
    "tracin": MethodEntry(_M + "tracin:TracIn"),
    "if_exact": MethodEntry(_M + "if_exact:IfExact"),
    "if_kfac": MethodEntry(_M + "if_kfac:IfKfac"),
    "if_ekfac": MethodEntry(_M + "if_ekfac:IfEkfac"),
    "if_ensemble": MethodEntry(_M + "if_ensemble:IfEnsemble", seeds="pooled"),
    "source": MethodEntry(_M + "source:Source"),
    "source_fast": MethodEntry(_M + "source_fast:SourceFast"),
    "source_ensemble": MethodEntry(_M + "source_ensemble:SourceEnsemble", seeds="pooled"),
    "unrolled": MethodEntry(_M + "unrolled:Unrolled"),
    "trak": MethodEntry(_M + "trak:Trak", seeds="pooled"),
    "dtda_if": MethodEntry(_M + "dtda_if:DtdaIf", seeds="per_seed_samples"),
    "dtda_source": MethodEntry(_M + "dtda_source:DtdaSource", seeds="per_seed_samples"),
    "dtda_unrolled": MethodEntry(_M + "dtda_unrolled:DtdaUnrolled", seeds="per_seed_samples"),
    "if_ekfac_kronfluence": MethodEntry(_M + "if_ekfac_kronfluence:IfEkfacKronfluence"),
    "trak_traker": MethodEntry(_M + "trak_traker:TrakTraker", seeds="pooled"),
}


def known_methods() -> list[str]:
    return sorted(_METHODS)


def method_entry(name: str) -> MethodEntry:
    """The registry row of `name` (imports nothing: safe while Snakemake builds the DAG)."""
    if name not in _METHODS:
        raise ConfigError(f"unknown method '{name}'; known: {', '.join(known_methods())}")
    return _METHODS[name]


def get_method(name: str):
    """The method class registered as `name` (imports its module, and with it torch)."""
    module, cls = method_entry(name).path.split(":")
    return getattr(importlib.import_module(module), cls)


class registry_flag:
    """A Method class attribute (ensemble, per_seed_samples) read from the row of the class's `name`;
    a class that is not registered (a test double, a subclass in user code) gets False unless it sets its own."""

    def __set_name__(self, owner, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj, owner=None) -> bool:
        row = _METHODS.get(getattr(owner or type(obj), "name", ""))
        return bool(row is not None and getattr(row, self.attr))
