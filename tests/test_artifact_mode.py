"""Artifacts get the mode a plain open() gives (0666 & ~umask), not mkstemp's 0600."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from tda_core import io


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask):
        os.umask(mask)
        return mask

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_artifact_mode_follows_umask(tmp_path, umask, mask, want):
    umask(mask)
    assert io.current_umask() == mask
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.save_npy(tmp_path / "b.npy", np.zeros(3, dtype=np.float32), {"config_hash": "h"})
    io.save_torch(tmp_path / "a.pt", {"w": torch.zeros(2)})
    for name in ("a.json", "b.npy", io.sidecar("b.npy").name, "a.pt"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == want, name
    # a rewrite keeps following the umask (os.replace installs the new file's mode)
    umask(0o022)
    io.write_json(tmp_path / "a.json", {"x": 2})
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
