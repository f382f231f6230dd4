"""Declared options of the attribution methods: name, default, type, choices and one line of help.

The one source of truth for method options (torch-free, so config validation reads it while
Snakemake builds the DAG without importing any method module):
  - built-in methods: the `options` of their row in methods/registry.py (one set per method family
    below; d-TDA estimators take their base estimator's set);
  - plugin methods: the class attribute `options` ({name: Option(...)}, or {name: default}).
Method.__init__ (methods/base.py) fills the defaults and checks the given values with `resolve`,
so a class reads `self.opts[key]` and never keeps defaults of its own.

Types are checked where cheap: int (not bool), float (int accepted), bool, str, None where the
default is None (or `nullable`), and `choices`. COMMON options apply to every method.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError

_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Option:
    default: Any
    help: str = ""
    type: type | None = None  # inferred from the default unless it is None
    choices: tuple | None = None
    nullable: bool | None = None  # None allowed? (default: when the default is None)
    # True: the option changes the method's curvature fit (not only how the fit is used), so it is part of
    # the key of the shared fit (registry.curvature_fit); methods with equal curvature options share it
    curvature: bool = False

    def __post_init__(self):
        if self.type is None:
            inferred = type(self.default) if self.default is not None else None
            if inferred is not None and inferred not in _TYPES:
                raise ValueError(f"option default {self.default!r}: give one of bool/int/float/str or None")
            object.__setattr__(self, "type", inferred)
        if self.nullable is None:
            object.__setattr__(self, "nullable", self.default is None)

    @property
    def type_name(self) -> str:
        name = self.type.__name__ if self.type is not None else "any"
        if self.choices:
            name = "|".join(map(str, self.choices))
        return f"{name} or None" if self.nullable else name

    def check(self, value) -> str | None:
        """None if `value` is acceptable, else why not (a few words)."""
        if value is None:
            return None if self.nullable else f"must be {self.type_name}, not None"
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {'|'.join(map(str, self.choices))}, not {value!r}"
        t = self.type
        ok = (t is None or (t is bool and isinstance(value, bool))
              or (t is int and isinstance(value, numbers.Integral) and not isinstance(value, bool))
              or (t is float and isinstance(value, numbers.Real) and not isinstance(value, bool))
              or (t is str and isinstance(value, str)))
        return None if ok else f"must be {self.type_name}, not {type(value).__name__} ({value!r})"


OptionSet = Mapping[str, Option]

# Accepted by every method (handled by Method.__init__ itself).
COMMON: dict[str, Option] = {
    "max_params": Option(None, "refuse models with more parameters than this (default: the method's own limit)",
                         type=int),
}

CURVATURE: dict[str, Option] = {
    "fisher": Option("sampled", "Fisher of the curvature: labels sampled from the model, or the expectation",
                     choices=("sampled", "expected"), curvature=True),
    "n_fisher_samples": Option(1, "sampled labels per example (fisher: sampled)", curvature=True),
    "fisher_seed": Option(0, "seed of the sampled labels", curvature=True),
    "cache": Option(True, "read the experiment's shared curvature fit (curvature/{key}/, one fit_curvature job) and "
                          "cache fits in the method's score directory; False: fit in the job every time"),
}
# fisher: expected draws no labels, so these leave its fit unchanged (and out of the shared fit's key)
SAMPLED_FISHER_ONLY = ("n_fisher_samples", "fisher_seed")
IF: dict[str, Option] = {
    "damping": Option(None, "absolute damping added to every eigenvalue (default: damping_rel)", type=float),
    "damping_rel": Option(0.1, "damping as a multiple of each layer's mean eigenvalue"),
    **CURVATURE,
}
IF_EXACT: dict[str, Option] = {k: IF[k] for k in ("damping", "damping_rel")}
SOURCE: dict[str, Option] = {
    "n_segments": Option(3, "segments of the training run (one curvature fit each)", curvature=True),
    **CURVATURE,
}
TRAK: dict[str, Option] = {
    "proj_dim": Option(256, "dimension k of the random projection"),
    "proj_type": Option("rademacher", "entries of the projection matrix", choices=("rademacher", "gaussian")),
    "proj_seed": Option(0, "seed of the projection (shared by every model)"),
    "damping_rel": Option(0.0, "ridge lambda as a multiple of the mean eigenvalue of Phi^T Phi (0: pseudo-inverse)"),
    "rcond": Option(None, "drop eigenvalues below rcond x the largest (default 1e-12 float32, 1e-15 float64)",
                    type=float),
    "dtype": Option("float32", "precision of the gradients (float64 for exactness checks)",
                    choices=("float32", "float64")),
}
TRACIN: dict[str, Option] = {
    # the number saved is train.n_checkpoints (changing it retrains every model); this picks among the saved ones
    "last_checkpoints": Option(None, "sum over only the last k saved checkpoints (default: all train.n_checkpoints)",
                               type=int),
}
UNROLLED: dict[str, Option] = {
    "dtype": Option("float32", "precision of the replay", choices=("float32", "float64")),
    "query_chunk": Option(None, "queries per backward sweep (default: all at once)", type=int),
}
TRAK_TRAKER: dict[str, Option] = {
    "proj_dim": Option(256, "dimension of the projection"),
    "proj_seed": Option(0, "seed of the projection"),
    "batch_size": Option(256, "examples per featurize/score batch"),
}
KRONFLUENCE: dict[str, Option] = {
    "damping": Option(None, "absolute damping (default: kronfluence's heuristic)", type=float),
    "fisher_seed": Option(0, "seed of the sampled labels"),
    "batch_size": Option(256, "examples per batch"),
}

TRACKSTAR: dict[str, Option] = {
    "proj_dim": Option(1024, "dimension k of the random projection (None: no projection, exact on small models)",
                       type=int, nullable=True),
    "proj_type": Option("rademacher", "entries of the projection matrix", choices=("rademacher", "gaussian")),
    "proj_seed": Option(0, "seed of the projection"),
    "whiten": Option(True, "whiten by the autocorrelation of the projected training gradients (R^-1/2)"),
    "damping_rel": Option(0.1, "ridge added to the autocorrelation before R^-1/2, x its mean eigenvalue"),
    "eps": Option(None, "eps of g / (sqrt(v) + eps) (default: the Adam run's eps, else 1e-8)", type=float),
}
LOGRA: dict[str, Option] = {
    "proj_dim": Option(16, "per-layer projection of the inputs and of the output gradients (k_in = k_out); "
                           "a side of at most this dimension is kept whole"),
    "proj_seed": Option(0, "seed of the per-layer projections"),
    "damping_rel": Option(0.1, "damping of each layer's projected Fisher, x its mean eigenvalue"),
    "damping": Option(None, "absolute damping for every layer (default: damping_rel)", type=float),
}
DATAINF: dict[str, Option] = {
    "layers": Option("modules", "blocks of the closed-form inverse: one per module or per parameter tensor",
                     choices=("modules", "parameters")),
    "damping_rel": Option(0.1, "lambda_l = this x the layer's mean squared gradient entry (DataInf's default)"),
    "damping": Option(None, "absolute lambda for every layer (default: damping_rel)", type=float),
    "keep_gradients": Option(2**26, "keep the N x P training gradients in memory up to this many numbers "
                                    "(else recompute them in three passes)"),
}
LOSS_COVARIANCE: dict[str, Option] = {
    "n_samples": Option(128, "models K sampled around each trained model"),
    "noise": Option("sgld", "sampler: Langevin chain on the loss, or Gaussian noise without the loss curvature",
                    choices=("sgld", "gaussian")),
    "beta": Option(10.0, "inverse temperature on the summed training loss (tau = -beta Cov)"),
    "localization": Option(1.0, "pull towards the trained model, in curvature units of the mean loss (= IF damping)"),
    "step_size": Option(0.01, "SGLD step on the mean loss (the noise variance is step_size / (beta N))"),
    "burn_in": Option(50, "SGLD steps before the first sample"),
    "thin": Option(2, "SGLD steps between samples"),
    "batch_size": Option(64, "examples per SGLD gradient (drawn with replacement; >= N: the full batch)"),
    "sample_seed": Option(0, "seed of the chain (combined with the full-data seed)"),
}


def normalize(declared) -> dict[str, Option]:
    """A class's declared options as {name: Option}: Option values kept, plain values are defaults."""
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise ConfigError(f"method options must be declared as a dict {{name: Option(...)}}, not {type(declared).__name__}")
    return {str(k): v if isinstance(v, Option) else Option(v) for k, v in declared.items()}


