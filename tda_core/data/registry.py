"""The one registry of datasets: one `DatasetEntry` row per `dataset.name`, read by config validation (the
name, whether `dataset.path` is required and content-hashed, text vs arrays), the loaders
(tda_core.data.sources.load_source, tda_core.data.text) and error messages (the origin). Adding a dataset
is its loader function plus one row here. Imports nothing heavy (the Snakefile validates with it).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..registry_rows import import_path, row_of

BUNDLED = "bundled"    # ships with an installed package (no file, no download)
DATA_DIR = "data_dir"  # files under the config's data_dir (torchvision's layout; `download` may fetch them)
PATH = "path"          # a file or folder named by dataset.path (absolute or under data_dir); its sha256 is hashed


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    load: str            # "module:function"(ds, data_dir, download) -> (train pool, held-out pool or None)
    reads: str           # BUNDLED, DATA_DIR or PATH (above)
    origin: str = "{name}"  # what an error message names (format fields: the dataset block, data_dir)
    text: bool = False   # token sequences for kind: language_model (tda_core/data/text.py), not arrays
    requires: tuple[str, ...] = ()  # dataset keys it needs besides name (PATH rows: path, always)


_SOURCES = "tda_core.data.sources"
_ROWS = (
    DatasetEntry("digits", f"{_SOURCES}:load_digits", BUNDLED),
    DatasetEntry("mnist", f"{_SOURCES}:load_torchvision", DATA_DIR, "{name} under {data_dir}"),
    DatasetEntry("fashionmnist", f"{_SOURCES}:load_torchvision", DATA_DIR, "{name} under {data_dir}"),
    DatasetEntry("cifar10", f"{_SOURCES}:load_torchvision", DATA_DIR, "{name} under {data_dir}"),
    DatasetEntry("npz", f"{_SOURCES}:load_npz", PATH),
    DatasetEntry("sklearn", f"{_SOURCES}:load_sklearn", BUNDLED, "sklearn.datasets.{loader}", requires=("loader",)),
    DatasetEntry("image_folder", f"{_SOURCES}:load_image_folder", PATH),
    DatasetEntry("hf_disk", f"{_SOURCES}:load_hf_disk", PATH),
    # text rows: read by tda_core.data.text.load_text (token windows), not through `load`'s array signature
    DatasetEntry("text", "tda_core.data.text:load_text", PATH, text=True),
    DatasetEntry("lee_corpus", "tda_core.data.text:load_text", BUNDLED, "lee_corpus (gensim's lee_background.cor)",
                 text=True),
)
DATASETS: dict[str, DatasetEntry] = {row.name: row for row in _ROWS}


def dataset_entry(name: str) -> DatasetEntry:
    return row_of(DATASETS, name, "dataset")


def is_text(ds: dict) -> bool:
    """Token sequences for language models (tda_core/data/text.py), not arrays."""
    return ds.get("name") in DATASETS and DATASETS[ds["name"]].text


def loader(name: str):
    return import_path(dataset_entry(name).load)


def check_dataset_block(where: str, ds: dict) -> None:
    """The name has a row, and the block has the keys that row needs (one line each)."""
    try:
        row = dataset_entry(ds["name"])
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    for key in (("path",) if row.reads == PATH else ()) + row.requires:
        if ds.get(key) in (None, ""):
            raise ConfigError(f"{where}: dataset {row.name} needs dataset.{key}")
