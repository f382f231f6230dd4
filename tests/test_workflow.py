"""A real end-to-end `snakemake` run of workflow/config/tiny.yaml in a temp dir (not mocked), W&B
offline summaries, bit-identical reruns, dry run and lint of the shipped configs."""
import glob
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wandb_log
from conftest import TINY_WORKFLOW_GROUP, copy_workflow_run, planned_jobs

from tda_core.bundle import load_bundle

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(TINY_WORKFLOW_GROUP)]


def snakemake(repo: Path, workdir: Path, *args, check=True, configfile=None):
    configfile = configfile or repo / "workflow" / "config" / "tiny.yaml"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return r


@pytest.fixture(scope="module")
def tiny_run(tiny_workflow_run):
    """tiny.yaml run once for the session (conftest.py); these tests only read it and dry-run on it."""
    return tiny_workflow_run


def test_tiny_workflow_writes_the_leaderboard(tiny_run):
    res = tiny_run / "results"
    df = pd.read_csv(res / "leaderboard.csv")
    lds = df[df.metric == "lds"].set_index("method")
    assert set(lds.index) >= {"random", "grad_dot", "tracin"}
    assert (lds.status == "ok").all()
    bundle = json.loads((res / "tiny-mlp" / "metrics.json").read_text())  # a version-1 result bundle
    exp_cfg = json.loads((res / "tiny-mlp" / "config.json").read_text())
    assert bundle["bundle_version"] == 1 and bundle["stage"] == "evaluate"
    assert bundle["config"] == exp_cfg and bundle["config_hash"] == exp_cfg["config_hash"]
    assert set(bundle["versions"]) == {"tda_bench", "torch", "numpy", "python"}
    assert bundle["device"] == "cpu" or bundle["device"].startswith("cuda:")
    assert load_bundle(res / "tiny-mlp" / "metrics.json")["results"]  # the schema accepts what the stage writes
    for m in ("grad_dot", "tracin"):  # one row per variant (per-seed, seed-averaged, ...)
        rows = lds.loc[[m]]
        assert ((rows.ci_low <= rows.value) & (rows.value <= rows.ci_high)).all()
    assert "grad_dot" in (res / "leaderboard.md").read_text()
    assert (res / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table" in (res / "leaderboard.html").read_text()
    scores = np.load(res / "tiny-mlp" / "scores" / "grad_dot" / "seed0.npy")
    assert scores.dtype == np.float32 and scores.shape == (12, 120)
    meta = json.loads((res / "tiny-mlp" / "scores" / "grad_dot" / "seed0.json").read_text())
    assert meta["config_hash"] == json.loads((res / "tiny-mlp" / "config.json").read_text())["config_hash"]
    assert meta["wall_time_s"] > 0 and meta["peak_memory_mb"] > 0
    gt = np.load(res / "tiny-mlp" / "groundtruth" / "measurements.npz")
    assert gt["subset"].shape == (8, 2, 12) and gt["full"].shape == (2, 12) and gt["masks"].shape == (8, 120)


def test_tiny_workflow_runs_top_k_removal_into_the_leaderboard(tiny_run):
    res = tiny_run / "results"
    bundle = load_bundle(res / "tiny-mlp" / "removal" / "results.json")  # the schema accepts it
    cfg = json.loads((res / "tiny-mlp" / "config.json").read_text())
    assert bundle["stage"] == "removal" and bundle["config_hash"] == cfg["config_hash"]
    assert bundle["removal"]["retrain_seeds"] == [2, 3] and len(bundle["removal"]["queries"]) == 3
    full = json.loads((res / "tiny-mlp" / "removal" / "baselines" / "full.json").read_text())
    job = json.loads((res / "tiny-mlp" / "removal" / "methods" / "grad_dot" / "k30.json").read_text())
    assert np.shape(job["measurement"]) == (2, 3) and [len(r) for r in job["removed"]] == [30, 30, 30]
    drop = np.mean(np.asarray(full["measurement"]) - np.asarray(job["measurement"]))
    df = pd.read_csv(res / "leaderboard.csv")
    row = df[(df.metric == "topk_drop_k30") & (df.method == "grad_dot")].iloc[0]
    assert row.value == pytest.approx(drop) and row.ci_low <= row.value <= row.ci_high
    assert set(df[df.metric == "topk_drop_k4"].method) == {"grad_dot", "random-removal"}
    assert set(df[df.metric == "brittleness"].method) == {"grad_dot", "random-removal"}
    assert "## Top-k removal and brittleness" in (res / "leaderboard.md").read_text()
    assert "alt='removal.png'" in (res / "leaderboard.html").read_text()


def test_the_workflow_writes_wandb_offline_runs_per_job_type(tiny_run):
    """tiny.yaml's mode offline: real W&B offline runs, one per job, grouped by experiment (their content is
    checked through the `record` mode: test_recorded_runs_hold_the_evaluated_and_trained_numbers)."""
    res = tiny_run / "results"
    logs = glob.glob(str(res / "wandb" / "offline-run-*" / "run-*.wandb"))
    infos = [wandb_log.run_info(f) for f in logs]
    assert {i["job_type"] for i in infos} >= {"train", "train_subsets", "attribute", "evaluate"}
    assert all(i["group"] in ("tiny-mlp", "leaderboard") for i in infos)
    assert {i["project"] for i in infos} == {"tda-bench-tiny"}
    names = [i["name"] for i in infos]
    assert names.count("tiny-mlp/evaluate") == 1 and names.count("tiny-mlp/train/seed0") == 1
    assert not (res / "tracking").exists()  # no recorded run in mode offline


def test_recorded_runs_hold_the_evaluated_and_trained_numbers(tiny_run, tmp_path, monkeypatch):
    """`tda evaluate` and `tda train` with --tracking mode record on a copy of the workflow's run: the runs
    hold the numbers of the workflow's own metrics.json and a test accuracy recomputed from the model."""
    import torch

    from tda_core.api import Experiment
    from tda_core.cli import main

    work = copy_workflow_run(tiny_run, tmp_path / "work")
    monkeypatch.chdir(work)  # the experiment's results_dir is relative: results/
    exp_config = "results/tiny-mlp/config.json"
    record = json.dumps({"mode": "record", "project": "tda-bench-tiny"})
    truth = json.loads((tiny_run / "results" / "tiny-mlp" / "metrics.json").read_text())  # the workflow's job
    assert main(["evaluate", "--exp-config", exp_config, "--metric", "lds", "--method", "random", "grad_dot",
                 "tracin", "--groundtruth", "results/tiny-mlp/groundtruth/measurements.npz",
                 "--out", str(tmp_path / "metrics.json"), "--tracking", record]) == 0
    run = json.loads((work / "results/tracking/evaluate/tiny-mlp%2Fevaluate.json").read_text())
    assert (run["project"], run["group"], run["job_type"], run["name"], run["exit_code"]) == (
        "tda-bench-tiny", "tiny-mlp", "evaluate", "tiny-mlp/evaluate", 0)
    assert run["config"] == {"experiment": "tiny-mlp", "methods": ["random", "grad_dot", "tracin"], "metrics": ["lds"]}
    (metric,) = [r for r in truth["results"] if r["method"] == "tracin" and r["variant"] == "per-seed"]
    assert metric["metric"] == "lds" and metric["status"] == "ok"
    for key in ("value", "ci_low", "ci_high", "ceiling"):
        assert run["summary"][f"tracin/lds/per-seed/{key}"] == pytest.approx(metric[key], rel=1e-9, abs=1e-12)
    table = pd.DataFrame(run["tables"]["evaluation"]["data"], columns=run["tables"]["evaluation"]["columns"])
    ok = [r for r in truth["results"] if r["status"] == "ok"]
    assert len(table) == len(truth["results"]) and len(ok) >= 6  # every row of the workflow's bundle
    for r in ok:
        (row,) = table[(table.method == r["method"]) & (table.variant == r["variant"])].to_dict("records")
        assert row["value"] == pytest.approx(r["value"], rel=1e-9, abs=1e-12), (r["method"], r["variant"])

    assert main(["train", "--exp-config", exp_config, "--seed", "0", "--out", str(tmp_path / "seed0.pt"),
                 "--tracking", record]) == 0
    run = json.loads((work / "results/tracking/train/tiny-mlp%2Ftrain%2Fseed0.json").read_text())
    assert run["exit_code"] == 0 and run["config"] == json.loads((work / exp_config).read_text())
    accuracy = run["summary"]["test_accuracy"]
    assert accuracy == pytest.approx(truth["model_fit"]["test_accuracy_per_seed"][0], abs=1e-12)  # the workflow's
    exp = Experiment(json.loads((work / exp_config).read_text()))
    params = torch.load(tmp_path / "seed0.pt", weights_only=False)["checkpoints"][-1]["params"]
    with torch.no_grad():
        logits = torch.func.functional_call(exp.build_model(0), params, (exp.splits.test_x,))
    assert accuracy == pytest.approx(float((logits.argmax(-1) == exp.splits.test_y).float().mean()), abs=1e-12)
    assert 0.2 < accuracy <= 1.0  # ten classes: above chance
    copied, workflow = ({p.name for p in (r / "results" / "wandb").glob("offline-run-*")} for r in (work, tiny_run))
    assert copied == workflow  # mode record started no W&B run


def test_rerun_is_a_no_op_and_a_fresh_run_is_bit_identical(repo, tiny_run, tmp_path):
    r = snakemake(repo, tiny_run, "-n")
    assert "Nothing to be done" in r.stdout + r.stderr
    snakemake(repo, tmp_path, "results/tiny-mlp/metrics.json")
    first, second = ({r["method"]: r for r in json.loads((root / "results/tiny-mlp/metrics.json").read_text())["results"]}
                     for root in (tiny_run, tmp_path))
    for m in ("grad_dot", "tracin", ):
        for s in (0, 1):
            a = (tiny_run / f"results/tiny-mlp/scores/{m}/seed{s}.npy").read_bytes()
            b = (tmp_path / f"results/tiny-mlp/scores/{m}/seed{s}.npy").read_bytes()
            assert a == b, f"{m} seed {s} scores differ between identical runs"
        a, b = first[m], second[m]
        assert (a["value"], a["ci_low"], a["ci_high"], a["ceiling"]) == (b["value"], b["ci_low"], b["ci_high"],
                                                                          b["ceiling"])
    assert (np.load(tiny_run / "results/tiny-mlp/groundtruth/measurements.npz")["subset"]
            == np.load(tmp_path / "results/tiny-mlp/groundtruth/measurements.npz")["subset"]).all()


def test_changing_tracking_reruns_nothing(repo, tiny_run, tmp_path):
    """tracking is no rule param (params changes rerun jobs): it reaches jobs through results/.tracking.json."""
    assert json.loads((tiny_run / "results" / ".tracking.json").read_text())["mode"] == "offline"
    tiny = (repo / "workflow/config/tiny.yaml").read_text()
    for name, text in {"none": tiny.replace("mode: offline", "mode: none"),
                       "online": tiny.replace("{mode: offline, project: tda-bench-tiny}",
                                              "{mode: online, project: elsewhere, entity: someone}")}.items():
        assert text != tiny
        cfg = tmp_path / f"tracking-{name}.yaml"
        cfg.write_text(text)
        r = snakemake(repo, tiny_run, "-n", configfile=cfg)
        out = r.stdout + r.stderr
        jobs = planned_jobs(out)
        assert not {"prepare", "train_full", "train_shard", "attribute", "evaluate"} & set(jobs), out[-3000:]
        assert "Nothing to be done" in out, jobs
    # a dry run does not touch the settings the jobs read
    assert json.loads((tiny_run / "results" / ".tracking.json").read_text())["mode"] == "offline"


def test_reordering_the_config_keys_reruns_nothing(repo, tiny_run, tmp_path):
    """The same config written with its keys in another order (yaml.safe_dump sorts them) is the same
    config: rule params are canonical JSON (sort_keys), so a params change means a value changed."""
    import yaml

    tiny = yaml.safe_load((repo / "workflow/config/tiny.yaml").read_text())
    cfg = tmp_path / "sorted.yaml"
    cfg.write_text(yaml.safe_dump(tiny, sort_keys=True))
    exp = tiny["experiments"]["tiny-mlp"]
    assert list(exp) != sorted(exp) and list(exp["dataset"]) != sorted(exp["dataset"])  # the order does change
    r = snakemake(repo, tiny_run, "-n", configfile=cfg)
    out = r.stdout + r.stderr
    assert "Nothing to be done" in out, planned_jobs(out)


def test_planned_jobs_parses_the_dry_run_table():
    out = "Job stats:\njob           count\n----------  -------\ntrain_full        2\nall               1\ntotal             3\n"
    assert planned_jobs(out) == {"train_full": 2, "all": 1}
    assert planned_jobs("Nothing to be done (all requested files are present and up to date).") == {}


@pytest.mark.parametrize("config", ["tiny.yaml", "config.yaml"])
def test_building_the_dag_imports_no_torch(repo, tmp_path, config):
    """Parsing the Snakefile and planning every job reads registry rows only: no torch import."""
    probe = tmp_path / "imported.txt"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(probe)!r}, 'w').write(' '.join(m for m in ('torch', 'tda_core.methods.base',"
            " 'tda_core.stages.train') if m in sys.modules)))\n"
            "from snakemake.cli import main\n"
            f"sys.argv = ['snakemake', '-s', {str(repo / 'Snakefile')!r}, '--directory', {str(tmp_path)!r},"
            f" '--configfile', {str(repo / 'workflow/config' / config)!r}, '--cores', '1', '-n', '--quiet', 'rules']\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert planned_jobs(r.stdout + r.stderr).get("train_full", 0) > 0
    assert probe.read_text() == "", f"building the DAG imported {probe.read_text()}"


def test_bad_config_fails_the_workflow_in_one_line(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((repo / "workflow/config/tiny.yaml").read_text().replace("alpha: 0.5", "alpha: 1.5"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(bad), "--cores", "1", "-n"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0
    assert "tda-bench: config error at experiments.tiny-mlp.groundtruth.alpha: 1.5 is greater than or equal to " \
           "the maximum of 1" in r.stdout + r.stderr  # snakemake prints parse errors on stdout
    assert not (tmp_path / "results").exists()


def test_default_config_dry_run_and_lint(repo):
    for args in (["-n", "--quiet"], ["--lint"]):
        r = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=repo, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
