"""The base class of attribution methods. What a method sees (the AttributionContext record, the
per-seed Trajectory), the sign convention and the score shapes: methods/context.py.
"""
from __future__ import annotations

import numpy as np

from . import options as O
from .context import AttributionContext
from .registry import registry_attr, registry_flag


class Method:
    """Base class. Subclasses set `name` and implement `score(ctx) -> [n_query, n_train]`
    (or [R, n_query, n_train] with `per_seed_samples`), reading their options from `self.opts`;
    `ctx` is an AttributionContext (methods/context.py: the only inputs a method gets).

    Built-in methods declare how they use seeds and their options once, in their row in
    methods/registry.py (options: methods/options.py); plugin methods declare them here, as class
    attributes `seed_usage = "per_seed" | "pooled" | "per_seed_samples"` and
    `options = {"key": Option(default, "help")}` (see examples/plugin_method/).
    """

    name: str = ""
    seed_usage = registry_attr("per_seed")  # how the R full-data seeds are used (registry.SEED_USAGES)
    options = registry_attr({})  # declared options {key: Option} (methods/options.py)
    all_seeds_at_once = registry_flag()  # True: one job over all R full-data seeds, one "seedall" score file
    per_seed_samples = registry_flag()  # True: score() returns [R, Q, N], seed r's scores in [r] (context.py)
    max_params: int | None = None  # small-model-only methods refuse bigger models with a clear error
    # True: the method follows the training stages (scenario multi_stage: each checkpoint interval's
    # own training pool, Interval.pool); False: it uses all N training examples at the final model,
    # and the attribute stage notes that in the score sidecar of a multi-stage experiment.
    stage_aware: bool = False

    def __init__(self, **options):
        """`options` are checked against the declared ones (unknown keys and bad types raise ConfigError);
        self.opts holds every declared option, defaults filled in; self.given what was given."""
        declared = O.normalize(type(self).options)
        self.opts = O.resolve(self.name or type(self).__name__, declared, options)
        if "max_params" in options:
            self.max_params = options["max_params"]
        self.given = {k: v for k, v in options.items() if k not in O.COMMON}

    def score(self, ctx: AttributionContext) -> np.ndarray:
        raise NotImplementedError
