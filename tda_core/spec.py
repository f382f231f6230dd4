"""What each key of a resolved experiment is: one typed row per key, with the facts that used to be kept in
sync by hand (whether it enters the config hash, whether jobs get it on their own command line), and the
predicates derived from the config that several places ask (has_fixed_track). Imports nothing heavy: the
Snakefile reads it while building the DAG.

A resolved experiment (tda_core.config.resolve_experiment) is the experiment block of the schema
(`$defs.experiment`), the global keys it inherits (results_dir, data_dir, download, device, precision,
threads, tracking) and what resolution adds (name, data_sha256, config_hash); tests/test_spec.py checks
these rows against the schema both ways and pins the hash of every shipped experiment.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExperimentKey", "EXPERIMENT_KEYS", "GLOBAL_KEYS", "UNHASHED", "JOB_LOCAL", "has_fixed_track",
           "FIXED_TRACKS"]


@dataclass(frozen=True)
class ExperimentKey:
    name: str
    hashed: bool             # enters the experiment's config hash (changes trained models or ground truth)
    job_local: bool = False  # jobs get it on their command line, not through results/{exp}/config.json, so
                             # changing it reruns only the jobs that use it
    origin: str = "experiment"  # experiment (the schema's experiment block), global (inherited), resolved (added)
    note: str = ""


def _k(name, hashed, job_local=False, origin="experiment", note=""):
    return ExperimentKey(name, hashed, job_local, origin, note)


EXPERIMENT_KEYS: dict[str, ExperimentKey] = {k.name: k for k in (
    # what is trained and measured: hashed
    _k("kind", True), _k("scenario", True), _k("dataset", True), _k("model", True), _k("train", True),
    _k("seeds", True), _k("groundtruth", True), _k("measurement", True), _k("diffusion", True),
    # what is computed from the trained models: job-local, never invalidates a trained model
    _k("methods", False, True), _k("method_options", False, True), _k("metrics", False, True),
    _k("pruning", False, True), _k("loo", False, True), _k("mislabel", False, True), _k("pictures", False, True),
    _k("tuning", False, True), _k("removal", False, True),
    _k("chunk_size", False, note="a memory knob: the same numbers in chunks"),
    # inherited from the top level of the config
    _k("results_dir", False, origin="global"), _k("data_dir", False, origin="global"),
    _k("download", False, origin="global"), _k("device", True, origin="global"),
    _k("precision", True, origin="global"), _k("threads", False, origin="global"),
    _k("tracking", False, True, origin="global", note="W&B settings: change no number"),
    # added by resolve_experiment
    _k("name", False, origin="resolved"),
    _k("data_sha256", True, origin="resolved", note="a file dataset's content (dataset.path)"),
    _k("config_hash", False, origin="resolved"),
)}
GLOBAL_KEYS = tuple(k.name for k in EXPERIMENT_KEYS.values() if k.origin == "global")
UNHASHED = frozenset(k.name for k in EXPERIMENT_KEYS.values() if not k.hashed)
JOB_LOCAL = frozenset(k.name for k in EXPERIMENT_KEYS.values() if k.job_local)

FIXED_TRACKS = ("fixed_seed", "both")  # groundtruth.track values that train the fixed-seed ground truth


def has_fixed_track(exp: dict) -> bool:
    """groundtruth.track includes the fixed-seed track (fixed_seed or both); default distributional."""
    return (exp.get("groundtruth") or {}).get("track", "distributional") in FIXED_TRACKS