def problem(declared: OptionSet, given: Mapping) -> tuple[str, str | None] | None:
    """(key, why) of the first bad entry of `given` (why None: unknown key; else a bad value), or None."""
    known = {**declared, **COMMON}
    for key, value in given.items():
        if key not in known:
            return key, None
        why = known[key].check(value)
        if why:
            return key, why
    return None


def known_list(declared: OptionSet) -> str:
    return ", ".join(sorted({**declared, **COMMON})) or "none"


def message(method: str, key: str, why: str | None, declared: OptionSet) -> str:
    """One line naming the method and the key, and listing the known options."""
    what = f"has no option '{key}'" if why is None else f"option '{key}' {why}"
    return f"method '{method}' {what}; known options: {known_list(declared)}"


def resolve(method: str, declared: OptionSet, given: Mapping) -> dict:
    """The declared defaults overridden by `given` (COMMON keys left out); bad entries raise ConfigError."""
    bad = problem(declared, given)
    if bad:
        raise ConfigError(message(method, *bad, declared))
    return {**{k: o.default for k, o in declared.items()}, **{k: v for k, v in given.items() if k not in COMMON}}


def describe(declared: OptionSet) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) rows (COMMON ones: describe(COMMON))."""
    return [(k, o.type_name, repr(o.default), o.help) for k, o in sorted(declared.items())]
