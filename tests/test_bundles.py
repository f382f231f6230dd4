"""Result bundles: the versioned schema, `tda leaderboard --merge` of results folders made on different
machines, and bundles from elsewhere as untrusted input (names, escaping, malformed files)."""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tda_core import io
from tda_core.bundle import BUNDLE_VERSION, SCHEMA_PATH, load_bundle, schema
from tda_core.cli import main
from tda_core.config import config_hash
from tda_core.errors import ArtifactError
from tda_core.leaderboard import write_all
from tda_core.metrics.rows import rank_rows

XSS = "<script>alert(1)</script>"


def _config(exp: str, n_subsets: int = 10) -> dict:
    cfg = {"name": exp, "seeds": 2, "scenario": "converged", "dataset": {"name": "digits", "label_noise": 0.0},
           "groundtruth": {"n_subsets": n_subsets, "seeds_per_subset": 2, "shard_size": 5}, "device": "cpu"}
    cfg["config_hash"] = config_hash(cfg)
    return cfg


def _bundle(exp: str, values: dict[str, float], n_subsets: int = 10, seed: int = 0, note: str = "") -> dict:
    """A version-1 bundle of one LDS row per method (replicates from the same draws: one ground truth)."""
    cfg = _config(exp, n_subsets)
    shared = np.random.default_rng(seed).normal(scale=0.02, size=200)  # the draws of the one ground truth
    own = {m: np.random.default_rng(zlib.crc32(m.encode())).normal(scale=0.01, size=200) for m in values}
    reps = {m: v + shared + own[m] for m, v in values.items()}
    rows = [{"experiment": exp, "method": m, "metric": "lds", "variant": "per-seed", "models": 1, "status": "ok",
             "value": v, "ci_low": float(np.quantile(reps[m], 0.025)), "ci_high": float(np.quantile(reps[m], 0.975)),
             "replicates": reps[m].tolist(), "reliability": 0.6, "ceiling": 0.8, "wall_time_s": 1.0,
             "peak_memory_mb": 10.0, "aliases": "", "note": note} for m, v in values.items()]
    pairwise = {"lds": rank_rows(rows)}
    return {"bundle_version": BUNDLE_VERSION, "stage": "evaluate", "experiment": exp, "config": cfg,
            "config_hash": cfg["config_hash"], "device": "cpu",
            "versions": {"tda_bench": "0.1.0", "torch": "2.5.0", "numpy": "2.0.0", "python": "3.11.0"},
            "kind": "classification", "scenario": "converged", "label_noise": 0.0, "seeds": 2,
            "n_subsets": n_subsets, "seeds_per_subset": 2, "groundtruth_steps": "same_epochs",
            "noise": {"lds": {"reliability": 0.6, "ceiling": 0.8}}, "results": rows, "pairwise": pairwise}


def _write(folder: Path, bundle: dict) -> Path:
    path = folder / bundle["experiment"] / "metrics.json"
    io.write_json(path, bundle)
    return path


def _leaderboard(capsys, *dirs, out) -> tuple[int, str]:
    rc = main(["leaderboard", "--merge", *map(str, dirs), "--out-dir", str(out), "--tracking", '{"mode": "none"}'])
    return rc, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tda: error:"), err
    return lines[0]


def test_schema_is_versioned_package_data_and_accepts_a_bundle(tmp_path):
    assert SCHEMA_PATH.name == "bundle.schema.json" and SCHEMA_PATH.parent.name == "schemas"
    assert schema()["properties"]["bundle_version"]["const"] == BUNDLE_VERSION == 1
    path = _write(tmp_path, _bundle("e", {"a": 0.5}))
    assert load_bundle(path)["results"][0]["method"] == "a"
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject


def test_merge_two_folders_ranks_one_experiment_together(tmp_path, capsys):
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    _write(a, _bundle("e", {"m1": 0.3, "m2": 0.5}))
    _write(b, _bundle("e", {"m3": 0.7}))
    _write(b, _bundle("f", {"m1": 0.4}))
    rc, err = _leaderboard(capsys, a, b, out=tmp_path / "lb")
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    e = df[(df.experiment == "e") & (df.metric == "lds")].set_index("method")
    assert set(e.index) == {"m1", "m2", "m3"}
    assert e["rank"].to_dict() == {"m3": 1, "m2": 2, "m1": 3}  # ranked again across the two bundles
    assert set(df[df.experiment == "f"].method) == {"m1"}
    assert "m3" in (tmp_path / "lb" / "leaderboard.html").read_text()


