"""The typed experiment: `ExperimentSpec`, a frozen dataclass built once from a resolved experiment (tda_core.config.
resolve_experiment), with the schema's defaults for whatever a hand-made dict leaves out, so no reader restates
a default. Each field's metadata says what the key is: whether it enters the config hash (it changes trained
models or ground truth), whether jobs get it on their own command line (job-local: changing it reruns only
the jobs that use it), and where it comes from (the schema's experiment block, the global keys it inherits,
or what resolution adds). Derived predicates that several places ask (has_fixed_track) live here.

A resolved experiment is the experiment block of the schema (`$defs.experiment`), the global keys it inherits
(results_dir, data_dir, download, device, precision, threads, tracking) and what resolution adds (name,
data_sha256, config_hash); every study's block (tda_core/studies.py) is one more job-local key.
tests/test_spec.py checks the dataclasses against the schema both ways and pins the hash of every shipped
experiment. Imports nothing heavy: the Snakefile reads it while building the DAG.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from .studies import STUDIES

__all__ = ["ExperimentSpec", "TrainSpec", "GroundTruthSpec", "ExperimentKey", "EXPERIMENT_KEYS", "GLOBAL_KEYS",
           "UNHASHED", "JOB_LOCAL", "unhashed_keys", "job_local_keys", "has_fixed_track", "FIXED_TRACKS"]

FIXED_TRACKS = ("fixed_seed", "both")  # groundtruth.track values that train the fixed-seed ground truth


def _key(hashed: bool, job_local: bool = False, origin: str = "experiment", note: str = "", key: str = "") -> dict:
    """A field's metadata: hashed, job_local, origin (experiment | global | resolved), note, and the config
    key when it differs from the field's name."""
    return {"hashed": hashed, "job_local": job_local, "origin": origin, "note": note, "key": key}


