"""The tiny workflow on a real one-node SLURM cluster, submitted through workflow/profiles/slurm.

Installs Debian's slurm-wlm and munge when missing (needs root and apt), starts munged,
slurmctld and slurmd in the foreground on loopback with a throw-away config and state directory,
runs `snakemake --executor slurm --workflow-profile workflow/profiles/slurm` on the tiny config,
checks the leaderboard and what SLURM was asked for (partition, GPU) per rule, and stops the
daemons it started by their PIDs. Where it cannot run, it is skipped with the reason.

    python -m pytest -m slurm -rs tests/test_slurm.py      # about 2-3 minutes on 2 busy cores
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml


REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
TINY = REPO / "workflow" / "config" / "tiny.yaml"
PACKAGES = ["slurm-wlm", "slurm-client", "munge"]
TOOLS = ["munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel"]
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin"
# The profile's placeholder partitions; the test cluster has both, on its one node.
GPU_RULES = {"train_full", "train_shard", "fit_curvature", "attribute", "removal_retrain", "removal_random", "removal_full"}
CPU_RULES = {"prepare", "gather_groundtruth", "evaluate"}
WORKFLOW_TIMEOUT_S = 420


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=SBIN_PATH)


def _skip(reason: str):
    print(f"\nSKIPPED test_slurm: {reason}", file=sys.stderr)
    pytest.skip(reason)


def ensure_slurm_installed() -> None:
    """apt-get install slurm-wlm + munge when a tool is missing; skip (with why) when impossible."""
    missing = [t for t in TOOLS if _which(t) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        _skip(f"SLURM tools missing ({', '.join(missing)}) and not root, so cannot apt-get install them")
    if _which("apt-get") is None:
        _skip(f"SLURM tools missing ({', '.join(missing)}) and no apt-get on this machine")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    res = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:  # stale package lists: update once and retry
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=600)
        res = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-2:])
        _skip(f"apt-get install {' '.join(PACKAGES)} failed (no network or no Debian repository?): {tail}")
    still = [t for t in TOOLS if _which(t) is None]
    if still:
        _skip(f"installed {' '.join(PACKAGES)} but still missing: {', '.join(still)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_conf(root: Path, host: str, cpus: int, munge_socket: Path) -> str:
    ctld_port, d_port = _free_port(), _free_port()
    return f"""
ClusterName=tdatest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# squeue must still see finished jobs when Snakemake polls (and when this test inspects them)
MinJobAge=900
SchedulerType=sched/backfill
# use the configured CPUs/memory even if the machine reports less (memory is not enforced here)
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


class Cluster:
    """munged + slurmctld + slurmd started by this test, stopped by PID in `stop`."""

    def __init__(self):
        # munged insists that every directory above its socket is world-executable, which
        # pytest's 0700 tmp_path is not: use a plain /tmp directory with 0755.
        self.root = Path(tempfile.mkdtemp(prefix="tda-slurm-"))
        self.root.chmod(0o755)
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf"),
                    "PATH": f"{self.root / 'bin'}:{SBIN_PATH}"}
        self.host = socket.gethostname().split(".")[0]

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        out = open(self.root / "log" / f"{name}.out", "wb")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def _log_tail(self, name: str, n: int = 5) -> str:
        text = ""
        for f in (self.root / "log" / f"{name}.out", self.root / "log" / f"{name}.log"):
            if f.exists():
                text += f.read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-n:])

    def _wait(self, what: str, ok, timeout: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}: "
                                       f"{self._log_tail(name)}")
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; "
                           f"slurmctld: {self._log_tail('slurmctld')}; slurmd: {self._log_tail('slurmd')}")

    def _run(self, *cmd, input=None) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, input=input, timeout=30)

    def start(self) -> None:
        for d in ("state", "spool", "run", "log", "munge", "bin"):
            (self.root / d).mkdir()
        # Inside a job, Snakemake's jobstep plugin runs the rule with `srun` after dropping every
        # SLURM_* variable (SLURM_CONF too), so srun would look for /etc/slurm/slurm.conf. Rather
        # than write into /etc, put an srun on PATH (jobs inherit it) that names this cluster's config.
        srun = self.root / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.root / "slurm.conf"}" exec "{_which("srun")}" "$@"\n')
        srun.chmod(0o755)
        munge_dir = self.root / "munge"
        munge_dir.chmod(0o755)
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(128))  # a private key: nothing shared with a system munged
        key.chmod(0o600)
        sock = munge_dir / "munge.socket"
        self._spawn("munged", [_which("munged"), "--foreground", f"--socket={sock}", f"--key-file={key}",
                               f"--log-file={munge_dir / 'munged.log'}", f"--pid-file={munge_dir / 'munged.pid'}",
                               f"--seed-file={munge_dir / 'munged.seed'}"])

        def munge_works():
            cred = self._run("munge", "-S", str(sock), "-n")
            return cred.returncode == 0 and self._run("unmunge", "-S", str(sock), input=cred.stdout).returncode == 0

        self._wait("munged", munge_works, 20)
        (self.root / "slurm.conf").write_text(_slurm_conf(self.root, self.host, os.cpu_count() or 2, sock))
        # Two fake GPUs (any existing device files do): jobs get CUDA_VISIBLE_DEVICES, two run at once.
        (self.root / "gres.conf").write_text("Name=gpu File=/dev/null\nName=gpu File=/dev/zero\n")
        conf = str(self.root / "slurm.conf")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", conf])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", conf])

        def node_idle():
            res = self._run("sinfo", "-h", "-N", "-o", "%T")
            return res.returncode == 0 and set(res.stdout.split()) == {"idle"}

        self._wait("the node to become idle", node_idle, 90)

    def jobs(self) -> list[dict]:
        """Every job the controller still remembers (MinJobAge keeps finished ones)."""
        res = self._run("squeue", "-h", "-t", "all", "-O", "JobID:30,State:30,Partition:30,Comment:300,tres-per-job:100")
        assert res.returncode == 0, res.stderr
        rows = []
        for line in res.stdout.splitlines():
            job_id, state, partition, comment, tres = line.split()  # no field contains blanks
            rule = comment.removeprefix("rule_").split("_wildcards_")[0]
            rows.append({"id": job_id, "state": state, "partition": partition, "rule": rule, "tres": tres})
        return rows

    def stop(self) -> None:
        if any(name == "slurmctld" for name, p in self.procs if p.poll() is None):
            self._run("scancel", "--full", "-u", "root")  # jobs of this cluster only (its SLURM_CONF)
        for name, proc in reversed(self.procs):  # slurmd, slurmctld, munged: each by its own PID
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


