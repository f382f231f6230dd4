"""Result bundles: the versioned JSON an experiment's evaluation leaves behind, and reading them safely.

A bundle (results/{exp}/metrics.json from the evaluate stage, results/{exp}/loo/results.json from the
leave-one-out study) follows tda_core/schemas/bundle.schema.json. Version 1 carries its provenance:
`bundle_version`, the resolved experiment `config`, its `config_hash`, the `versions` of tda-bench, torch,
numpy and python, and the `device`. Bundles made elsewhere (`tda leaderboard --merge`) are untrusted
input: they are parsed as JSON only (nothing is unpickled), checked against the schema, their
experiment, method and metric names must be safe file names, and any problem is one error line naming
the file (tda_core.errors.ArtifactError).
"""
from __future__ import annotations

import json
import platform
from functools import lru_cache
from pathlib import Path

from .errors import ArtifactError, ConfigError

BUNDLE_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "bundle.schema.json"
# Pruning baselines are rows of the pruning summaries, not method names (tda_core.stages.prune).
PRUNING_BASELINES = ("full data", "random removal")


# -- writing -----------------------------------------------------------------------------------------
def provenance(exp, stage: str) -> dict:
    """The version-1 fields of a bundle written by `stage` (evaluate | loo) for the Experiment `exp`."""
    return {"bundle_version": BUNDLE_VERSION, "stage": stage, "config_hash": exp.hash, "config": dict(exp.cfg),
            "versions": versions(), "device": device_description(exp.cfg.get("device", "auto"))}