def _frozen(value):
    """A read-only view of a config block (nested dicts too; lists become tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class TrainSpec:
    """The `train` block (the schema's defaults filled in)."""
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    betas: tuple
    batch_size: int
    epochs: int
    schedule: str
    n_checkpoints: int
    pretrain_fraction: float
    vectorize: bool


@dataclass(frozen=True)
class GroundTruthSpec:
    """The `groundtruth` block (the schema's defaults filled in); `source` is the config's `from` (a bank to
    import, or None: the ground truth is trained)."""
    n_subsets: int
    alpha: float
    seeds_per_subset: int
    shard_size: int
    subset_seed: int
    steps: str
    track: str
    source: str | None = field(default=None, metadata={"key": "from"})

    @property
    def has_fixed_track(self) -> bool:
        """The track includes the fixed-seed one (fixed_seed or both; the default is distributional)."""
        return self.track in FIXED_TRACKS


@dataclass(frozen=True)
class ExperimentSpec:
    """One resolved experiment, typed. Blocks whose keys depend on a registry row (dataset, model) or that are
    free-form stay read-only mappings; `studies` holds each study's block by the study's name."""
    # what is trained and measured: hashed
    kind: str = field(metadata=_key(True))
    scenario: str = field(metadata=_key(True))
    dataset: Mapping[str, Any] = field(metadata=_key(True))
    model: Mapping[str, Any] = field(metadata=_key(True))
    train: TrainSpec = field(metadata=_key(True))
    n_seeds: int = field(metadata=_key(True, key="seeds", note="the full-data (scoring) models: seeds 0..n_seeds-1"))
    groundtruth: GroundTruthSpec = field(metadata=_key(True))
    measurement: str = field(metadata=_key(True))
    diffusion: Mapping[str, Any] | None = field(metadata=_key(True))
    # what is computed from the trained models: job-local, never invalidates a trained model
    methods: tuple[str, ...] = field(metadata=_key(False, True))
    method_options: Mapping[str, Mapping[str, Any]] = field(metadata=_key(False, True))
    metrics: tuple[str, ...] = field(metadata=_key(False, True))
    mislabel: Mapping[str, Any] | None = field(metadata=_key(False, True))
    pictures: Mapping[str, Any] | None = field(metadata=_key(False, True))
    chunk_size: int = field(metadata=_key(False, note="a memory knob: the same numbers in chunks"))
    # inherited from the top level of the config
    results_dir: str = field(metadata=_key(False, origin="global"))
    data_dir: str = field(metadata=_key(False, origin="global"))
    download: bool = field(metadata=_key(False, origin="global"))
    device: str = field(metadata=_key(True, origin="global"))
    precision: str = field(metadata=_key(True, origin="global"))
    threads: int = field(metadata=_key(False, origin="global"))
    tracking: Mapping[str, Any] = field(metadata=_key(False, True, origin="global", note="W&B settings: change no number"))
    # added by resolve_experiment
    name: str = field(metadata=_key(False, origin="resolved"))
    data_sha256: str | None = field(metadata=_key(True, origin="resolved", note="a file dataset's content (dataset.path)"))
    config_hash: str | None = field(metadata=_key(False, origin="resolved"))
    # every study's block (tda_core/studies.py), None when the experiment has none: a study changes no trained model
    studies: Mapping[str, Mapping[str, Any] | None] = field(metadata={"studies": True})

    @property
    def has_fixed_track(self) -> bool:
        return self.groundtruth.has_fixed_track

    def study(self, name: str) -> Mapping[str, Any] | None:
        """A study's block (tda_core/studies.py), or None: the experiment runs no such study."""
        return self.studies.get(name)

    @classmethod
    def of(cls, exp: Mapping[str, Any]) -> "ExperimentSpec":
        """The spec of a resolved experiment; a key it leaves out takes the schema's default (a hand-made dict,
        a library caller's), so the values are those a validated config would have."""
        from .schema import config_schema

        schema = config_schema()
        props = schema["$defs"]["experiment"]["properties"]
        top = schema["properties"]

        def value(key: str, origin: str):
            if key in exp:
                return copy.deepcopy(exp[key])
            if origin != "global":  # a default that depends on other keys (measurement on kind): the schema's allOf
                for rule in schema["$defs"]["experiment"].get("allOf", []):
                    if _matches(rule["if"], exp) and key in rule["then"].get("properties", {}):
                        return copy.deepcopy(rule["then"]["properties"][key].get("default"))
            spec = (top if origin == "global" else props).get(key, {})
            return copy.deepcopy(spec.get("default"))

        def block(key: str) -> dict:
            defaults = {k: copy.deepcopy(v["default"]) for k, v in props[key].get("properties", {}).items()
                        if "default" in v}
            return {**defaults, **copy.deepcopy(exp.get(key) or {})}

        def optional_block(key: str):
            """An optional block (a study's, diffusion, pictures, mislabel): None when absent, else with defaults."""
            return block(key) if exp.get(key) else None

        train = block("train")
        gt = block("groundtruth")
        values: dict[str, Any] = {}
        for f in fields(cls):
            meta = f.metadata
            if meta.get("studies"):
                values[f.name] = _frozen({name: optional_block(name) for name in STUDIES})
            elif f.name == "train":
                values[f.name] = TrainSpec(**{k: _frozen(v) for k, v in train.items()})
            elif f.name == "groundtruth":
                values[f.name] = GroundTruthSpec(**{("source" if k == "from" else k): v for k, v in gt.items()})
            elif f.name in ("dataset", "model"):
                values[f.name] = _frozen(block(f.name))
            elif f.name in ("diffusion", "pictures", "mislabel"):
                values[f.name] = _frozen(optional_block(f.name))
            else:
                values[f.name] = _frozen(value(meta["key"] or f.name, meta["origin"]))
        return cls(**values)


def _matches(condition: Mapping, exp: Mapping) -> bool:
    """The schema's `if` conditions it uses: required keys present and equal to a const."""
    return (all(k in exp for k in condition.get("required", ()))
            and all(exp.get(k) == v["const"] for k, v in condition.get("properties", {}).items() if "const" in v))


@dataclass(frozen=True)
class ExperimentKey:
    """One key of a resolved experiment, as the config hash and the jobs see it (read off ExperimentSpec)."""
    name: str
    hashed: bool             # enters the experiment's config hash (changes trained models or ground truth)
    job_local: bool = False  # jobs get it on their command line, not through results/{exp}/config.json, so
                             # changing it reruns only the jobs that use it
    origin: str = "experiment"  # experiment (the schema's experiment block), global (inherited), resolved (added)
    note: str = ""


def _experiment_keys() -> dict[str, ExperimentKey]:
    keys = {}
    for f in fields(ExperimentSpec):
        if f.metadata.get("studies"):
            for name in STUDIES:
                keys[name] = ExperimentKey(name, False, True, note="a study's block (tda_core/studies.py)")
        else:
            m = f.metadata
            keys[m["key"] or f.name] = ExperimentKey(m["key"] or f.name, m["hashed"], m["job_local"], m["origin"],
                                                     m["note"])
    return keys


def unhashed_keys() -> frozenset[str]:
    """The keys the config hash leaves out, read now (a study registered after import included)."""
    return frozenset(k.name for k in _experiment_keys().values() if not k.hashed)


def job_local_keys() -> frozenset[str]:
    """The keys jobs get on their command line (not in results/{exp}/config.json), read now."""
    return frozenset(k.name for k in _experiment_keys().values() if k.job_local)


EXPERIMENT_KEYS: dict[str, ExperimentKey] = _experiment_keys()
GLOBAL_KEYS = tuple(k.name for k in EXPERIMENT_KEYS.values() if k.origin == "global")
UNHASHED = unhashed_keys()
JOB_LOCAL = job_local_keys()


def has_fixed_track(cfg: Mapping) -> bool:
    """ExperimentSpec.has_fixed_track of a resolved experiment's dict (the Snakefile and the config checks hold
    dicts)."""
    return ExperimentSpec.of(cfg).has_fixed_track