def test_merge_refuses_two_ground_truths_of_one_experiment(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    pa = _write(a, _bundle("e", {"m1": 0.3}))
    pb = _write(b, _bundle("e", {"m2": 0.5}, n_subsets=12))  # another config_hash
    rc, err = _leaderboard(capsys, a, b, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(pa) in line and str(pb) in line and "config_hash" in line


def test_merge_refuses_the_same_hash_with_other_groundtruth_settings(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    pa = _write(a, _bundle("e", {"m1": 0.3}))
    other = _bundle("e", {"m2": 0.5})
    other["seeds_per_subset"] = 4  # the config (and so the hash) says 2
    pb = _write(b, other)
    rc, err = _leaderboard(capsys, a, b, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(pa) in line and str(pb) in line and "seeds_per_subset" in line


def test_merge_refuses_a_config_that_does_not_hash_to_its_config_hash(tmp_path, capsys):
    bundle = _bundle("e", {"m1": 0.3})
    bundle["config"]["groundtruth"]["n_subsets"] = 99
    path = _write(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    assert rc == 2 and str(path) in _one_error_line(err)


def test_merge_reads_a_folder_named_twice_once(tmp_path, capsys):
    _write(tmp_path / "a", _bundle("e", {"m1": 0.3, "m2": 0.5}))
    rc, err = _leaderboard(capsys, tmp_path / "a", tmp_path / "a", out=tmp_path / "lb")
    assert rc == 0, err
    assert len(pd.read_csv(tmp_path / "lb" / "leaderboard.csv")) == 2


def test_merge_refuses_a_row_in_two_bundles(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    pa = _write(a, _bundle("e", {"m1": 0.3, "m2": 0.4}))
    pb = _write(b, _bundle("e", {"m2": 0.5}))
    rc, err = _leaderboard(capsys, a, b, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(pa) in line and str(pb) in line and "e/lds/m2" in line


def test_merge_refuses_a_pruning_row_in_two_summaries(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, _bundle("e", {"m1": 0.3}))
    _write(b, _bundle("e", {"m2": 0.5}))
    row = {"experiment": "e", "method": "random removal", "variant": "baseline", "p": 10.0, "status": "ok",
           "test_accuracy_mean": 0.9, "test_loss_mean": 0.3}
    paths = []
    for d in (a, b):
        paths.append(d / "e" / "pruning" / "summary.json")
        io.write_json(paths[-1], {"experiment": "e", "config_hash": _config("e")["config_hash"], "rows": [row]})
    rc, err = _leaderboard(capsys, a, b, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and all(str(p) in line for p in paths)


def test_a_script_method_name_is_refused(tmp_path, capsys):
    path = _write(tmp_path / "a", _bundle("e", {XSS: 0.3}))
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(path) in line and "method name" in line and "not safe" in line
    assert not (tmp_path / "lb" / "leaderboard.html").exists()


def test_an_experiment_name_with_dot_dot_is_refused(tmp_path, capsys):
    bundle = _bundle("x", {"m1": 0.3})
    bundle["experiment"] = "../x"
    for r in bundle["results"]:
        r["experiment"] = "../x"
    path = tmp_path / "a" / "x" / "metrics.json"
    io.write_json(path, bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(path) in line and "'../x'" in line
    with pytest.raises(ArtifactError, match="experiment name"):
        load_bundle(path)


def test_strings_of_a_bundle_render_as_text_in_the_html(tmp_path, capsys):
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5}, note=XSS)
    bundle["scenario"] = XSS
    bundle["power"] = {"note": XSS}
    bundle["noise"]["lds"]["target_note"] = XSS
    bundle["results"][0]["aliases"] = f"{XSS} (per-seed)"
    bundle["results"].append({**bundle["results"][1], "method": "m3", "status": "failed", "value": None,
                              "replicates": [], "rank": None, "note": "", "reason": XSS})
    _write(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    assert rc == 0, err
    page = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()


@pytest.mark.parametrize("mutate, expect", [
    (lambda text: text[: len(text) // 2], "corrupted JSON"),  # truncated
    (lambda text: "[1, 2]", "not an object"),
    (lambda text: text.replace('"results": [', '"results": "x", "unused": ['), "results"),  # wrong type
    (lambda text: re.sub(r'"config": \{', '"unused_config": {', text, count=1), "config"),  # a v1 key missing
    (lambda text: text.replace('"value": 0.3', '"value": "high"'), "value"),
    (lambda text: text.replace('"bundle_version": 1', '"bundle_version": 7'), "bundle_version"),
])
def test_a_malformed_bundle_fails_in_one_line_naming_it(tmp_path, capsys, mutate, expect):
    path = _write(tmp_path / "a", _bundle("e", {"m1": 0.3}))
    text = path.read_text()
    broken = mutate(text)
    assert broken != text
    path.write_text(broken)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(path) in line and expect in line.replace(str(path), "")


def test_leaderboard_without_bundles_or_with_a_missing_folder_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for target in ("empty", "missing"):
        rc, err = _leaderboard(capsys, tmp_path / target, out=tmp_path / "lb")
        assert rc == 2 and str(tmp_path / target) in _one_error_line(err)


def test_nothing_from_a_bundle_is_unpickled():
    root = Path(__file__).resolve().parent.parent / "tda_core"
    board = sorted(str(p.relative_to(root)) for p in (root / "board").glob("*.py"))  # the board's modules
    assert "board/collect.py" in board
    for name in ("bundle.py", "leaderboard.py", "claims.py", *board):
        source = (root / name).read_text()
        for banned in (r"import pickle", r"\bpickle\.", r"torch\.load", r"np\.load\(", r"\bload_(torch|npz|npy)\b",
                       r"allow_pickle=True"):
            assert not re.search(banned, source), f"{name} uses {banned}"


def test_local_leaderboard_of_legacy_bundles_is_unchanged(tmp_path):
    """A bundle without bundle_version (written before version 1) is still read, without provenance."""
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5})
    for key in ("bundle_version", "stage", "config", "versions", "device"):
        del bundle[key]
    path = _write(tmp_path, bundle)
    out = tmp_path / "lb"
    df = write_all([path], out / "l.csv", out / "l.md", out / "l.png", out / "l.html")
    assert list(df.method) == ["m2", "m1"] and list(df["rank"]) == [1, 2]
    assert json.loads(path.read_text())["results"][0]["rank"] == 2  # nothing is written back


def test_provenance_of_a_stage_is_a_valid_version_1_bundle(tmp_path):
    from types import SimpleNamespace

    from tda_core.bundle import provenance
    from tda_core.spec import ExperimentSpec

    cfg = _config("e")
    facts = {k: v for k, v in _bundle("e", {"m1": 0.3}).items() if k not in ("bundle_version", "config", "versions",
                                                                             "device", "stage", "config_hash")}
    bundle = {**provenance(SimpleNamespace(hash=cfg["config_hash"], cfg=cfg, spec=ExperimentSpec.of(cfg)), "evaluate"), **facts}
    assert bundle["bundle_version"] == 1 and bundle["config"] == cfg and bundle["device"] == "cpu"
    assert set(bundle["versions"]) == {"tda_bench", "torch", "numpy", "python"}
    path = tmp_path / "e" / "metrics.json"
    io.write_json(path, bundle)
    assert load_bundle(path)["config_hash"] == cfg["config_hash"]


def test_loo_stage_writes_a_version_1_bundle_with_its_settings(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import tda_core.plots
    from tda_core.spec import ExperimentSpec
    from tda_core.stages import loo

    cfg = _config("e")
    exp = SimpleNamespace(hash=cfg["config_hash"], cfg=cfg, spec=ExperimentSpec.of(cfg), name="e")
    io.save_npz(tmp_path / "measurements.npz", {"config_hash": exp.hash, "n_points": 2, "points": None, "seeds": 4,
                                                "point_seed": 0, "wall_time_s": 1.0},
                points=np.array([3, 7]), full=np.zeros((4, 5)), loo=np.zeros((2, 4, 5)))
    monkeypatch.setattr(loo, "_loo_result", lambda exp, m, files, gt: (
        {"config_hash": exp.hash, "experiment": exp.name, "method": m, "metric": "loo_shift", "status": "failed",
         "reason": "no scores in this test"}, None))
    monkeypatch.setattr(tda_core.plots, "loo_scatter", lambda *a, **k: None)
    out = tmp_path / "e" / "loo" / "results.json"
    loo.loo_evaluate(exp, ["m1"], [], tmp_path / "measurements.npz", out, tmp_path / "loo.png")
    bundle = load_bundle(out)
    assert bundle["bundle_version"] == 1 and bundle["stage"] == "loo" and bundle["config"] == cfg
    assert bundle["loo"] == {"n_points": 2, "points": [3, 7], "seeds": 4, "point_seed": 0}
    _write(tmp_path, _bundle("e", {"m1": 0.3}))  # the evaluate bundle of the same experiment merges with it
    write_all([tmp_path / "e" / "metrics.json", out], *(tmp_path / "lb" / f"l.{x}" for x in ("csv", "md", "png", "html")))


def test_a_malformed_pruning_summary_fails_in_one_line_naming_it(tmp_path, capsys):
    _write(tmp_path / "a", _bundle("e", {"m1": 0.3}))
    path = tmp_path / "a" / "e" / "pruning" / "summary.json"
    io.write_json(path, {"experiment": "e", "rows": [{"experiment": "e", "method": "m1", "variant": "dtda",
                                                      "p": "ten", "status": "ok"}]})
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(path) in line and "pruning summary" in line
