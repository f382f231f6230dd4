"""A ground-truth bank: an experiment's trained artifacts, shared so that others score new methods
without retraining (`tda groundtruth export / import`, the workflow option `groundtruth: {from: URL}`).

A bank is a folder at an fsspec URL (a local path, http(s):// to read, s3:// with s3fs installed) that
mirrors the experiment folder's layout (tda_core/layout.py):

    manifest.json                  bank_version, experiment, config_hash, versions, every file's sha256 + bytes
    config.json                    the resolved experiment config (its hash is the manifest's config_hash)
    groundtruth/masks.npy (+ .json)   the [M, N] subset masks and their sidecar
    groundtruth/measurements.npz   the gathered ground truth (with the fixed-seed track's `fixed`, if trained)
    models/seed{r}.pt              the full-data checkpoints, r = 0..seeds-1

Everything read from a bank is untrusted: the manifest is read bounded (io.MAX_JSON_BYTES) and must name
only these files; each file is streamed into a temporary file beside its destination, at most the bytes
the manifest lists, and renamed into place only when its sha256 and size match (io.atomic_path). A bank
of another config hash, a changed, missing or extra byte is one error line (ArtifactError).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from .errors import ArtifactError, ConfigError, TdaError
from .layout import BANK_CONFIG as CONFIG, BANK_MANIFEST as MANIFEST, BANK_MASKS as MASKS
from .layout import BANK_MASKS_SIDECAR as MASKS_SIDECAR, BANK_MEASUREMENTS as MEASUREMENTS, model_member

BANK_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The largest member a bank may list (a checkpoint with every intermediate state of a big model).
MAX_MEMBER_BYTES = 64 * 2**30


def bank_members(n_seeds: int) -> list[str]:
    """The files of a bank of an experiment with `n_seeds` full-data seeds, relative to its root."""
    return [CONFIG, MASKS, MASKS_SIDECAR, MEASUREMENTS, *(model_member(r) for r in range(n_seeds))]


def _local_files(results_dir, experiment: str, n_seeds: int = 0) -> dict[str, Path]:
    """Bank member -> the experiment's file (the layout's paths, relative to the experiment folder)."""
    from .io import sidecar
    from .layout import ExperimentLayout

    lay = ExperimentLayout(str(results_dir), experiment)
    root = Path(lay.root)
    paths = {CONFIG: lay.config, MASKS: lay.masks, MASKS_SIDECAR: str(sidecar(lay.masks)),
             MEASUREMENTS: lay.groundtruth}
    files = {rel: Path(p) for rel, p in paths.items()}
    files.update({model_member(r): Path(lay.model(r)) for r in range(n_seeds)})
    assert all(p.relative_to(root).as_posix() == rel for rel, p in files.items())  # the bank mirrors the layout
    return files


# -- fsspec ------------------------------------------------------------------------------------------
def _filesystem(url: str):
    """(fsspec filesystem, root path in it) of a bank URL; one-line errors for what cannot be opened."""
    try:
        import fsspec
    except ImportError:
        raise ConfigError("ground-truth banks need fsspec: pip install fsspec") from None
    url = str(url)
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as e:  # fsspec names the package a protocol needs
        scheme = url.split("://", 1)[0]
        extra = {"s3": "s3fs", "http": "aiohttp", "https": "aiohttp"}.get(scheme)
        hint = f"pip install 'tda-bench[{'s3' if scheme == 's3' else 'http'}]' (it installs {extra})" if extra else \
            str(e).splitlines()[0]
        raise ConfigError(f"cannot open the ground-truth bank {url}: {scheme}:// needs {extra or 'an extra package'}; "
                          f"{hint}") from None
    except ValueError as e:  # an unknown protocol
        raise ConfigError(f"cannot open the ground-truth bank {url}: {str(e).splitlines()[0]}") from None
    return fs, root.rstrip("/")


def _is_local(fs) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


def _is_http(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return bool({"http", "https"} & set(protocols))


def _open(fs, path: str):
    """A file of the bank for streaming (http: no range requests, which simple servers do not answer)."""
    if _is_local(fs):
        import os
        import stat

        from .io import file_kind

        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a link may leave the bank
            raise ArtifactError(f"{path} is {file_kind(st.st_mode)}, not a regular file; refused")
    return fs.open(path, "rb", block_size=0) if _is_http(fs) else fs.open(path, "rb")


# -- export ------------------------------------------------------------------------------------------
def export_bank(results_dir, experiment: str, url: str) -> dict:
    """Write the bank of `experiment` (its masks, measurements, full-data checkpoints and config) to `url`;
    the manifest last, so an interrupted export leaves no bank that an import would accept. Returns the
    manifest."""
    from . import io
    from .bundle import _sha256_file, versions
    from .layout import check_safe_name

    check_safe_name(experiment, "experiment")
    files = _local_files(results_dir, experiment)
    if not files[CONFIG].is_file():
        raise ConfigError(f"{files[CONFIG]}: no such file; is '{experiment}' an experiment of {results_dir}?")
    cfg = io.read_json(files[CONFIG])
    files = _local_files(results_dir, experiment, int(cfg["seeds"]))
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"cannot export the ground truth of '{experiment}': {missing[0]} is missing"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                          + "; run the workflow's training first")
    fs, root = _filesystem(url)
    if _is_http(fs):
        raise ConfigError(f"cannot export to {url}: http(s) banks are read-only; export to a folder or s3:// URL "
                          "and serve that")
    if fs.exists(f"{root}/{MANIFEST}"):
        raise ConfigError(f"{url} already holds a ground-truth bank ({MANIFEST}); export to a new URL")
    listed = {}
    try:
        fs.makedirs(root, exist_ok=True)
        for rel, path in sorted(files.items()):
            sha, size = _sha256_file(path)
            listed[rel] = {"sha256": sha, "bytes": size}
            parent = f"{root}/{rel}".rsplit("/", 1)[0]
            fs.makedirs(parent, exist_ok=True)
            fs.put_file(str(path), f"{root}/{rel}")
        manifest = {"bank_version": BANK_VERSION, "experiment": experiment, "config_hash": cfg["config_hash"],
                    "seeds": int(cfg["seeds"]), "versions": versions(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": listed}
        with fs.open(f"{root}/{MANIFEST}", "wb") as f:
            f.write((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    except OSError as e:
        raise ArtifactError(f"cannot write the ground-truth bank {url}: {e.strerror or e}") from None
    return manifest


# -- import ------------------------------------------------------------------------------------------
def read_manifest(url: str) -> dict:
    """The bank's manifest, checked: version, config hash, only the files a bank has, each with a sha256
    and a size; ArtifactError in one line naming the URL otherwise."""
    from . import io
    from .bundle import _one_line

    fs, root = _filesystem(url)
    path = f"{root}/{MANIFEST}"
    try:
        if _is_local(fs):
            blob = io.read_bounded(path, follow_links=False)
        else:
            with _open(fs, path) as f:
                blob = f.read(io.MAX_JSON_BYTES + 1)
            if len(blob) > io.MAX_JSON_BYTES:
                raise ArtifactError(f"{url}: {MANIFEST} is larger than {io.MAX_JSON_BYTES / 2**20:g} MiB; refused")
    except FileNotFoundError:
        raise ArtifactError(f"{url}: no {MANIFEST}; not a ground-truth bank of `tda groundtruth export` "
                            "(or its export did not finish)") from None
    except ArtifactError as e:
        if "missing file" in str(e):
            raise ArtifactError(f"{url}: no {MANIFEST}; not a ground-truth bank of `tda groundtruth export` "
                                "(or its export did not finish)") from None
        raise
    except OSError as e:
        raise ArtifactError(f"cannot read the ground-truth bank {url}: {_one_line(e)}") from None
    try:
        manifest = json.loads(blob.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ArtifactError(f"{url}: {MANIFEST} is not valid JSON ({_one_line(e)})") from None
    if not isinstance(manifest, dict) or manifest.get("bank_version") != BANK_VERSION:
        raise ArtifactError(f"{url}: {MANIFEST} is not a version-{BANK_VERSION} ground-truth bank manifest")
    files, seeds = manifest.get("files"), manifest.get("seeds")
    if not isinstance(manifest.get("config_hash"), str) or not isinstance(files, dict) or not isinstance(seeds, int) \
            or isinstance(seeds, bool) or not 1 <= seeds <= 10_000:
        raise ArtifactError(f"{url}: {MANIFEST} lacks its config_hash, seeds or files; refused")
    expected = set(bank_members(seeds))
    for rel, entry in files.items():
        if rel not in expected:
            raise ArtifactError(f"{url}: {MANIFEST} lists {str(rel)[:80]!r}, which is no file of a ground-truth bank; "
                                "refused")
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _SHA256.fullmatch(entry["sha256"])
                and isinstance(entry.get("bytes"), int) and not isinstance(entry["bytes"], bool)
                and 0 <= entry["bytes"] <= MAX_MEMBER_BYTES):
            raise ArtifactError(f"{url}: {MANIFEST} entry of {rel} has no valid sha256 and bytes; refused")
    lacking = sorted(expected - set(files))
    if lacking:
        raise ArtifactError(f"{url}: {MANIFEST} does not list {lacking[0]}; an incomplete bank")
    return manifest


def check_config_hash(url: str, manifest: dict, expected: str) -> None:
    if manifest["config_hash"] != expected:
        raise ArtifactError(f"the ground-truth bank {url} was trained with config hash {manifest['config_hash']}, "
                            f"this experiment's is {expected}; refused (the bank's config.json says what it ran)")


def fetch_member(url: str, manifest: dict, rel: str, out) -> None:
    """Stream the bank's member `rel` into `out` (atomically), checking its size and sha256 on the way."""
    from . import io
    from .bundle import _one_line

    fs, root = _filesystem(url)
    entry = manifest["files"][rel]
    cap = entry["bytes"]
    h, n = hashlib.sha256(), 0
    with io.atomic_path(out) as tmp:
        try:
            with _open(fs, f"{root}/{rel}") as src, open(tmp, "wb") as dst:
                while chunk := src.read(min(2**20, cap + 1 - n)):
                    h.update(chunk)
                    n += len(chunk)
                    if n > cap:
                        break
                    dst.write(chunk)
        except FileNotFoundError:
            raise ArtifactError(f"{url}: {rel} is missing (its {MANIFEST} lists it); refused") from None
        except OSError as e:
            raise ArtifactError(f"cannot read {rel} of the ground-truth bank {url}: {_one_line(e)}") from None
        if n != cap or h.hexdigest() != entry["sha256"]:
            raise ArtifactError(f"{url}: {rel} does not match its sha256 and size in {MANIFEST} "
                                f"({'more than' if n > cap else n} of {cap} bytes; changed or corrupted); refused")


