"""Ground-truth banks (tda_core/gtbank.py, `tda groundtruth export / import`, groundtruth.from): a bank
round-trips byte for byte through a local folder and a real HTTP server; a tampered, truncated, incomplete
or foreign bank is one error line and leaves no file behind; `from` changes no config hash; a workflow
that imports runs no training job and scores a method exactly as the run that trained."""
import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_WORKFLOW_GROUP, planned_jobs

from tda_core import cli, gtbank
from tda_core.config import config_hash, shared_experiment_config
from tda_core.errors import ArtifactError, ConfigError

EXP = "exp-a"


def _experiment_folder(results: Path, seeds: int = 2, n_subsets: int = 6) -> dict[str, bytes]:
    """A trained-looking experiment (random bytes stand in for the artifacts: a bank never parses them);
    returns bank member -> content, the independent record of what an import must reproduce."""
    rng = np.random.default_rng(0)
    cfg = {"name": EXP, "seeds": seeds, "groundtruth": {"n_subsets": n_subsets, "alpha": 0.5}, "model": {"name": "mlp"}}
    cfg["config_hash"] = config_hash(cfg)
    content = {"config.json": json.dumps(cfg).encode(),
               "groundtruth/masks.npy": rng.bytes(300), "groundtruth/masks.json": b'{"config_hash": "x"}',
               "groundtruth/measurements.npz": rng.bytes(5000),
               **{f"models/seed{r}.pt": rng.bytes(70_000 + r) for r in range(seeds)}}
    for rel, data in content.items():
        (results / EXP / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / EXP / rel).write_bytes(data)
    return content


