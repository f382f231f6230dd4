"""Stage 3: merge subset shards and full-data measurements into one ground-truth file."""
from __future__ import annotations

import numpy as np

from .. import io
from ..api import Experiment
from .common import measure


def gather(exp: Experiment, masks_path, shard_paths: list, model_paths: list, out) -> None:
    masks = io.load_npy(masks_path, expect_hash=exp.hash)
    shards = sorted((io.load_npz(p, expect_hash=exp.hash)[0] for p in shard_paths), key=lambda a: a["subsets"][0])
    subset = np.concatenate([a["query"] for a in shards])
    ids = np.concatenate([a["subsets"] for a in shards])
    if not np.array_equal(ids, np.arange(len(masks))):
        raise ValueError(f"shards cover subsets {ids.tolist()}, expected 0..{len(masks) - 1}")
    s = exp.splits
    full = np.stack([
        measure(exp, io.load_torch(p, expect_hash=exp.hash)["checkpoints"][-1]["params"], s.query_x, s.query_y)
        for p in model_paths
    ])
    io.save_npz(out, {"config_hash": exp.hash, "n_subsets": len(masks)}, masks=masks, subset=subset, full=full)
