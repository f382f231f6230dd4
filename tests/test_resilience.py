"""Faults: kill -9 mid-workflow then resume, corrupted files, diverging training, full/read-only disks.

The workflow tests run the tiny config with Snakemake in a temporary working directory, exactly as
a user would; one full-data seed and two methods instead of 2 x 3, to stay inside the CI time budget
(10 jobs per run; each job spends most of its ~5 CPU-seconds importing torch).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tda_core import io
from tda_core.api import Experiment
from tda_core.config import resolve_experiment, shared_experiment_config, validate_config
from tda_core.errors import ArtifactError, StorageError, TrainingDiverged
from tda_core.training import Run, train_models

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "workflow" / "config" / "tiny.yaml"
METHODS = ["grad_dot", "tracin"]
# Numbers that must not change when a run is interrupted and resumed (costs may).
COST_COLUMNS = {"wall_time_s", "peak_memory_mb"}
# Under pytest-xdist (--dist loadgroup) this module's tests share one worker, so `reference` runs once.
pytestmark = pytest.mark.xdist_group("resilience")


def tiny_config(results: Path, **train) -> dict:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["results_dir"] = str(results)
    cfg["tracking"] = {"mode": "none"}
    exp = cfg["experiments"]["tiny-mlp"]
    exp["methods"] = METHODS
    exp.pop("removal", None)  # tiny.yaml's top-k removal is tested in test_workflow
    exp["seeds"] = 1
    exp["train"].update(train)
    return cfg


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"),
            "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", "2", *extra]


def make_workdir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(tiny_config(path / "results")))
    return path


def run_workflow(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *extra), cwd=workdir, capture_output=True, text=True, timeout=600)


def jobs_planned(stdout_stderr: str) -> int:
    """The `total` row of Snakemake's 'Job stats' table (jobs this invocation had to run)."""
    return int(re.search(r"^total\s+(\d+)", stdout_stderr, flags=re.M).group(1))


