"""What every attribution method sees: the experiment, the seed(s) to use, and cached gradients.

Sign convention (docs/design.md, section Notation): tau[q, i] > 0 means training on z_i raises f(z_q). A
gradient step on z_i moves theta by -eta * g_i, so first-order scores carry a minus sign.

Score files (results/{exp}/scores/{method}/seed{r|all}.npy, float32):
  [Q, N]     per-seed methods (one file per full-data seed r) and ensemble methods (one "seedall").
  [R, Q, N]  methods with `per_seed_samples = True` (the d-TDA estimators dtda_*; ensemble, so one
             "seedall" file): axis 0 is the full-data seed r = 0..R-1 (the order of ctx.seeds) and
             [r] holds seed r's scores computed from seed r's own model. The d-TDA predicted sample of
             seed r after removing the set T is  m(theta_r) - sum_{i in T} tau[r, q, i], with
             m(theta_r) = groundtruth["full"][r, q]. The classic LDS uses the mean over axis 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..gradients import per_example_grads
from . import options as O
from .registry import registry_attr, registry_flag


def interval_pool(meta: dict, interval: dict, n_train: int) -> np.ndarray | None:
    """The training pool (int indices into the training set) of one checkpoint interval of
    meta["segments"], or None when it is every example (single-stage runs; model files written
    before pools were recorded)."""
    if interval.get("pool") is None or "pools" not in meta:
        return None
    pool = np.asarray(meta["pools"][interval["pool"]], dtype=np.int64)
    return None if len(pool) == n_train else pool


class Method:
    """Base class. Subclasses set `name` and implement `score(ctx) -> [n_query, n_train]`
    (or [R, n_query, n_train] with `per_seed_samples`), reading their options from `self.opts`.

    Built-in methods declare how they use seeds and their options once, in their row in
    methods/registry.py (options: methods/options.py); plugin methods declare them here, as class
    attributes `seeds = "per_seed" | "pooled" | "per_seed_samples"` and
    `options = {"key": Option(default, "help")}` (see examples/plugin_method/).
    """

    name: str = ""
    seeds = registry_attr("per_seed")  # how the R full-data seeds are used (registry.SEED_USAGES)
    options = registry_attr({})  # declared options {key: Option} (methods/options.py)
    ensemble = registry_flag()  # True: one score file built from all R full-data seeds ("seedall")
    per_seed_samples = registry_flag()  # True: score() returns [R, Q, N], seed r's scores in [r] (see above)
    max_params: int | None = None  # small-model-only methods refuse bigger models with a clear error
    # True: the method follows the training stages (scenario multi_stage: each checkpoint interval's
    # own training pool, meta["pools"]); False: it uses all N training examples at the final model,
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

    def score(self, ctx: "AttributionContext") -> np.ndarray:
        raise NotImplementedError


@dataclass
class AttributionContext:
    exp: "object"  # tda_core.api.Experiment
    seeds: list[int]  # [r] for per-seed methods, all full-data seeds for ensembles
    chunk_size: int = 256
    _ckpts: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.exp.device

    @property
    def seed(self) -> int:
        return self.seeds[0]

    def rng(self, salt: str) -> np.random.Generator:
        return np.random.default_rng([int.from_bytes(salt.encode(), "little") % (2**32), *self.seeds])

    def checkpoints(self, seed: int) -> list[dict]:
        if seed not in self._ckpts:
            self._ckpts[seed] = self.exp.load_checkpoints(seed)
        return self._ckpts[seed]

    def model(self, seed: int) -> torch.nn.Module:
        return self.exp.build_model(seed).to(self.device)

    def params(self, seed: int, index: int = -1) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in self.checkpoints(seed)[index]["params"].items()}

    def train_grads(self, seed: int, params=None, projector=None, x=None, y=None) -> torch.Tensor:
        """[N, P] per-example gradients of the attribution loss on the training set."""
        s = self.exp.splits
        return per_example_grads(
            self.model(seed), params if params is not None else self.params(seed), self.exp.task.attribution_loss,
            s.train_x if x is None else x, s.train_y if y is None else y, self.chunk_size, projector,
            desc="train gradients",
        )

    def query_grads(self, seed: int, params=None, projector=None) -> torch.Tensor:
        """[Q, P] gradients of the measurement f at the query examples."""
        s = self.exp.splits
        return per_example_grads(
            self.model(seed), params if params is not None else self.params(seed), self.exp.task.measure,
            s.query_x, s.query_y, self.chunk_size, projector,
        )
