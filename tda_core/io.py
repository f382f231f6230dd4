"""Atomic, hash-stamped artifact I/O.

Every artifact is written to a temporary file in the target directory and renamed into place,
so an interrupted job never leaves a half-written file that a later job would read.
Arrays carry the config hash in a JSON sidecar (`<file>.json`) or inside the container.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import io as _io
import json
import os
import stat
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


# A JSON artifact (a result bundle, a summary, a config) is kilobytes to a few megabytes; anything read
# as JSON (and any file of a merged results folder) beyond this is refused unread, so a hostile or
# broken input cannot grow memory without bound.
MAX_JSON_BYTES = 64 * 2**20


def file_kind(mode: int) -> str:
    """'a FIFO', 'a character device', ... for a non-regular st_mode (error messages)."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path, limit: int = MAX_JSON_BYTES, follow_links: bool = True) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (ArtifactError otherwise).

    Nothing but a regular file is opened: its type is checked before the open (a FIFO would block, a
    device never ends) and again on the open descriptor (it may have been swapped in between); the open
    is non-blocking, and without `follow_links` it refuses a symbolic link as the last component
    (O_NOFOLLOW). At most limit + 1 bytes are read, whatever the file claims its size is.
    """
    path = Path(path)
    try:
        st = os.stat(path) if follow_links else os.lstat(path)
    except FileNotFoundError:
        raise ArtifactError(f"missing file {path}") from None
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
    _check_regular(path, st, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ArtifactError(f"{path} is a symbolic link; it is not followed") from None
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        _check_regular(path, os.fstat(fd), limit)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(2**20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except BlockingIOError:  # O_NONBLOCK on a file system that has no data ready: no regular file
        raise ArtifactError(f"cannot read {path}: it would block") from None
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if total > limit:
        raise ArtifactError(f"{path} grew beyond {limit / 2**20:g} MiB while being read; refused")
    return b"".join(chunks)


def _check_regular(path, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path} is {file_kind(st.st_mode)}, not a regular file; refused")
    if st.st_size > limit:
        raise ArtifactError(f"{path} is {st.st_size / 2**20:.1f} MiB, more than the {limit / 2**20:g} MiB "
                            "a JSON file of tda-bench may have (tda_core.io.MAX_JSON_BYTES); refused")


def read_json(path, follow_links: bool = True) -> Any:
    """A JSON file, read bounded (`read_bounded`): ArtifactError naming the file when it is missing, not a
    regular file, too large or not JSON."""
    path = Path(path)
    data = read_bounded(path, follow_links=follow_links)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, an integer of too many digits
        raise ArtifactError(f"corrupted JSON file {path}: {e}") from None


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