@pytest.fixture
def bank(tmp_path):
    """(bank folder, the content it must hold) exported from a fresh experiment folder."""
    content = _experiment_folder(tmp_path / "src")
    gtbank.export_bank(tmp_path / "src", EXP, str(tmp_path / "bank"))
    return tmp_path / "bank", content


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server (python's http.server, 127.0.0.1, a free port) serving tmp_path/www; yields
    (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _url(bank_dir: Path, http_root, where: str) -> tuple[Path, str]:
    """The bank served from `where`: 'dir' (its folder) or 'http' (copied under the HTTP server)."""
    if where == "dir":
        return bank_dir, str(bank_dir)
    root, base = http_root
    shutil.copytree(bank_dir, root / "bank")
    return root / "bank", f"{base}/bank"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["dir", "http"])
def test_a_bank_round_trips_byte_for_byte(bank, http_root, tmp_path, where):
    bank_dir, content = bank
    manifest = json.loads((bank_dir / "manifest.json").read_text())
    assert manifest["config_hash"] == json.loads(content["config.json"])["config_hash"]
    assert set(manifest["files"]) == set(content)
    _, url = _url(bank_dir, http_root, where)
    gtbank.import_bank(url, tmp_path / "dest")
    assert _files(tmp_path / "dest" / EXP) == content


@pytest.mark.parametrize("where", ["dir", "http"])
def test_the_workflow_import_of_one_member_checks_the_config_hash_and_masks(bank, http_root, tmp_path, where):
    bank_dir, content = bank
    _, url = _url(bank_dir, http_root, where)
    local = tmp_path / "src" / EXP
    out = tmp_path / "out" / "seed1.pt"
    gtbank.import_member(url, local / "config.json", "models/seed1.pt", out)
    assert out.read_bytes() == content["models/seed1.pt"]
    gtbank.import_member(url, local / "config.json", "groundtruth/measurements.npz", tmp_path / "out" / "m.npz",
                         masks=local / "groundtruth/masks.npy")
    assert (tmp_path / "out" / "m.npz").read_bytes() == content["groundtruth/measurements.npz"]

    other = tmp_path / "other"  # another experiment (more subsets): another config hash
    _experiment_folder(other, n_subsets=7)
    theirs = json.loads(content["config.json"])["config_hash"]
    ours = json.loads((other / EXP / "config.json").read_text())["config_hash"]
    assert theirs != ours
    with pytest.raises(ArtifactError, match=f"config hash {theirs}, this experiment's is {ours}"):
        gtbank.import_member(url, other / EXP / "config.json", "models/seed0.pt", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()

    wrong_masks = tmp_path / "masks.npy"
    wrong_masks.write_bytes(content["groundtruth/masks.npy"][:-1] + b"\0")
    with pytest.raises(ArtifactError, match="other subset masks"):
        gtbank.import_member(url, local / "config.json", "groundtruth/measurements.npz", tmp_path / "y.npz",
                             masks=wrong_masks)
    assert not (tmp_path / "y.npz").exists()


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(bank_dir: Path, edit) -> None:
    manifest = json.loads((bank_dir / "manifest.json").read_text())
    edit(manifest)
    (bank_dir / "manifest.json").write_text(json.dumps(manifest))


TAMPERING = {
    "changed byte": (lambda b: _flip_byte(b / "models/seed0.pt"), "models/seed0.pt does not match its sha256"),
    "appended bytes": (lambda b: (b / "groundtruth/measurements.npz").write_bytes(
        (b / "groundtruth/measurements.npz").read_bytes() + b"x"), "measurements.npz does not match its sha256"),
    "truncated": (lambda b: (b / "models/seed1.pt").write_bytes((b / "models/seed1.pt").read_bytes()[:100]),
                  "models/seed1.pt does not match its sha256"),
    "missing file": (lambda b: (b / "models/seed1.pt").unlink(), "models/seed1.pt is missing"),
    "wrong hash in manifest": (lambda b: _edit_manifest(b, lambda m: m["files"]["models/seed0.pt"].update(
        sha256="0" * 64)), "models/seed0.pt does not match its sha256"),
    "no manifest": (lambda b: (b / "manifest.json").unlink(), "no manifest.json"),
    "manifest not JSON": (lambda b: (b / "manifest.json").write_text("{oops"), "not valid JSON"),
    "unlisted member": (lambda b: _edit_manifest(b, lambda m: m["files"].pop("models/seed1.pt")),
                        "does not list models/seed1.pt"),
    "foreign member": (lambda b: _edit_manifest(b, lambda m: m["files"].update(
        {"../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}})), "no file of a ground-truth bank"),
    "other config hash": (lambda b: _edit_manifest(b, lambda m: m.update(config_hash="0123456789abcdef")),
                          "config hash 0123456789abcdef, this experiment's is"),
}


@pytest.mark.parametrize("where", ["dir", "http"])
@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_bank_is_one_line_and_writes_nothing(bank, http_root, tmp_path, capsys, where, case):
    bank_dir, _ = bank
    served, url = _url(bank_dir, http_root, where)
    tamper, message = TAMPERING[case]
    tamper(served)
    dest = tmp_path / "dest"
    _experiment_folder(dest)  # what prepare wrote: same config and masks as the bank's
    before = _files(dest)
    for rel in ("models/seed0.pt", "models/seed1.pt", "groundtruth/measurements.npz"):
        (dest / EXP / rel).unlink()
    rc = cli.main(["groundtruth", "import", "--from", url, "--results", str(dest)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    after = _files(dest)
    assert all(after[rel] == before[rel] for rel in after)  # nothing wrong was written ...
    assert not [p for p in (dest / EXP).rglob("*.tmp")]  # ... and no temporary file left


def test_a_bank_whose_config_is_not_its_hash_is_refused_before_anything_is_kept(bank, tmp_path, capsys):
    bank_dir, _ = bank
    cfg = json.loads((bank_dir / "config.json").read_text())
    cfg["groundtruth"]["n_subsets"] = 60  # other ground truth, under the old hash; the manifest re-signed to match
    (bank_dir / "config.json").write_text(json.dumps(cfg))
    sha, size = hashlib.sha256((bank_dir / "config.json").read_bytes()).hexdigest(), (bank_dir / "config.json").stat().st_size
    _edit_manifest(bank_dir, lambda m: m["files"]["config.json"].update(sha256=sha, bytes=size))
    rc = cli.main(["groundtruth", "import", "--from", str(bank_dir), "--results", str(tmp_path / "dest")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "edited by hand" in err, err
    assert not [p for p in (tmp_path / "dest").rglob("*") if p.is_file()]


def test_export_refuses_http_an_existing_bank_and_a_missing_checkpoint(bank, tmp_path, http_root):
    bank_dir, _ = bank
    with pytest.raises(ConfigError, match="already holds a ground-truth bank"):
        gtbank.export_bank(tmp_path / "src", EXP, str(bank_dir))
    with pytest.raises(ConfigError, match="read-only"):
        gtbank.export_bank(tmp_path / "src", EXP, f"{http_root[1]}/new")
    (tmp_path / "src" / EXP / "models/seed1.pt").unlink()
    with pytest.raises(ConfigError, match="seed1.pt is missing"):
        gtbank.export_bank(tmp_path / "src", EXP, str(tmp_path / "bank2"))
    assert not (tmp_path / "bank2").exists()


def test_s3_without_s3fs_names_the_extra():
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401
        pytest.skip("s3fs is installed")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match=r"s3:// needs s3fs.*tda-bench\[s3\]"):
        gtbank.read_manifest("s3://some-bucket/bank")


def test_groundtruth_from_enters_neither_the_hash_nor_config_json():
    cfg = {"name": EXP, "seeds": 2, "groundtruth": {"n_subsets": 6, "alpha": 0.5}, "methods": ["grad_dot"]}
    with_from = {**cfg, "groundtruth": {**cfg["groundtruth"], "from": "https://example.org/bank"}}
    assert config_hash(with_from) == config_hash(cfg)
    assert config_hash({**cfg, "groundtruth": {**cfg["groundtruth"], "n_subsets": 7}}) != config_hash(cfg)
    assert shared_experiment_config(with_from) == shared_experiment_config(cfg)
    assert with_from["groundtruth"]["from"] == "https://example.org/bank"  # the caller's dict is untouched


# -- the workflow -------------------------------------------------------------------------------------
def _snakemake(repo: Path, workdir: Path, configfile: Path, *args, check=True):
    env_path = f"{repo}:{repo / 'examples' / 'plugin_method'}"
    import os

    env = {**os.environ, "PYTHONPATH": env_path + (":" + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return r


def _tiny(repo: Path, tmp_path: Path, name: str, methods, bank=None, n_subsets=None) -> Path:
    """tiny.yaml without its top-k removal study (which retrains for its own sake), W&B off."""
    cfg = yaml.safe_load((repo / "workflow/config/tiny.yaml").read_text())
    cfg["tracking"] = {"mode": "none"}
    exp = cfg["experiments"]["tiny-mlp"]
    exp.pop("removal")
    exp["methods"] = list(methods)
    if bank is not None:
        exp["groundtruth"]["from"] = bank
    if n_subsets is not None:
        exp["groundtruth"]["n_subsets"] = n_subsets
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_dry_run_with_groundtruth_from_plans_imports_and_no_training(repo, tmp_path):
    cfg = _tiny(repo, tmp_path, "imp", ["grad_dot"], bank="http://127.0.0.1:9/bank")
    jobs = planned_jobs(_snakemake(repo, tmp_path / "w", cfg, "-n").stdout)
    assert jobs.get("import_model") == 2 and jobs.get("import_groundtruth") == 1, jobs
    assert not [r for r in jobs if r.startswith("train") or r == "gather_groundtruth"], jobs
    jobs = planned_jobs(_snakemake(repo, tmp_path / "w", _tiny(repo, tmp_path, "train", ["grad_dot"]), "-n").stdout)
    assert jobs.get("train_full") == 2 and not [r for r in jobs if r.startswith("import")], jobs


@pytest.mark.slow
@pytest.mark.xdist_group(TINY_WORKFLOW_GROUP)
def test_a_workflow_scores_a_plugin_against_an_imported_bank_without_training(repo, tmp_path, http_root,
                                                                               tiny_workflow_run):
    trained = tiny_workflow_run  # tiny.yaml, trained here (its methods and removal study are outside the hash)
    assert (trained / "results/logs/tiny-mlp/train_seed0.log").exists()
    assert len(list((trained / "results/tiny-mlp/groundtruth").glob("shard*.npz"))) == 2
    www, base = http_root
    rc = cli.main(["groundtruth", "export", "--results", str(trained / "results"), "--experiment", "tiny-mlp",
                   "--to", str(www / "bank")])
    assert rc == 0

    plugin = "tda_bench_example.grad_norm_dot:GradNormDot"
    imported = tmp_path / "imported"
    r = _snakemake(repo, imported, _tiny(repo, tmp_path, "imp", ["grad_dot", plugin], bank=f"{base}/bank"))
    jobs = planned_jobs(r.stdout + r.stderr)
    assert jobs.get("import_model") == 2 and jobs.get("import_groundtruth") == 1, jobs
    assert not [j for j in jobs if j.startswith("train") or j == "gather_groundtruth"], jobs
    assert not (imported / "results/logs/tiny-mlp/train_seed0.log").exists()
    assert not list((imported / "results/tiny-mlp/groundtruth").glob("shard*.npz"))

    def lds(root):
        bundle = json.loads((root / "results/tiny-mlp/metrics.json").read_text())
        return {(b["method"], b.get("variant"), i): b["value"]
                for i, b in enumerate(x for x in bundle["results"] if x["metric"] == "lds")}, bundle

    local, local_bundle = lds(trained)
    shared, shared_bundle = lds(imported)
    assert local_bundle["config_hash"] == shared_bundle["config_hash"]
    grad_dot_local = [v for (m, _, _), v in local.items() if m == "grad_dot"]
    grad_dot_shared = [v for (m, _, _), v in shared.items() if m == "grad_dot"]
    assert grad_dot_local and grad_dot_local == grad_dot_shared  # the same ground truth, the same models
    assert any(m == "grad_norm_dot" and np.isfinite(v) for (m, _, _), v in shared.items())

    # A bank of another experiment (other n_subsets: another config hash) is refused in one line.
    other = tmp_path / "other"
    r = _snakemake(repo, other, _tiny(repo, tmp_path, "oth", ["grad_dot"], bank=f"{base}/bank", n_subsets=9),
                   check=False)
    assert r.returncode != 0
    logs = "".join(p.read_text() for p in (other / "results/logs/tiny-mlp").glob("import_*.log"))
    assert "this experiment's is" in logs and local_bundle["config_hash"] in logs, logs
