"""Raw data sources: the embedded scikit-learn digits, torchvision datasets under data_dir, and
user data by config (npz arrays, scikit-learn's bundled loaders, an ImageFolder tree, a Hugging
Face `datasets` folder written by save_to_disk). Text (token sequences for language models) is read
by tda_core/data/text.py. See docs/data.md.

Every source returns (train_pool, heldout_pool or None), each a pair (x float32 [n, ...], y [n] or
[n, k]): images as [n, C, H, W] in [-1, 1], tabular data as [n, d]; y as read (integer class
labels or float regression targets; load_splits casts it by `kind`). Held-out pools feed
validation, query and test splits; with None, all four splits are carved out of the train pool.
Non-finite values are rejected with one line naming the file and the first bad row.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .paths import data_path  # noqa: F401 - part of this module's interface
from .registry import DATASETS, PATH, dataset_entry, loader

Pool = tuple[np.ndarray, np.ndarray]

FILE_SOURCES = tuple(name for name, row in DATASETS.items() if row.reads == PATH)  # read from dataset.path
# scikit-learn loaders whose data ships inside the package (no download)
SKLEARN_LOADERS = ("load_iris", "load_wine", "load_breast_cancer", "load_diabetes", "load_digits", "load_linnerud")


def load_source(ds: dict, data_dir: str, download: bool) -> tuple[Pool, Pool | None]:
    """The (train, held-out or None) pools of an array dataset: its registry row's loader (tda_core.data.registry)."""
    pools = loader(ds["name"])(ds, data_dir, download)
    origin = source_origin(ds, data_dir)
    check_finite(pools[0], origin, "train" if pools[1] is not None else None)
    if pools[1] is not None:
        check_finite(pools[1], origin, "held-out")
    return pools


def source_origin(ds: dict, data_dir: str) -> str:
    """What to name in error messages: the file or folder, else the registry row's origin (the loader, the
    torchvision root, the package file)."""
    row = dataset_entry(ds["name"])
    if row.reads == PATH:
        return str(data_path(ds, data_dir))
    return row.origin.format(**{"loader": None, **ds, "data_dir": data_dir})


# -- loaders, one per registry row (tda_core.data.registry): (ds, data_dir, download) -> pools ---------
def load_digits(ds: dict, data_dir: str, download: bool) -> tuple[Pool, None]:
    return _digits(), None


def load_torchvision(ds: dict, data_dir: str, download: bool) -> tuple[Pool, Pool]:
    return _torchvision(ds["name"], data_dir, download)


def load_sklearn(ds: dict, data_dir: str, download: bool) -> tuple[Pool, None]:
    return _sklearn(ds.get("loader")), None


def load_npz(ds: dict, data_dir: str, download: bool) -> tuple[Pool, Pool | None]:
    return _npz(data_path(ds, data_dir))


def load_image_folder(ds: dict, data_dir: str, download: bool) -> tuple[Pool, None]:
    return _image_folder(data_path(ds, data_dir), ds), None


def load_hf_disk(ds: dict, data_dir: str, download: bool) -> tuple[Pool, Pool | None]:
    return _hf_disk(data_path(ds, data_dir), ds)


def check_finite(pool: Pool, origin: str, part: str | None = None) -> None:
    for what, a in (("x", pool[0]), ("y", pool[1])):
        if np.issubdtype(a.dtype, np.floating):
            bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
            if bad.any():
                where = f" ({part} part)" if part else ""
                raise ConfigError(f"{origin}{where}: non-finite value in {what} at row {int(np.argmax(bad))} "
                                  f"({int(bad.sum())} bad rows)")


def integer_labels(y: np.ndarray, origin: str) -> np.ndarray:
    """Classification labels as int64: 1-d, whole numbers, >= 0; else one line."""
    if y.ndim != 1 or (np.issubdtype(y.dtype, np.floating) and (y != np.round(y)).any()) or \
            not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ConfigError(f"{origin}: labels are not integer class labels (shape {tuple(y.shape)}, dtype {y.dtype}); "
                          "use kind: regression for real-valued targets")
    if len(y) and y.min() < 0:
        raise ConfigError(f"{origin}: class labels must be >= 0 (found {int(y.min())})")
    return y.astype(np.int64)