def _sha256(path) -> str:
    from .bundle import _sha256_file

    return _sha256_file(path)[0]


def _local_config_hash(exp_config) -> str:
    from . import io
    from .config import config_hash

    cfg = io.read_json(exp_config)
    if config_hash(cfg) != cfg.get("config_hash"):
        raise ConfigError(f"{exp_config} was edited by hand (its hash does not match); rerun `tda prepare`")
    return cfg["config_hash"]


def import_member(url: str, exp_config, member: str, out, masks=None) -> None:
    """One file of the bank into `out` (what the workflow's import jobs do), after checking the bank's
    config hash against the experiment's (`exp_config`, results/{exp}/config.json) and, for the
    measurements, that the bank's masks are this experiment's (`masks`, byte for byte)."""
    manifest = read_manifest(url)
    check_config_hash(url, manifest, _local_config_hash(exp_config))
    if member not in manifest["files"]:
        raise ConfigError(f"{url} has no {member}; its files: {', '.join(sorted(manifest['files']))}")
    if masks is not None:
        _check_masks(url, manifest, masks)
    fetch_member(url, manifest, member, out)


def _check_masks(url: str, manifest: dict, masks) -> None:
    if _sha256(masks) != manifest["files"][MASKS]["sha256"]:
        raise ArtifactError(f"the ground-truth bank {url} holds other subset masks than {masks} (same config hash, "
                            "other masks: made by another tda-bench version?); refused")


