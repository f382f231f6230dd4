"""Atomic, hash-stamped artifact I/O.

Every artifact is written to a temporary file in the target directory and renamed into place,
so an interrupted job never leaves a half-written file that a later job would read.
Arrays carry the config hash in a JSON sidecar (`<file>.json`) or inside the container.
"""
from __future__ import annotations

import contextlib
import glob
import io as _io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import ArtifactError, StorageError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temporary files a killed earlier attempt left for this same target (one writer per
        # target: Snakemake runs one job per output).
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:  # permission denied, read-only fs, disk full ...
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the artifact the mode a plain open() would (0666 & ~umask),
        # so colleagues on a shared cluster can read results/ as the umask allows.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)  # make the rename itself durable (a power cut keeps old or new)
    except OSError as e:
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask has no getter)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS): set and restore at once
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some network file systems refuse fsync on directories: the rename still happened
        pass
    finally:
        os.close(fd)


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_json(path) -> Any:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing file {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"corrupted JSON file {path}: {e}") from e


def save_npy(path, array: np.ndarray, meta: dict | None = None) -> None:
    """Save an array atomically, with `meta` (must include config_hash) as `<path>.json`."""
    buf = _io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    if meta is not None:
        write_json(sidecar(path), meta)
    write_bytes(path, buf.getvalue())


def sidecar(path) -> Path:
    path = Path(path)
    return path.with_name(path.name.rsplit(".", 1)[0] + ".json")


def load_npy(path, expect_hash: str | None = None) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing file {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ArtifactError(f"corrupted array file {path} ({e}); delete it and rerun") from e
    if expect_hash is not None:
        check_hash(path, read_json(sidecar(path)).get("config_hash"), expect_hash)
    return arr


def save_npz(path, meta: dict, **arrays: np.ndarray) -> None:
    buf = _io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8), **arrays)
    write_bytes(path, buf.getvalue())


def load_npz(path, expect_hash: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing file {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, ...
        raise ArtifactError(f"corrupted file {path} ({type(e).__name__}: {e}); delete it and rerun") from e
    if expect_hash is not None:
        check_hash(path, meta.get("config_hash"), expect_hash)
    return arrays, meta


def save_torch(path, obj: Any) -> None:
    buf = _io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path, expect_hash: str | None = None) -> Any:
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"missing file {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # RuntimeError for truncated zip, pickle errors ...
        raise ArtifactError(f"corrupted checkpoint {path} ({type(e).__name__}); delete it and rerun") from e
    if expect_hash is not None:
        check_hash(path, obj.get("config_hash") if isinstance(obj, dict) else None, expect_hash)
    return obj


def check_hash(path, found: str | None, expected: str) -> None:
    if found != expected:
        raise ArtifactError(
            f"{path} was computed from another config (hash {found}, expected {expected}); delete it and rerun"
        )
