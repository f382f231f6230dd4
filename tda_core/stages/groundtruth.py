"""Stage 2: merge subset shards and full-data measurements into one ground-truth file."""
from __future__ import annotations

import numpy as np

from .. import io
from ..api import Experiment
from ..errors import ArtifactError
from ..seeds import GROUNDTRUTH_PROTOCOL, groundtruth_seeds
from ..training import full_data_steps
from .common import measure


def _merge(paths, exp, n):
    loaded = sorted((io.load_npz(p, expect_hash=exp.hash) for p in paths), key=lambda am: am[0]["subsets"][0])
    ids = np.concatenate([a["subsets"] for a, _ in loaded])
    if not np.array_equal(ids, np.arange(n)):
        raise ValueError(f"shards cover subsets {ids.tolist()}, expected 0..{n - 1}")
    return np.concatenate([a["query"] for a, _ in loaded])


def gather(exp: Experiment, masks_path, shard_paths: list, model_paths: list, out, fixed_paths: list | None = None) -> None:
    """fixed_paths (groundtruth.track fixed_seed / both): the fixed-seed shards, gathered as `fixed` [M, R, Q]."""
    masks = io.load_npy(masks_path, expect_hash=exp.hash)
    loaded = sorted((io.load_npz(p, expect_hash=exp.hash) for p in shard_paths), key=lambda am: am[0]["subsets"][0])
    shards = [a for a, _ in loaded]
    subset = np.concatenate([a["query"] for a in shards])
    ids = np.concatenate([a["subsets"] for a in shards])
    if not np.array_equal(ids, np.arange(len(masks))):
        raise ValueError(f"shards cover subsets {ids.tolist()}, expected 0..{len(masks) - 1}")
    expected = groundtruth_seeds(exp.cfg)
    for _, m in loaded:
        if m.get("subset_seeds") != expected:
            raise ArtifactError(f"{exp.name}: ground-truth shard {m['shard']} was trained on seeds "
                                f"{m.get('subset_seeds', 'shared with the scoring models (protocol 1)')}, expected "
                                f"{expected} (ground-truth seed protocol {GROUNDTRUTH_PROTOCOL}); rerun the shards")
    s = exp.splits
    full = np.stack([
        measure(exp, io.load_torch(p, expect_hash=exp.hash)["checkpoints"][-1]["params"], s.query_x, s.query_y)
        for p in model_paths
    ])
    # groundtruth.steps (same_epochs / same_steps) travels with the measurements, so the distributional
    # metrics can report which step protocol their subset models followed.
    mode = exp.spec.groundtruth.steps
    subset_steps = sorted({t for _, m in loaded for t in m.get("subset_total_steps", [])})
    io.save_npz(out, {"config_hash": exp.hash, "n_subsets": len(masks), "groundtruth_steps": mode,
                      "subset_total_steps": subset_steps, "full_total_steps": full_data_steps(exp.cfg, s.n_train),
                      "subset_seeds": expected, "groundtruth_protocol": GROUNDTRUTH_PROTOCOL},
                masks=masks, subset=subset, full=full,
                **({"fixed": _merge(fixed_paths, exp, len(masks))} if fixed_paths else {}))