def check_class_labels(labels: np.ndarray, origin: str, n_classes: int | None = None) -> int:
    """The number of classes (model outputs) of integer labels `labels` (every pool together).

    Without dataset.n_classes the head has max label + 1 outputs. Labels far outside the observed range
    are refused in one line asking for n_classes: more than half of the classes 0..max never seen
    (a stray 1000 among 0-9 would build a 1001-class head that does not learn). A few unseen classes
    (a trimmed copy of a dataset) pass, as before. With n_classes, labels must lie below it."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ConfigError(f"{origin}: no labels")
    top = int(labels.max())
    if n_classes is not None:
        if top >= n_classes:
            raise ConfigError(f"{origin}: label {top} is outside dataset.n_classes = {n_classes} (labels 0..{n_classes - 1})")
        return int(n_classes)
    seen = np.unique(labels)
    if top + 1 > 2 * len(seen):
        missing = np.setdiff1d(np.arange(top + 1), seen)
        shown = ", ".join(map(str, missing[:3])) + (", ..." if len(missing) > 3 else "")
        raise ConfigError(f"{origin}: labels run up to {top} but only {len(seen)} distinct values occur ({len(missing)} "
                          f"classes never seen: {shown}); relabel to 0..K-1, or set dataset.n_classes if they are intended")
    return top + 1


# -- paths and content hashes ------------------------------------------------------------------
_HASHES: dict = {}


def data_fingerprint(ds: dict, data_dir: str) -> str | None:
    """sha256 of the dataset file (or of every file of the folder, with their relative paths), or
    None for built-in datasets. Cached per path within a process (keyed by sizes and mtimes too).
    A text dataset: sha256 over those of its corpus, its held-out file and its tokenizer folder's files."""
    if ds.get("name") not in FILE_SOURCES:
        return None
    if ds["name"] == "text":
        from .text import text_files

        h = hashlib.sha256()
        for f in text_files(ds, data_dir):
            h.update(_path_fingerprint(f.resolve()).encode())
        return h.hexdigest()
    return _path_fingerprint(data_path(ds, data_dir).resolve())