def versions() -> dict:
    import numpy
    import torch

    from . import __version__

    try:
        from importlib.metadata import version

        tda = version("tda-bench")
    except Exception:  # not installed (a source checkout on PYTHONPATH)
        tda = __version__
    return {"tda_bench": tda, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def device_description(name: str) -> str:
    """The device the config's `device` resolves to here, with the GPU's name (without switching TF32)."""
    import torch

    name = str(name or "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and torch.cuda.is_available():
        index = int(name.split(":")[1]) if ":" in name else 0
        try:
            return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
        except Exception:  # an index beyond the visible devices: say what was asked for
            return name
    return name


# -- reading -----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _validator(definition: str | None = None):
    import jsonschema

    s = schema()
    if definition is not None:  # draft 7: a $ref beside `definitions` validates against that definition
        s = {"$schema": s["$schema"], "definitions": s["definitions"], "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(s)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _schema_check(blob, path, definition: str | None = None, what: str = "result bundle") -> None:
    errors = sorted(_validator(definition).iter_errors(blob), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise ArtifactError(f"{path} is not a valid {what} (schema {SCHEMA_PATH.name}): at {where}: "
                            f"{_one_line(err.message)}")


def _check_name(value, what: str, path) -> None:
    from .config import check_safe_name

    try:
        check_safe_name(value, what)
    except ConfigError as e:
        raise ArtifactError(f"{path}: {_one_line(e, 300)}") from None


def read_json_object(path) -> dict:
    """A JSON object from `path` (ArtifactError naming the file when it is missing, not JSON or not an object)."""
    from . import io

    try:
        blob = io.read_json(path)
    except RecursionError:
        raise ArtifactError(f"corrupted JSON file {path}: nested too deeply") from None
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(blob, dict):
        raise ArtifactError(f"{path} is not a result bundle: a JSON {type(blob).__name__}, not an object")
    return blob


def load_bundle(path) -> dict:
    """A bundle from `path`, checked: names, then the schema. A bare result of
    `tda_core.stages.evaluate.evaluate` (one method, one metric) becomes a bundle of its variants' rows."""
    blob = read_json_object(path)
    if "results" not in blob:  # one result: its variants as rows
        variants = blob.get("variants") or {}
        if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
            raise ArtifactError(f"{path} is not a valid result: 'variants' must map names to objects")
        head = {k: v for k, v in blob.items() if k != "variants"}
        rows = [head] + [{**head, **v, "variant": name} for name, v in variants.items()]
        blob = {"experiment": blob.get("experiment"), "results": rows}
    _check_names(blob, path)
    _schema_check(blob, path)
    for row in blob["results"]:
        row.setdefault("experiment", blob["experiment"])
        if row["experiment"] != blob["experiment"]:
            raise ArtifactError(f"{path}: a row of experiment {row['experiment']!r} in the bundle of "
                                f"experiment {blob['experiment']!r}")
    return blob


def _check_names(blob: dict, path) -> None:
    """Names become table cells, plot labels and (in the workflow) file names: the safe-name rule of the config."""
    _check_name(blob.get("experiment"), "experiment", path)
    rows = blob.get("results")
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue  # the schema names it
        if "experiment" in row:
            _check_name(row["experiment"], "experiment", path)
        for key in ("method", "metric"):
            if key in row:
                _check_name(row[key], key, path)


def load_pruning_summary(path) -> dict:
    blob = read_json_object(path)
    _check_name(blob.get("experiment"), "experiment", path)
    for row in blob.get("rows") if isinstance(blob.get("rows"), list) else []:
        if isinstance(row, dict):
            if "experiment" in row:
                _check_name(row["experiment"], "experiment", path)
            if row.get("method") not in PRUNING_BASELINES and "method" in row:
                _check_name(row["method"], "method", path)
    _schema_check(blob, path, "pruning_summary", "pruning summary")
    return blob


# -- merging -----------------------------------------------------------------------------------------
def groundtruth_settings(bundle: dict) -> dict:
    """What fixes the ground truth a bundle's rows were scored against (besides its config_hash)."""
    if _stage(bundle) == "loo":
        return {"loo": bundle.get("loo")}
    cfg = bundle.get("config") or {}
    return {"n_subsets": bundle.get("n_subsets"), "seeds_per_subset": bundle.get("seeds_per_subset"),
            "groundtruth_steps": bundle.get("groundtruth_steps"), "seeds": bundle.get("seeds"),
            "groundtruth": cfg.get("groundtruth") if isinstance(cfg, dict) else None}


def _stage(bundle: dict) -> str:
    if bundle.get("stage"):
        return bundle["stage"]
    rows = bundle.get("results") or []
    return "loo" if rows and all(r.get("metric") == "loo_shift" for r in rows) else "evaluate"


def check_merge(bundles: list[tuple[str, dict]], summaries: list[tuple[str, dict]] = ()) -> None:
    """Bundles of one experiment must share their ground truth; no board row may come from two files.

    Same experiment name, different config_hash (or the same hash but other ground-truth settings, or a
    config that does not hash to its config_hash): refused, naming both files. Same experiment and
    hash: rows from several files are fine as long as no (experiment, metric, method, variant) repeats.
    """
    from .config import config_hash

    first: dict[tuple[str, str], tuple[str, dict]] = {}  # (experiment, stage) -> (path, settings)
    hashes: dict[str, tuple[str, object]] = {}  # experiment -> (path, config_hash)
    for path, b in bundles:
        cfg = b.get("config")
        if isinstance(cfg, dict) and "config_hash" in b:
            try:
                recomputed = config_hash(cfg)
            except Exception as e:  # a config of unexpected shape
                raise ArtifactError(f"{path}: its config cannot be hashed ({type(e).__name__})") from None
            if recomputed != b["config_hash"]:
                raise ArtifactError(f"{path}: its config hashes to {recomputed}, not to its config_hash "
                                    f"{b['config_hash']} (edited, or written by another tda-bench version)")
        exp = b["experiment"]
        seen = hashes.setdefault(exp, (path, b.get("config_hash")))
        if seen[1] != b.get("config_hash"):
            raise ArtifactError(f"experiment {exp!r} has different ground truths: {seen[0]} (config_hash "
                                f"{seen[1]}) and {path} (config_hash {b.get('config_hash')}); merge bundles of "
                                "one ground truth only (rename one experiment, or rerun it)")
        settings = groundtruth_settings(b)
        other = first.setdefault((exp, _stage(b)), (path, settings))
        if other[1] != settings:
            changed = sorted(k for k in settings if settings[k] != other[1].get(k))
            raise ArtifactError(f"experiment {exp!r} has different ground-truth settings ({', '.join(changed)}) "
                                f"under one config_hash: {other[0]} and {path}")
    rows: dict[tuple, str] = {}
    for path, b in bundles:
        for r in b["results"]:
            key = (b["experiment"], r["metric"], r["method"], r.get("variant") or "")
            if key in rows:
                where = f"two bundles: {rows[key]} and {path}" if rows[key] != path else f"{path} twice"
                raise ArtifactError(f"row {'/'.join(key).rstrip('/')} is in {where}")
            rows[key] = path
    pruned: dict[tuple, str] = {}
    for path, s in summaries:
        exp = s["experiment"]
        if exp in hashes and s.get("config_hash") not in (None, hashes[exp][1]):
            raise ArtifactError(f"experiment {exp!r} has different models: {hashes[exp][0]} (config_hash "
                                f"{hashes[exp][1]}) and {path} (config_hash {s.get('config_hash')})")
        for r in s["rows"]:
            key = (r["experiment"], r["method"], r["variant"], float(r["p"]))
            if key in pruned:
                where = f"two summaries: {pruned[key]} and {path}" if pruned[key] != path else f"{path} twice"
                raise ArtifactError(f"pruning row {key[0]}/{key[1]} ({key[2]}, p={key[3]:g}%) is in {where}")
            pruned[key] = path


def rerank_merged(bundles: list[tuple[str, dict]]) -> None:
    """Rank again the (experiment, metric) rows that come from more than one bundle (in place).

    The bootstrap draws are a pure function of the ground truth's shape and seed
    (tda_core.metrics.stats.bootstrap_draws), so rows of one ground truth (one config_hash, checked by
    `check_merge`) share them and the paired comparison across bundles is valid.
    """
    from .metrics.rows import rank_rows

    groups: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for path, b in bundles:
        for r in b["results"]:
            groups.setdefault((b["experiment"], r["metric"]), []).append((path, r))
    for (exp, metric), members in groups.items():
        if len({p for p, _ in members}) < 2:
            continue
        lengths = {}
        for path, r in members:
            if r.get("replicates"):
                lengths.setdefault(len(r["replicates"]), path)
        if len(lengths) > 1:
            (n1, p1), (n2, p2) = list(lengths.items())[:2]
            raise ArtifactError(f"{exp}/{metric}: bootstrap replicates of different lengths ({n1} in {p1}, "
                                f"{n2} in {p2}): evaluate both with the same tda-bench version")
        rank_rows([r for _, r in members])
