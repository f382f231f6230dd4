"""tracking mode `record`: every tracked run is written, when it ends, as one JSON file that holds what the job
logged (the tests read runs through it instead of W&B's binary log)."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from tda_core.tracking import record_path, share_service, tracked_run

RECORD = {"mode": "record", "project": "p", "entity": "someone"}


def _read(path) -> dict:
    return json.loads(path.read_text())  # strict JSON: no NaN


def test_a_recorded_run_holds_exactly_what_was_logged(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")  # W&B's switch: a record is no W&B run, so it still writes
    image = tmp_path / "plot.png"
    with tracked_run(RECORD, str(tmp_path), "exp", "train", "exp/train/seed0",
                     {"lr": 0.05, "hidden": (16,), "seed": np.int64(3)}) as run:
        run.log({"loss": 1.5, "step": 0})
        run.log({"loss": np.float32(0.75), "step": 1})
        run.summary_update({"test_accuracy": 0.5, "note": "first"})
        run.summary_update({"test_accuracy": 0.875})  # a later update replaces the value
        run.log_table("evaluation", pd.DataFrame({"method": ["a", "b"], "value": [0.25, 0.5], "n": [3, 4]}))
        run.log_image("board", image)
        path = record_path(tmp_path, "train", "exp/train/seed0")
        assert not path.exists()  # written when the run ends
    assert path.parent == tmp_path / "tracking" / "train" and path.name == "exp%2Ftrain%2Fseed0.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert _read(path) == {
        "project": "p", "entity": "someone", "group": "exp", "job_type": "train", "name": "exp/train/seed0",
        "config": {"lr": 0.05, "hidden": [16], "seed": 3},
        "summary": {"test_accuracy": 0.875, "note": "first"},
        "history": [{"loss": 1.5, "step": 0}, {"loss": 0.75, "step": 1}],
        "tables": {"evaluation": {"columns": ["method", "value", "n"], "data": [["a", 0.25, 3], ["b", 0.5, 4]]}},
        "images": {"board": str(image)},
        "exit_code": 0,
    }
    assert not (tmp_path / "wandb").exists()


def test_an_exception_in_the_run_is_recorded_and_raised(tmp_path):
    with pytest.raises(RuntimeError, match="diverged"):
        with tracked_run(RECORD, str(tmp_path), "exp", "attribute", "exp/grad_dot/seed0") as run:
            run.summary_update({"wall_time_s": 2.0})
            raise RuntimeError("training diverged")
    record = _read(record_path(tmp_path, "attribute", "exp/grad_dot/seed0"))
    assert record["exit_code"] == 1 and record["summary"] == {"wall_time_s": 2.0}  # what came before the error


def test_nan_in_a_table_or_summary_is_null(tmp_path):
    table = pd.DataFrame({"method": ["a", "b", None], "value": [0.5, float("nan"), np.inf]})
    with tracked_run(RECORD, str(tmp_path), "exp", "evaluate", "exp/evaluate") as run:
        run.log_table("evaluation", table)
        run.summary_update({"a/lds/value": 0.5, "b/lds/value": np.float64("nan")})
    text = record_path(tmp_path, "evaluate", "exp/evaluate").read_text()
    assert "NaN" not in text and "Infinity" not in text
    record = json.loads(text)
    assert record["tables"]["evaluation"]["data"] == [["a", 0.5], ["b", None], [None, None]]
    assert record["summary"] == {"a/lds/value": 0.5, "b/lds/value": None}
    assert math.isnan(table["value"][1])  # the caller's frame is not changed


def test_a_rerun_replaces_the_record_and_names_stay_apart(tmp_path):
    for value in (1.0, 2.0):
        with tracked_run(RECORD, str(tmp_path), "exp", "evaluate", "exp/evaluate") as run:
            run.summary_update({"value": value})
    with tracked_run(RECORD, str(tmp_path), "exp", "evaluate", "exp%2Fevaluate") as run:  # escapes the escape
        run.summary_update({"value": 3.0})
    with tracked_run(RECORD, str(tmp_path), "exp", "evaluate", "..") as run:
        run.summary_update({"value": 4.0})
    files = sorted((tmp_path / "tracking" / "evaluate").iterdir())
    assert len(files) == 3 and all(f.parent == tmp_path / "tracking" / "evaluate" for f in files)
    assert {_read(f)["name"]: _read(f)["summary"]["value"] for f in files} == {
        "exp/evaluate": 2.0, "exp%2Fevaluate": 3.0, "..": 4.0}


def test_record_mode_starts_no_wandb_service(monkeypatch):
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert share_service({"mode": "record"}) is False and "WANDB_SERVICE" not in os.environ
