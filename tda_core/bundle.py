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

import functools
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
            "versions": versions(), "device": device_description(exp.spec.device)}


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


_NUMBER_ITEMS = ({"type": "number"}, {"type": "integer"})


def _items_fast(validator, items, instance, schema):
    """Draft 7 `items`, with arrays of plain numbers checked in one pass: a bundle holds about 300k
    bootstrap replicates, and jsonschema's per-element descent took most of the leaderboard job."""
    from jsonschema import ValidationError
    from jsonschema._legacy_keywords import items_draft6_draft7_draft201909

    if items in _NUMBER_ITEMS and validator.is_type(instance, "array"):
        kind = items["type"]
        plain = (int, float) if kind == "number" else (int,)
        if all(type(item) in plain for item in instance):  # what json.load makes of numbers (no bools)
            return
        for index, item in enumerate(instance):  # the first offender gets jsonschema's own message
            if not validator.is_type(item, kind):
                yield ValidationError(f"{item!r} is not of type {kind!r}", path=[index], validator="type",
                                      validator_value=kind, instance=item, schema=items)
                return
        return
    yield from items_draft6_draft7_draft201909(validator, items, instance, schema)


@functools.cache
def _validator_class():
    import jsonschema

    return jsonschema.validators.extend(jsonschema.Draft7Validator, {"items": _items_fast})


def _validator(definition: str | None = None):
    s = schema()
    if definition is not None:  # draft 7: a $ref beside `definitions` validates against that definition
        s = {"$schema": s["$schema"], "definitions": s["definitions"], "$ref": f"#/definitions/{definition}"}
    return _validator_class()(s)


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
        blob = io.read_json(path, follow_links=False)  # a bundle is a regular file, never a link to one
    except RecursionError:
        raise ArtifactError(f"corrupted JSON file {path}: nested too deeply") from None
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(blob, dict):
        raise ArtifactError(f"{path} is not a result bundle: a JSON {type(blob).__name__}, not an object")
    return blob


def load_bundle(path) -> dict:
    """A bundle from `path`, checked: names, then the schema. A bare result (one method, one metric: what
    `tda_core.stages.evaluate.compute` returns, written as JSON) becomes a bundle of its variants' rows."""
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
    for i, row in enumerate(blob["results"]):
        row.setdefault("experiment", blob["experiment"])
        if row["experiment"] != blob["experiment"]:
            raise ArtifactError(f"{path}: a row of experiment {row['experiment']!r} in the bundle of "
                                f"experiment {blob['experiment']!r}")
        check_row_numbers(row, f"{path}: row {i} ({_row_name(row)})")
    return blob


# A row's CI must be the percentile interval of its own replicates (what every metric writes:
# tda_core.metrics.stats._percentile_ci), up to this fraction of the replicates' range (other
# quantile interpolations differ by about one gap between order statistics, ~range / B).
REPLICATE_TOLERANCE = 0.01
CI_LEVEL = 0.95


def _row_name(row: dict) -> str:
    return "/".join(str(row.get(k)) for k in ("experiment", "metric", "method")) + (
        f" ({row['variant']})" if row.get("variant") else "")