def _path_fingerprint(p: Path) -> str:
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    key = (str(p), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _HASHES:
        h = hashlib.sha256()
        for f in files:
            if p.is_dir():
                h.update(str(f.relative_to(p)).encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


# -- built-in sources --------------------------------------------------------------------------
def _digits() -> Pool:
    """The digits CSV that ships inside scikit-learn (no download). Read directly, because
    importing sklearn.datasets (with scipy) costs seconds in every short workflow job."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    csv = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else None
    if csv is not None and csv.exists():
        data = np.loadtxt(csv, delimiter=",")
        images, target = data[:, :-1].reshape(-1, 8, 8), data[:, -1]
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        images, target = d.images, d.target
    x = (images.astype(np.float32) / 16.0) * 2.0 - 1.0
    return x[:, None, :, :], target.astype(np.int64)


def _torchvision(name: str, data_dir: str, download: bool) -> tuple[Pool, Pool]:
    import torchvision

    root = Path(data_dir)
    if not download and not root.is_dir():
        raise ConfigError(f"data_dir '{root}' does not exist (dataset {name}); set data_dir, or download: true")
    if name in ("mnist", "fashionmnist"):
        pools = _idx_pools(root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw")
        if pools is not None:
            return pools
    cls = {
        "mnist": torchvision.datasets.MNIST,
        "fashionmnist": torchvision.datasets.FashionMNIST,
        "cifar10": lambda **kw: _cifar_cls()(**kw),
    }[name]
    try:
        train = cls(root=str(root), train=True, download=download)
        test = cls(root=str(root), train=False, download=download)
    except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True ..."
        raise ConfigError(f"dataset {name} not found under data_dir '{root}': {e}") from None
    return _to_pool(train), _to_pool(test)


_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_pools(raw: Path) -> tuple[Pool, Pool] | None:
    """(Fashion)MNIST from {raw}/{stem} or {stem}.gz, read directly: torchvision reads only the
    uncompressed files and, given download=True, re-downloads whatever fails its md5 check. None if a
    file is missing (then torchvision's loader, and its download, take over)."""
    found = {}
    for stem in (*_IDX["train"], *_IDX["test"]):
        found[stem] = next((p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None)
    if not all(found.values()):
        return None
    pools = []
    for split in ("train", "test"):
        images, labels = (_read_idx(found[stem]) for stem in _IDX[split])
        if len(images) != len(labels):
            raise ConfigError(f"{found[_IDX[split][0]]}: {len(images)} images but {len(labels)} labels")
        x = images.astype(np.float32) / 255.0 * 2.0 - 1.0
        pools.append((np.ascontiguousarray(x[:, None]), labels.astype(np.int64)))
    return pools[0], pools[1]


def _read_idx(path: Path) -> np.ndarray:
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path}: not an idx file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: header says {list(dims)} but holds {data.size} values")
    return data.reshape(dims)


def _to_pool(ds) -> Pool:
    data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
    x = data.astype(np.float32) / 255.0 * 2.0 - 1.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # grey [n,H,W] or colour [n,H,W,C]
    return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)


def _cifar_cls():
    import torchvision

    class Cifar10(torchvision.datasets.CIFAR10):
        """CIFAR-10 in torchvision's on-disk format; checks that the batch files exist, not their md5s
        (torchvision's md5 checks of the batches and of batches.meta reject re-packed or trimmed
        copies used on clusters and in tests). The pickles are read by torchvision's own code."""

        def _check_integrity(self) -> bool:
            base = Path(self.root) / self.base_folder
            return all((base / f).exists() for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            meta = Path(self.root) / self.base_folder / self.meta["filename"]
            if meta.exists():  # read without torchvision's md5 check of batches.meta
                import pickle

                with open(meta, "rb") as f:
                    self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
                self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
            else:
                self.classes = [str(i) for i in range(10)]
                self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return Cifar10


# -- sources by config -------------------------------------------------------------------------
def _sklearn(loader: str | None) -> Pool:
    if not loader:
        raise ConfigError("dataset 'sklearn' needs dataset.loader (e.g. load_wine)")
    if loader.startswith("fetch_"):
        raise ConfigError(f"sklearn loader '{loader}' downloads data; use one of {', '.join(SKLEARN_LOADERS)} "
                          "(or save the data as npz)")
    if loader not in SKLEARN_LOADERS:
        raise ConfigError(f"unknown sklearn loader '{loader}'; known: {', '.join(SKLEARN_LOADERS)}")
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def _npz(path: Path) -> tuple[Pool, Pool | None]:
    """Arrays x [n, ...] and y [n] (optionally x_test, y_test: a separate held-out pool)."""
    import zipfile

    if not zipfile.is_zipfile(path):  # np.load would try .npy / pickle and talk about pickled data
        raise ConfigError(f"{path}: not an .npz archive (write one with numpy.savez(path, x=..., y=...))")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise ConfigError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    for k in ("x", "y"):
        if k not in arrays:
            raise ConfigError(f"{path}: needs arrays 'x' and 'y' (has {', '.join(sorted(arrays)) or 'none'})")
    pools = []
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if xk not in arrays:
            pools.append(None)
            continue
        x, y = arrays[xk], arrays[yk]
        if x.ndim == 0 or y.ndim == 0 or len(x) == 0:
            raise ConfigError(f"{path}: '{xk}' holds no examples (shape {list(x.shape)}, '{yk}' {list(y.shape)})")
        if len(x) != len(y):
            raise ConfigError(f"{path}: '{xk}' has {len(x)} rows, '{yk}' {len(y)}")
        pools.append((np.ascontiguousarray(x, dtype=np.float32), y))
    return pools[0], pools[1]


def _image_size(ds: dict):
    size = ds.get("image_size")
    if size is None:
        return None
    return (size, size) if isinstance(size, int) else tuple(size)


def _pil_to_array(img, ds: dict, size) -> np.ndarray:
    img = img.convert("L" if ds.get("channels", 3) == 1 else "RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]))  # PIL sizes are (width, height)
    a = np.asarray(img, dtype=np.float32) / 255.0 * 2.0 - 1.0
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _stack_images(arrays: list, origin) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ConfigError(f"{origin}: images have different sizes {sorted(shapes)[:3]}; set dataset.image_size")
    return np.stack(arrays).astype(np.float32)


def _image_folder(path: Path, ds: dict) -> Pool:
    """torchvision.datasets.ImageFolder layout: path/<class>/<image>; classes in sorted order."""
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as e:
        raise ConfigError(f"{path}: not an ImageFolder tree ({e})") from None
    size = _image_size(ds)
    x = _stack_images([_pil_to_array(folder.loader(p), ds, size) for p, _ in folder.samples], path)
    return x, np.asarray(folder.targets, dtype=np.int64)


def _hf_disk(path: Path, ds: dict) -> tuple[Pool, Pool | None]:
    """A `datasets` Dataset or DatasetDict written by save_to_disk; a DatasetDict's 'train' split is
    the train pool and its 'test' (or 'validation') split the held-out pool."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("dataset hf_disk needs the Hugging Face datasets package: pip install datasets") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{path}: not a datasets folder written by save_to_disk ({type(e).__name__}: {e})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise ConfigError(f"{path}: DatasetDict without a 'train' split (has {', '.join(loaded)})")
        held = next((loaded[k] for k in ("test", "validation") if k in loaded), None)
        parts = [loaded["train"], held]
    else:
        parts = [loaded, None]
    return tuple(_hf_pool(d, path, ds) if d is not None else None for d in parts)


def _hf_pool(d, path: Path, ds: dict) -> Pool:
    xc, yc = ds.get("input_column", "image"), ds.get("label_column", "label")
    for c in (xc, yc):
        if c not in d.column_names:
            raise ConfigError(f"{path}: no column '{c}' (columns: {', '.join(d.column_names)}); "
                              "set dataset.input_column / label_column")
    xs = d[xc]
    if xs and hasattr(xs[0], "convert"):  # PIL images (an Image feature)
        x = _stack_images([_pil_to_array(im, ds, _image_size(ds)) for im in xs], path)
    else:
        x = np.asarray(xs, dtype=np.float32)
    return np.ascontiguousarray(x), np.asarray(d[yc])




# -- plan time ---------------------------------------------------------------------------------
# Sizes, input shapes and classes of the built-in sources, so that `snakemake -n` checks split sizes and
# builds the model without reading (or downloading) them: (train pool, held-out pool or None, x shape, classes;
# classes None = regression with that many targets in `targets`).
_KNOWN = {
    "digits": (1797, None, (1, 8, 8), 10),
    "mnist": (60000, 10000, (1, 28, 28), 10),
    "fashionmnist": (60000, 10000, (1, 28, 28), 10),
    "cifar10": (50000, 10000, (3, 32, 32), 10),
    ("sklearn", "load_iris"): (150, None, (4,), 3),
    ("sklearn", "load_wine"): (178, None, (13,), 3),
    ("sklearn", "load_breast_cancer"): (569, None, (30,), 2),
    ("sklearn", "load_digits"): (1797, None, (64,), 10),
    ("sklearn", "load_diabetes"): (442, None, (10,), None),
    ("sklearn", "load_linnerud"): (20, None, (3,), None),
}
_TARGETS = {("sklearn", "load_diabetes"): 1, ("sklearn", "load_linnerud"): 3}


def plan_summary(ds: dict, data_dir: str, regression: bool) -> dict | None:
    """What the plan-time check needs of a source, cheaply: {"origin", "n_pool", "n_heldout" (or None),
    "in_shape", "n_out"}. Reads an npz fully (its bytes were just read for the content hash anyway) and
    runs the `prepare` job's checks on it (non-finite values, labels, lengths); lists an image folder
    without decoding images. None where it cannot be told without the heavy import (hf_disk)."""
    name = ds["name"]
    if dataset_entry(name).text:
        from .text import text_summary

        return text_summary(ds, data_dir)
    origin = source_origin(ds, data_dir)
    key = (name, ds.get("loader")) if name == "sklearn" else name
    if key in _KNOWN:
        n_pool, n_held, shape, k = _KNOWN[key]
        if ds.get("classes"):  # a class subset: sizes unknown without the labels (prepare checks them)
            return {"origin": origin, "n_pool": None, "n_heldout": None, "in_shape": shape,
                    "n_out": len(ds["classes"]) if not regression else None}
        n_out = _TARGETS.get(key, 1) if regression else (ds.get("n_classes") or k)
        return {"origin": origin, "n_pool": n_pool, "n_heldout": n_held, "in_shape": shape, "n_out": n_out}
    if name == "npz":
        train, held = _npz(data_path(ds, data_dir))
        check_finite(train, origin, "train" if held is not None else None)
        if held is not None:
            check_finite(held, origin, "held-out")
        if held is not None and held[0].shape[1:] != train[0].shape[1:]:
            raise ConfigError(f"{origin}: 'x_test' examples have shape {list(held[0].shape[1:])}, "
                              f"'x' {list(train[0].shape[1:])}")
        pools = [p for p in (train, held) if p is not None]
        if regression:
            y = train[1]
            n_out = 1 if y.ndim == 1 else int(np.prod(y.shape[1:]))
        else:
            ys = [integer_labels(p[1], origin) for p in pools]
            if ds.get("classes"):
                ys = [np.array([c for c in y if c in set(ds["classes"])]) for y in ys]
                missing = sorted(set(ds["classes"]) - set(np.concatenate(ys).tolist()))
                if missing:
                    raise ConfigError(f"{origin}: dataset.classes {missing} do not occur in the labels")
                ys = [np.searchsorted(np.sort(ds["classes"]), y) for y in ys]  # only the counts matter below
            n_out = check_class_labels(np.concatenate(ys), origin, ds.get("n_classes"))
        sizes = [len(y) for y in ys] if not regression else [len(p[1]) for p in pools]
        return {"origin": origin, "n_pool": sizes[0], "n_heldout": sizes[1] if held is not None else None,
                "in_shape": tuple(train[0].shape[1:]), "n_out": n_out}
    if name == "image_folder" and not regression:
        return _image_folder_summary(data_path(ds, data_dir), ds, origin)
    return None


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _image_folder_summary(path: Path, ds: dict, origin: str) -> dict:
    """Counts images per class folder (ImageFolder's layout and suffixes); opens one image for its size."""
    if not path.is_dir():
        raise ConfigError(f"{origin}: not an ImageFolder tree (not a folder)")
    files = [sorted(f for f in c.rglob("*") if f.suffix.lower() in _IMAGE_SUFFIXES)
             for c in sorted(p for p in path.iterdir() if p.is_dir())]
    files = [f for f in files if f]
    if not files:
        raise ConfigError(f"{origin}: not an ImageFolder tree (no class folders with images)")
    size = _image_size(ds)
    if size is None:
        from PIL import Image

        with Image.open(files[0][0]) as im:  # reads the header only
            size = (im.size[1], im.size[0])
    n_out = ds.get("n_classes") or len(files)
    if ds.get("classes"):
        n_out = len(ds["classes"])
    return {"origin": origin, "n_pool": sum(map(len, files)) if not ds.get("classes") else None, "n_heldout": None,
            "in_shape": (ds.get("channels", 3), *size), "n_out": n_out}


def check_split_sizes(ds: dict, summary: dict) -> None:
    """The split sizes fit the source's pools (the checks of load_splits, before any job runs)."""
    n_pool, n_held = summary["n_pool"], summary["n_heldout"]
    if n_pool is None:
        return
    n_tr, n_val, n_q, n_test = ds["n_train"], ds["n_val"], ds["n_query"], ds.get("n_test")
    unit = summary.get("unit", "examples")  # text sources: sequences of seq_len tokens
    if n_held is None:
        need = n_tr + n_val + n_q + (n_test or 1)
        if need > n_pool:
            raise ConfigError(f"{summary['origin']}: {n_pool} {unit}, but the splits need {need} "
                              f"(n_train {n_tr} + n_val {n_val} + n_query {n_q} + n_test {n_test or 1})")
    else:
        if n_tr > n_pool:
            raise ConfigError(f"{summary['origin']}: n_train {n_tr} exceeds the {n_pool} training {unit}")
        need = n_val + n_q + (n_test or 1)
        if need > n_held:
            raise ConfigError(f"{summary['origin']}: {n_held} held-out {unit}, but n_val + n_query + n_test "
                              f"need {need}")
