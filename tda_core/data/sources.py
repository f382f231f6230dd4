"""Raw image sources: the embedded scikit-learn digits, and torchvision datasets from data_dir.

Every source returns (train_pool, heldout_pool), each a pair (images float32 [n, C, H, W] in
[-1, 1], labels int64 [n]). Held-out pools feed validation, query and test splits.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError

Pool = tuple[np.ndarray, np.ndarray]


def load_source(name: str, data_dir: str, download: bool) -> tuple[Pool, Pool | None]:
    if name == "digits":
        return _digits(), None
    return _torchvision(name, data_dir, download)


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


def _to_pool(ds) -> Pool:
    data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
    x = data.astype(np.float32) / 255.0 * 2.0 - 1.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # grey [n,H,W] or colour [n,H,W,C]
    return np.ascontiguousarray(x), np.asarray(ds.targets, dtype=np.int64)


def _cifar_cls():
    import torchvision

    class Cifar10(torchvision.datasets.CIFAR10):
        """CIFAR-10 in torchvision's on-disk format; checks that the batch files exist, not their md5
        (the md5 check rejects re-packed or trimmed copies used on clusters and in tests)."""

        def _check_integrity(self) -> bool:
            base = Path(self.root) / self.base_folder
            return all((base / f).exists() for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            meta = Path(self.root) / self.base_folder / self.meta["filename"]
            if meta.exists():
                super()._load_meta()
            else:
                self.classes = [str(i) for i in range(10)]
                self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return Cifar10