def board(results: Path) -> pd.DataFrame:
    df = pd.read_csv(results / "leaderboard.csv")
    return df.drop(columns=[c for c in COST_COLUMNS if c in df]).sort_values(["experiment", "method", "metric"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: its leaderboard and artifacts are what every fault test compares to."""
    work = make_workdir(tmp_path_factory.mktemp("reference") / "work")
    t0 = time.monotonic()
    res = run_workflow(work)
    assert res.returncode == 0, res.stderr[-3000:]
    print(f"\nuninterrupted tiny run: {time.monotonic() - t0:.0f}s")
    return {"work": work, "results": work / "results", "jobs": jobs_planned(res.stderr + res.stdout)}


def load_any(path: Path) -> None:
    """Read an artifact with the project's own loaders (raises ArtifactError if it is damaged)."""
    if path.suffix == ".pt":
        io.load_torch(path)
    elif path.suffix == ".npy":
        io.load_npy(path)
    elif path.suffix == ".npz":
        io.load_npz(path)
    elif path.suffix == ".json":
        io.read_json(path)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_leaderboard(reference, tmp_path):
    work = make_workdir(tmp_path / "work")
    results = work / "results"
    # Own process group, so kill -9 takes Snakemake and the jobs it is running down together,
    # as a crashed node or an OOM-killed login session would.
    proc = subprocess.Popen(snakemake_cmd(work), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(results.glob("tiny-mlp/scores/*/seed*.json")):  # first attribution written
            assert proc.poll() is None, "workflow ended before it could be interrupted"
            assert time.monotonic() < deadline, "no attribution output after 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = sorted(p for p in results.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    assert not (results / "leaderboard.csv").exists()
    assert any(p.suffix == ".pt" for p in done)  # some, not all, outputs exist
    for path in done:  # atomic writes: whatever is there under its final name is complete
        load_any(path)

    # Resume as the README says: remove the stale lock, rerun (rerun-incomplete is in the profile).
    assert run_workflow(work, "--unlock").returncode == 0
    res = run_workflow(work)
    assert res.returncode == 0, res.stderr[-3000:]
    assert jobs_planned(res.stderr + res.stdout) < reference["jobs"]  # resumed, not restarted
    assert not list(results.rglob("*.tmp"))  # temporary files of killed writes were cleaned up

    got, want = board(results), board(reference["results"])
    assert list(got.columns) == list(want.columns) and len(got) == len(METHODS)
    for col in got.columns:
        if pd.api.types.is_numeric_dtype(want[col]):
            np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-12, atol=0,
                                       equal_nan=True, err_msg=col)
        else:
            assert got[col].fillna("").tolist() == want[col].fillna("").tolist(), col


def tda(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["tda", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(errors) == 1, res.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.slow
def test_corrupted_checkpoint_fails_attribution_naming_the_file(reference, tmp_path):
    exp_dir = reference["results"] / "tiny-mlp"
    ckpt = tmp_path / "results" / "tiny-mlp" / "models" / "seed0.pt"
    ckpt.parent.mkdir(parents=True)
    data = (exp_dir / "models" / "seed0.pt").read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # a torn copy, e.g. from an rsync cut short
    cfg = json.loads((exp_dir / "config.json").read_text())
    cfg["results_dir"] = str(tmp_path / "results")  # not hashed: the copy is the same experiment
    io.write_json(tmp_path / "config.json", cfg)
    out = tmp_path / "results" / "tiny-mlp" / "scores" / "tracin" / "seed0.json"  # where the layout puts it
    res = tda("attribute", "--exp-config", str(tmp_path / "config.json"), "--method", "tracin", "--seed", "0",
              "--tracking", '{"mode": "none"}', cwd=tmp_path)
    assert_one_line_error(res, "corrupted checkpoint", str(ckpt))
    assert not out.exists()  # no 'failed' sidecar: the job fails and Snakemake can rerun it


@pytest.mark.slow
def test_corrupted_score_file_fails_evaluation_naming_the_file(reference, tmp_path):
    exp_dir = reference["results"] / "tiny-mlp"
    scores = tmp_path / "scores" / "grad_dot"  # given as grad_dot's score folder (--scores-dir)
    scores.mkdir(parents=True)
    for ext in ("json", "npy"):  # the reference run has one full-data seed
        (scores / f"seed0.{ext}").write_bytes((exp_dir / "scores" / "grad_dot" / f"seed0.{ext}").read_bytes())
    npy = scores / "seed0.npy"
    npy.write_bytes(npy.read_bytes()[:100])  # header intact, data cut off
    out = tmp_path / "metric.json"
    res = tda("evaluate", "--exp-config", str(exp_dir / "config.json"), "--metric", "lds", "--method", "grad_dot",
              "--scores-dir", str(scores),
              "--groundtruth", str(exp_dir / "groundtruth" / "measurements.npz"),
              "--tracking", '{"mode": "none"}', "--out", str(out), cwd=tmp_path)
    assert_one_line_error(res, "corrupted", str(npy))
    assert not out.exists()


def test_loaders_name_damaged_files(tmp_path):
    """Each loader turns damage into one ArtifactError naming the file (in-process, fast)."""
    for name, loader, payload in [("a.pt", io.load_torch, b"PK\x03\x04 not a zip"),
                                  ("a.npy", io.load_npy, b"\x93NUMPY garbage"),
                                  ("a.npz", io.load_npz, b"PK\x05\x06" + b"\0" * 18),
                                  ("a.json", io.read_json, b'{"config_hash": ')]:
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ArtifactError, match=re.escape(str(path))):
            loader(path)
        with pytest.raises(ArtifactError, match="missing file"):
            loader(tmp_path / f"missing-{name}")


def exp_config(tmp_path: Path, **train) -> Experiment:
    cfg = validate_config(tiny_config(tmp_path / "results", **train))
    return Experiment(shared_experiment_config(resolve_experiment(cfg, "tiny-mlp")))


def test_diverging_shard_training_raises_with_seeds_and_lr(tmp_path):
    """Vectorised subset training (one shard's models under vmap) with an absurd learning rate."""
    exp = exp_config(tmp_path, lr=1e6, momentum=0.0)
    masks = exp.masks()
    runs = [Run(seed, masks[j]) for j in range(2) for seed in range(2)]
    with pytest.raises(TrainingDiverged, match=r"non-finite at step \d+ \(seeds \[.*\]\); lower train.lr \(now 1000000"):
        train_models(exp.cfg, exp.splits, runs, exp.build_model, exp.task, exp.device, vectorize=True)


@pytest.mark.slow
def test_diverging_training_fails_the_job_with_a_message(tmp_path):
    exp = exp_config(tmp_path, lr=1e6, momentum=0.0)
    io.write_json(tmp_path / "config.json", exp.cfg)
    out = tmp_path / "seed0.pt"
    res = tda("train", "--exp-config", str(tmp_path / "config.json"), "--seed", "0",
              "--tracking", '{"mode": "none"}', "--out", str(out), cwd=tmp_path)
    assert_one_line_error(res, "training loss became non-finite", "lower train.lr")
    assert not out.exists()


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A small tmpfs at `path` (root only): a real full or read-only file system."""
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or 'mount failed'}); needs root/CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.slow
def test_read_only_results_dir_is_reported_with_the_path(tmp_path):
    exp = exp_config(tmp_path)
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        out = ro / "tiny-mlp" / "config.json"
        res = tda("prepare", "--experiment-json", json.dumps(exp.cfg), "--out-config", str(out),
                  "--out-masks", str(ro / "tiny-mlp" / "groundtruth" / "masks.npy"), cwd=tmp_path)
        line = assert_one_line_error(res, "cannot write", "Read-only file system")
        assert str(ro / "tiny-mlp") in line


def test_full_disk_is_reported_with_the_path_and_leaves_no_partial_file(tmp_path):
    exp = exp_config(tmp_path)
    result = train_models(exp.cfg, exp.splits, [Run(0)], exp.build_model, exp.task, exp.device,
                          keep_checkpoints=True)[0]
    blob = {"config_hash": exp.hash, "checkpoints": result.checkpoints}
    with tmpfs(tmp_path / "full", "size=16k") as full:
        target = full / "seed0.pt"
        with pytest.raises(StorageError, match=re.escape(f"cannot write {target}: No space left on device")):
            io.save_torch(target, blob)
        assert list(full.iterdir()) == []  # neither the target nor the temporary file is left
        io.write_json(full / "small.json", {"ok": True})  # the file system itself still works