def import_bank(url: str, results_dir) -> dict:
    """The whole bank into results_dir/{experiment}: config, masks, measurements, checkpoints. Files the
    folder already has (the config and masks a `tda prepare` wrote) must equal the bank's; every other
    file is written. Returns the manifest."""
    from .layout import check_safe_name

    manifest = read_manifest(url)
    name = manifest.get("experiment")
    try:
        check_safe_name(name, "experiment")
    except ConfigError:
        raise ArtifactError(f"{url}: {MANIFEST} names an unsafe experiment {str(name)[:80]!r}; refused") from None
    files = _local_files(results_dir, name, manifest["seeds"])
    if files[CONFIG].is_file():
        check_config_hash(url, manifest, _local_config_hash(files[CONFIG]))
    for rel in (CONFIG, MASKS, MASKS_SIDECAR):
        if files[rel].is_file() and _sha256(files[rel]) != manifest["files"][rel]["sha256"]:
            raise ArtifactError(f"{files[rel]} differs from the ground-truth bank's {rel} ({url}); refused")
    if not files[CONFIG].is_file():  # first, and it must have the hash the manifest claims
        fetch_member(url, manifest, CONFIG, files[CONFIG])
        try:
            check_config_hash(url, manifest, _local_config_hash(files[CONFIG]))
        except TdaError:
            files[CONFIG].unlink()
            raise
    for rel, path in sorted(files.items()):
        if not path.is_file():
            fetch_member(url, manifest, rel, path)
    return manifest
