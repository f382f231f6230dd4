"""Tracking reaches jobs through {results_dir}/.tracking.json (not rule params), --tracking overrides it."""
from __future__ import annotations

import argparse
import os
import stat
import types

import pytest

from tda_core.cli import tracking_of
from tda_core.errors import ArtifactError
from tda_core.tracking import read_settings, settings_path, write_settings


def test_write_settings_round_trip_and_idempotent(tmp_path):
    res = tmp_path / "results"
    assert read_settings(res) == {}  # never written: mode auto
    assert write_settings(res, {"mode": "none", "project": "p"}) is True
    mtime = settings_path(res).stat().st_mtime_ns
    assert write_settings(res, {"project": "p", "mode": "none"}) is False  # unchanged: not rewritten
    assert settings_path(res).stat().st_mtime_ns == mtime
    assert read_settings(res) == {"mode": "none", "project": "p"}
    assert write_settings(res, {"mode": "offline"}) is True
    assert read_settings(res) == {"mode": "offline"}
    assert stat.S_IMODE(settings_path(res).stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in res.iterdir()] == [".tracking.json"]  # no temporary file left


def test_bad_settings_file_is_an_artifact_error(tmp_path):
    settings_path(tmp_path).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="JSON object"):
        read_settings(tmp_path)


def test_cli_tracking_precedence(tmp_path):
    write_settings(tmp_path, {"mode": "offline"})
    args = argparse.Namespace(tracking=None)
    from_workflow = types.SimpleNamespace(cfg={"results_dir": str(tmp_path)})  # results/{exp}/config.json
    assert tracking_of(args, from_workflow) == {"mode": "offline"}
    assert tracking_of(args, results_dir=tmp_path) == {"mode": "offline"}  # leaderboard: its --out-dir
    own = types.SimpleNamespace(cfg={"results_dir": str(tmp_path), "tracking": {"mode": "none"}})  # --config
    assert tracking_of(args, own) == {"mode": "none"}
    assert tracking_of(argparse.Namespace(tracking='{"mode": "online"}'), own) == {"mode": "online"}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_inherited_wandb_service_whose_socket_is_gone_is_dropped(tmp_path, monkeypatch):
    """A job that inherits WANDB_SERVICE from a process on another host (or one that has exited) must start
    its own service rather than fail to connect; a socket that exists is kept."""
    from tda_core.tracking import _drop_unreachable_service

    monkeypatch.setenv("WANDB_SERVICE", f"3-123-unix-{tmp_path}/gone/socket")
    _drop_unreachable_service()
    assert "WANDB_SERVICE" not in os.environ
    sock = tmp_path / "socket"
    sock.write_text("")
    monkeypatch.setenv("WANDB_SERVICE", f"3-123-unix-{sock}")
    _drop_unreachable_service()
    assert os.environ["WANDB_SERVICE"] == f"3-123-unix-{sock}"


def test_no_shared_service_when_tracking_is_off(monkeypatch):
    from tda_core.tracking import share_service

    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    assert share_service({"mode": "none"}) is False and "WANDB_SERVICE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert share_service({"mode": "offline"}) is False and "WANDB_SERVICE" not in os.environ
