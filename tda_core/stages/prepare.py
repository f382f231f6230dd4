"""Stage 1: write the resolved experiment config and the ground-truth subset masks."""
from __future__ import annotations

from .. import io
from ..api import Experiment


def prepare(exp: Experiment, out_config, out_masks) -> None:
    splits = exp.splits  # loads the data now, so a missing data_dir fails here with one line
    masks = exp.masks()
    io.save_npy(out_masks, masks, {"config_hash": exp.hash, "n_train": splits.n_train,
                                   "alpha": exp.cfg["groundtruth"]["alpha"]})
    io.write_json(out_config, exp.cfg)