def check_row_numbers(row: dict, where: str) -> None:
    """Numbers of a board row that can be believed: no infinite value, CI or replicate; a NaN value only
    on an unranked (n/a) row; a finite value inside the range of its replicates, and its CI the 95%
    percentile interval of those replicates (REPLICATE_TOLERANCE). ArtifactError naming `where`."""
    import math

    import numpy as np

    for key in ("value", "ci_low", "ci_high"):
        x = row.get(key)
        if isinstance(x, float) and math.isinf(x):
            raise ArtifactError(f"{where}: {key} is {x}; a board number must be finite")
    reps = row.get("replicates")
    reps = np.asarray(reps if reps else [], dtype=np.float64)
    if np.isinf(reps).any():
        raise ArtifactError(f"{where}: an infinite bootstrap replicate")
    value = row.get("value")
    if isinstance(value, float) and math.isnan(value):
        if row.get("rank") is not None or row.get("tied_with_best") is True:
            raise ArtifactError(f"{where}: value is NaN but the row is ranked; a NaN value is an n/a row")
        return
    finite = reps[np.isfinite(reps)]
    if value is None or row.get("status") != "ok" or not len(finite):
        return
    lo, hi = float(finite.min()), float(finite.max())
    tol = REPLICATE_TOLERANCE * (hi - lo) + 1e-9 * max(1.0, abs(lo), abs(hi))
    if not lo - tol <= value <= hi + tol:
        raise ArtifactError(f"{where}: value {value:.6g} lies outside its {len(finite)} bootstrap replicates "
                            f"[{lo:.6g}, {hi:.6g}]; the replicates contradict the value")
    ci = np.quantile(finite, [(1 - CI_LEVEL) / 2, (1 + CI_LEVEL) / 2])
    for key, recomputed in zip(("ci_low", "ci_high"), ci):
        given = row.get(key)
        if given is None or not math.isfinite(given) or abs(given - recomputed) > tol:
            raise ArtifactError(f"{where}: {key} {given} is not the {CI_LEVEL:.0%} percentile interval of its "
                                f"bootstrap replicates ({recomputed:.6g}); the replicates contradict the CI")


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
    import math

    for i, row in enumerate(blob["rows"]):
        numbers = [row.get(k) for k in row if k.endswith("_mean")] + list(row.get("test_accuracy_values") or [])
        if row.get("status") == "ok" and any(isinstance(x, float) and not math.isfinite(x) for x in numbers):
            raise ArtifactError(f"{path}: pruning row {i} ({row['experiment']}/{row['method']}, p={row['p']:g}%) "
                                "has a non-finite mean or value")
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
    """Rank again every (experiment, metric) group of rows of merged bundles (in place): the ranks, rank
    intervals and ties on the board follow from the (checked) values and replicates, never from the
    rank fields a bundle made elsewhere claims.

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
        lengths = {}
        for path, r in members:
            if r.get("replicates"):
                lengths.setdefault(len(r["replicates"]), path)
        if len(lengths) > 1:
            (n1, p1), (n2, p2) = list(lengths.items())[:2]
            raise ArtifactError(f"{exp}/{metric}: bootstrap replicates of different lengths ({n1} in {p1}, "
                                f"{n2} in {p2}): evaluate both with the same tda-bench version")
        rank_rows([r for _, r in members])


# -- archives: `tda export` and --merge of an exported archive ---------------------------------------
ARCHIVE_VERSION = 1
MANIFEST = "manifest.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
MAX_ARCHIVE_BYTES = 8 * 2**30  # all members together, uncompressed (a bomb stops here)
MAX_ARCHIVE_MEMBERS = 100_000
# The files of an experiment an export carries besides the board's (tda_core.layout.ExperimentLayout
# attributes): the resolved config, the ground truth (masks, its sidecar, measurements), the LOO retrains.
EXPORT_FILES = ("config", "masks", "masks_sidecar", "groundtruth", "loo_measurements")


def board_files() -> dict[str, str]:
    """{kind: path relative to an experiment's folder} of every file the board reads: metrics.json, then each
    study's board file (tda_core/studies.py; kind = the study's name)."""
    from .studies import STUDIES

    return {"metrics": "metrics.json", **{row.name: row.board_file for row in STUDIES.values()}}


def bundle_kinds() -> tuple[str, ...]:
    """The kinds of board_files() that are result bundles (rows read like metrics.json)."""
    from .studies import STUDIES

    return ("metrics", *(row.name for row in STUDIES.values() if row.bundle))


def is_archive(path) -> bool:
    return str(path).endswith(ARCHIVE_SUFFIXES) and not Path(path).is_dir()


def _experiment_files(results_dir, name: str) -> dict[str, str]:
    from .io import sidecar
    from .layout import ExperimentLayout

    layout = ExperimentLayout(str(results_dir), name)
    files = {k: getattr(layout, k) for k in EXPORT_FILES if k != "masks_sidecar"}
    files["masks_sidecar"] = str(sidecar(layout.masks))
    files.update({kind: layout.study_file(rel) for kind, rel in board_files().items()})
    return files


def _sha256_file(path) -> tuple[str, int]:
    import hashlib

    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def export_results(results_dir, out, experiments: list[str] | None = None) -> dict:
    """One archive (`out`: .tar.gz, .tgz or .zip) of the experiments of `results_dir` (default: every
    folder with a config.json): their bundles, pruning and tuning summaries, resolved configs and ground
    truth (masks and measurements), under their results-folder paths, and manifest.json (first member):
    archive_version, bundle_version, the versions of tda-bench / torch / numpy / python, each
    experiment's config_hash, and every file's sha256 and size. Returns the manifest."""
    import time

    from . import io
    from .layout import check_safe_name

    root, out = Path(results_dir), Path(out)
    if not str(out).endswith(ARCHIVE_SUFFIXES):
        raise ConfigError(f"--out {out}: name the archive .tar.gz, .tgz or .zip")
    if not root.is_dir():
        raise ConfigError(f"--results {root}: not a folder")
    names = experiments or sorted(p.parent.name for p in root.glob("*/config.json"))
    if not names:
        raise ConfigError(f"--results {root}: no experiments (*/config.json) in it")
    files, hashes = {}, {}
    for name in names:
        check_safe_name(name, "experiment")
        present = {k: Path(p) for k, p in _experiment_files(root, name).items() if Path(p).is_file()}
        if "config" not in present:
            raise ConfigError(f"{root / name}: no config.json (not an experiment of this results folder)")
        if not any(k in present for k in bundle_kinds()):
            bundles = " or ".join(board_files()[k] for k in bundle_kinds())
            raise ConfigError(f"{root / name}: no result bundle ({bundles}); run the workflow first")
        hashes[name] = {"config_hash": io.read_json(present["config"]).get("config_hash")}
        for p in present.values():
            rel = p.relative_to(root).as_posix()
            sha, size = _sha256_file(p)
            files[rel] = {"sha256": sha, "bytes": size, "path": p}
    manifest = {"archive_version": ARCHIVE_VERSION, "bundle_version": BUNDLE_VERSION, "versions": versions(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "experiments": hashes,
                "files": {rel: {"sha256": f["sha256"], "bytes": f["bytes"]} for rel, f in sorted(files.items())}}
    blob = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    with io.atomic_path(out) as tmp:
        if str(out).endswith(".zip"):
            import zipfile

            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(MANIFEST, blob)
                for rel, f in sorted(files.items()):
                    zf.write(f["path"], rel)
        else:
            import io as _io
            import tarfile

            with tarfile.open(tmp, "w:gz") as tf:
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o644
                tf.addfile(info, _io.BytesIO(blob))
                for rel, f in sorted(files.items()):
                    info = tf.gettarinfo(str(f["path"]), rel)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    with open(f["path"], "rb") as fh:
                        tf.addfile(info, fh)
    return manifest


def _member_name(archive, name: str) -> str:
    from pathlib import PurePosixPath

    parts = PurePosixPath(name).parts
    if (not name or name.startswith("/") or "\\" in name or ":" in name.split("/")[0]
            or any(p in ("..", "") for p in parts)):
        raise ArtifactError(f"{archive}: member {name!r} has an unsafe path (absolute or with '..'); refused")
    return PurePosixPath(*parts).as_posix()


def _is_board_file(rel: str) -> bool:
    exp = rel.split("/", 1)[0]
    return any(rel == f"{exp}/{relative}" for relative in board_files().values())


def _archive_members(archive):
    """(name, declared size, open()) of each regular-file member; ArtifactError for links, devices, ..."""
    import stat as _stat
    import tarfile
    import zipfile

    if str(archive).endswith(".zip"):
        zf = zipfile.ZipFile(archive)
        with zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                if info.is_dir():
                    _member_name(archive, info.filename.rstrip("/"))
                    continue
                if _stat.S_IFMT(mode) not in (0, _stat.S_IFREG):  # type bits (0: none written, a file)
                    raise ArtifactError(f"{archive}: member {info.filename!r} is a link or special file; refused")
                yield info.filename, info.file_size, lambda info=info: zf.open(info)
        return
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf:
            if m.isdir():
                _member_name(archive, m.name.rstrip("/"))
                continue
            if not m.isreg():
                raise ArtifactError(f"{archive}: member {m.name!r} is a link or special file; refused")
            yield m.name, m.size, lambda m=m: tf.extractfile(m)


def unpack_archive(archive, dest) -> dict:
    """Check an exported archive against its manifest and unpack its board files (bundles, pruning and
    tuning summaries) into `dest`; returns the manifest. Members are read as data, never extracted by
    the archive library: no absolute path, no '..', no link or special file, each JSON member at most
    io.MAX_JSON_BYTES, all together at most MAX_ARCHIVE_BYTES, and every member's sha256 and size must
    be those the manifest lists (and the manifest must list nothing the archive lacks)."""
    import hashlib
    import os
    import stat as _stat
    import tarfile
    import zipfile
    import zlib

    from . import io

    try:
        st = os.stat(archive)
    except OSError as e:
        raise ArtifactError(f"cannot read {archive}: {e.strerror or e}") from None
    if not _stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{archive} is {io.file_kind(st.st_mode)}, not a regular file; refused")
    if st.st_size > MAX_ARCHIVE_BYTES:
        raise ArtifactError(f"{archive} is larger than {MAX_ARCHIVE_BYTES / 2**30:g} GiB; refused")
    dest = Path(dest)
    found: dict[str, tuple[str, int]] = {}
    manifest_bytes, total = None, 0
    try:
        for name, declared, open_member in _archive_members(archive):
            rel = _member_name(archive, name)
            if rel in found or (rel == MANIFEST and manifest_bytes is not None):
                raise ArtifactError(f"{archive}: member {rel} appears twice; refused")
            if len(found) >= MAX_ARCHIVE_MEMBERS:
                raise ArtifactError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members; refused")
            keep = rel == MANIFEST or _is_board_file(rel)
            cap = io.MAX_JSON_BYTES if rel.endswith(".json") else MAX_ARCHIVE_BYTES - total
            if declared > cap:
                raise ArtifactError(f"{archive}: member {rel} is {declared / 2**20:.1f} MiB, more than "
                                    f"{cap / 2**20:g} MiB; refused")
            h, n, kept = hashlib.sha256(), 0, []
            with open_member() as f:
                while chunk := f.read(min(2**20, cap + 1 - n)):
                    h.update(chunk)
                    n += len(chunk)
                    if keep:
                        kept.append(chunk)
                    if n > cap:
                        raise ArtifactError(f"{archive}: member {rel} is larger than {cap / 2**20:g} MiB; refused")
            total += n
            if total > MAX_ARCHIVE_BYTES:
                raise ArtifactError(f"{archive}: more than {MAX_ARCHIVE_BYTES / 2**30:g} GiB unpacked; refused")
            if rel == MANIFEST:
                manifest_bytes = b"".join(kept)
                continue
            found[rel] = (h.hexdigest(), n)
            if keep:
                io.write_bytes(dest / rel, b"".join(kept))
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ArtifactError(f"{archive} is not a readable {'.zip' if str(archive).endswith('.zip') else '.tar.gz'} "
                            f"archive ({type(e).__name__}: {_one_line(e)})") from None
    if manifest_bytes is None:
        raise ArtifactError(f"{archive}: no {MANIFEST}; not an archive of `tda export`")
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ArtifactError(f"{archive}: {MANIFEST} is not valid JSON ({_one_line(e)})") from None
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or manifest.get("archive_version") != ARCHIVE_VERSION:
        raise ArtifactError(f"{archive}: {MANIFEST} is not a version-{ARCHIVE_VERSION} manifest of `tda export` "
                            "(archive_version, files)")
    for rel, (sha, n) in sorted(found.items()):
        entry = listed.get(rel)
        if not isinstance(entry, dict):
            raise ArtifactError(f"{archive}: member {rel} is not in {MANIFEST}; the archive was changed after export")
        if entry.get("sha256") != sha or entry.get("bytes") != n:
            raise ArtifactError(f"{archive}: member {rel} does not match its sha256 in {MANIFEST} (the archive was "
                                "changed or corrupted after export); refused")
    missing = sorted(set(listed) - set(found))
    if missing:
        raise ArtifactError(f"{archive}: {MANIFEST} lists {missing[0]}, which the archive lacks"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return manifest