def workflow_rules() -> dict[str, bool]:
    """rule name -> is it a localrule, from the rule files (the `all` target excluded)."""
    import re

    rules = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M):
            m = re.match(r"rule (\w+):", block)
            if m:
                rules[m.group(1)] = re.search(r"^\s+localrule:\s*True", block, flags=re.M) is not None
    return rules


@pytest.mark.slurm
def test_profile_places_every_rule():
    """A new rule must be put on a partition on purpose (GPU or CPU), or be a localrule."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert profile["retries"] >= 1 and profile["default-resources"]["slurm_partition"] == "cpu"
    placed = profile["set-resources"]
    rules = workflow_rules()
    assert {"prepare", "train_full", "train_shard", "attribute", "evaluate", "leaderboard"} <= set(rules)
    for rule, local in rules.items():
        if local:
            assert rule not in placed, f"{rule} is a localrule but has SLURM resources"
            continue
        assert rule in placed, f"rule {rule} is not in workflow/profiles/slurm/config.yaml set-resources"
        gpu = placed[rule].get("gpu", 0)
        assert placed[rule]["slurm_partition"] == ("gpu" if gpu else "cpu"), rule
    for rule in GPU_RULES:
        assert placed[rule]["gpu"] == 1
    for rule in CPU_RULES:
        assert "gpu" not in placed[rule]


@pytest.fixture(scope="module")
def cluster():
    ensure_slurm_installed()
    if os.geteuid() != 0:
        _skip("starting slurmd and slurmctld as SlurmUser=root needs root")
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_workflow_runs_through_slurm_profile(cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    results = tmp_path / "results"
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
        "--configfile", str(TINY), "--config", f"results_dir={results}", "tracking={mode: none}",
        "--workflow-profile", str(PROFILE), "--executor", "slurm",
        # Only to keep the test short: poll SLURM every few seconds instead of every 20+.
        "--slurm-init-seconds-before-status-checks", "2",
    ]
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=work, env=cluster.env, capture_output=True, text=True, timeout=WORKFLOW_TIMEOUT_S)
    elapsed = time.monotonic() - t0
    print(f"\nSLURM workflow: {elapsed:.0f}s")
    assert res.returncode == 0, f"snakemake failed ({elapsed:.0f}s):\n{res.stderr[-4000:]}"

    # The leaderboard: every method of the tiny experiment (per-seed and seed-averaged rows), all computed,
    # and tiny.yaml's top-k removal rows (its methods and the random-removal baseline).
    tiny = yaml.safe_load(TINY.read_text())["experiments"]["tiny-mlp"]
    removal = tiny["removal"]
    board = pd.read_csv(results / "leaderboard.csv")
    lds = board[board["metric"] == "lds"]
    assert sorted(set(lds["method"])) == sorted(tiny["methods"])
    assert set(board["variant"]) <= {"per-seed", "seed-averaged", "ensemble", "single", "baseline"}
    removal_metrics = {f"topk_drop_k{k:g}" for k in removal["ks"]} | {"brittleness"}
    assert set(board["experiment"]) == {"tiny-mlp"} and set(board["metric"]) == {"lds"} | removal_metrics
    assert set(board[board["metric"] != "lds"]["method"]) == set(removal["methods"]) | {"random-removal"}
    assert (board["status"] == "ok").all(), board[["method", "reason"]]
    assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in lds["value"])  # Spearman correlations

    # Every non-local job went through SLURM, with the profile's partition and GPU request.
    jobs = cluster.jobs()
    n_removal = len(removal["ks"]) * (len(removal["methods"]) + 1) + 1  # per (method, k), random per k, full
    n_jobs = 1 + tiny["seeds"] + 2 + 1 + len(tiny["methods"]) + 1 + n_removal
    # prepare, train_full x2, shards x2, gather, attribute x3, evaluate; removal retrains (the summary is local)
    assert len(jobs) == n_jobs, jobs
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    for j in jobs:
        if j["rule"] in GPU_RULES:
            assert j["partition"] == "gpu" and "gpu:1" in j["tres"], j
        else:
            assert j["rule"] in CPU_RULES and j["partition"] == "cpu" and "gpu" not in j["tres"], j
    assert "leaderboard" not in {j["rule"] for j in jobs}  # a localrule
