"""`tda export`: one archive (.tar.gz or .zip) of a results folder with a manifest of sha256 hashes, and
`tda leaderboard --merge` of archives: the same board as from the folders, W&B off unless asked, only the
written paths printed; a tampered or hostile archive is refused in one line."""
from __future__ import annotations

import hashlib
import io as _io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_bundles import _bundle, _config, _one_error_line, _write

from tda_core import io
from tda_core.bundle import ARCHIVE_VERSION, BUNDLE_VERSION, MANIFEST
from tda_core.cli import main


def _results(folder: Path, exp: str, values: dict) -> Path:
    """A results folder of one experiment as the workflow leaves it: config, bundle, ground truth."""
    bundle = _bundle(exp, values)
    _write(folder, bundle)
    io.write_json(folder / exp / "config.json", bundle["config"])
    io.save_npy(folder / exp / "groundtruth" / "masks.npy", np.eye(4, dtype=bool),
                {"config_hash": bundle["config_hash"]})
    io.save_npz(folder / exp / "groundtruth" / "measurements.npz", {"config_hash": bundle["config_hash"]},
                subset=np.arange(12.0).reshape(4, 3))
    (folder / exp / "models").mkdir()
    (folder / exp / "models" / "seed0.pt").write_bytes(b"not exported")
    return folder


def _export(capsys, results: Path, out: Path, *extra) -> tuple[int, str, str]:
    rc = main(["export", "--results", str(results), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _merge(capsys, *sources, out: Path, tracking: str | None = None) -> tuple[int, str, str]:
    rc = main(["leaderboard", "--merge", *map(str, sources), "--out-dir", str(out),
               *(["--tracking", tracking] if tracking else [])])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _members(archive: Path) -> dict[str, bytes]:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    with tarfile.open(archive, "r:gz") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}


def _repack(archive: Path, members: dict[str, bytes], out: Path) -> Path:
    if out.suffix == ".zip":
        with zipfile.ZipFile(out, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return out
    with tarfile.open(out, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, _io.BytesIO(data))
    return out


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_export_then_merge_gives_the_board_of_the_folders(tmp_path, capsys, suffix):
    a = _results(tmp_path / "machine-a", "e", {"m1": 0.3, "m2": 0.5})
    b = _results(tmp_path / "machine-b", "e", {"m3": 0.7})
    _results(b, "f", {"m1": 0.4})
    archives = []
    for folder in (a, b):
        archives.append(tmp_path / f"{folder.name}{suffix}")
        rc, out, err = _export(capsys, folder, archives[-1])
        assert rc == 0, err
        assert out.strip().startswith(f"wrote {archives[-1]}")
    members = _members(archives[1])
    manifest = json.loads(members[MANIFEST])
    assert manifest["archive_version"] == ARCHIVE_VERSION and manifest["bundle_version"] == BUNDLE_VERSION
    assert set(manifest["versions"]) == {"tda_bench", "torch", "numpy", "python"}
    assert manifest["experiments"] == {x: {"config_hash": _config(x)["config_hash"]} for x in ("e", "f")}
    assert set(manifest["files"]) == set(members) - {MANIFEST} == {
        f"{x}/{f}" for x in ("e", "f") for f in ("metrics.json", "config.json", "groundtruth/masks.npy",
                                                "groundtruth/masks.json", "groundtruth/measurements.npz")}
    for name, entry in manifest["files"].items():  # the hashes are of the files themselves
        data = (b / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    lb = tmp_path / "from-archives"
    io.write_json(lb / ".tracking.json", RECORD)  # settings a workflow run could leave there: not for a merge
    rc, out, err = _merge(capsys, *archives, out=lb)
    assert rc == 0, err
    assert out.splitlines() == [f"wrote {lb}/leaderboard.{x}" for x in ("csv", "md", "html", "png")] + [
        f"wrote {lb}/leaderboard_metric_agreement.png"]  # where it wrote, not the board
    assert _runs(lb) == []  # no tracking run (W&B or recorded) unless asked
    rc, _, err = _merge(capsys, a, b, out=tmp_path / "from-folders")
    assert rc == 0, err
    from_archives = pd.read_csv(lb / "leaderboard.csv")
    from_folders = pd.read_csv(tmp_path / "from-folders" / "leaderboard.csv")
    pd.testing.assert_frame_equal(from_archives, from_folders)
    assert from_archives.set_index(["experiment", "method"]).loc["e", "rank"].to_dict() == {"m3": 1, "m2": 2, "m1": 3}
    rc, _, err = _merge(capsys, archives[0], b, out=tmp_path / "mixed")  # an archive beside a folder
    assert rc == 0, err


RECORD = {"mode": "record"}


def _runs(folder: Path) -> list[str]:
    """The tracking runs started with `folder` as results_dir: recorded runs and W&B runs."""
    return sorted(str(p.relative_to(folder)) for p in [*folder.glob("tracking/*/*.json"), *folder.glob("wandb/*run-*")])


def test_merge_starts_a_tracking_run_only_when_tracking_asks(tmp_path, capsys):
    _results(tmp_path / "a", "e", {"m1": 0.3, "m2": 0.5})
    lb = tmp_path / "lb"
    io.write_json(lb / ".tracking.json", RECORD)  # what a workflow run would leave: a merge does not read it
    assert _merge(capsys, tmp_path / "a", out=lb)[0] == 0
    assert _runs(lb) == []
    rc, _, err = _merge(capsys, tmp_path / "a", out=lb, tracking=json.dumps(RECORD))
    assert rc == 0, err
    assert _runs(lb) == ["tracking/report/leaderboard.json"]  # one run, the board's
    run = json.loads((lb / "tracking" / "report" / "leaderboard.json").read_text())
    assert (run["group"], run["job_type"], run["name"], run["exit_code"]) == ("leaderboard", "report", "leaderboard", 0)
    assert run["images"]["leaderboard_plot"] == str(lb / "leaderboard.png")
    table = pd.DataFrame(run["tables"]["leaderboard"]["data"], columns=run["tables"]["leaderboard"]["columns"])
    board = pd.read_csv(lb / "leaderboard.csv")
    assert table.set_index("method")["value"].to_dict() == board.set_index("method")["value"].to_dict() == {
        "m1": 0.3, "m2": 0.5}  # the board it wrote, the values of the bundle


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_a_tampered_archive_is_refused_in_one_line(tmp_path, capsys, suffix):
    _results(tmp_path / "a", "e", {"m1": 0.3, "m2": 0.5})
    archive = tmp_path / f"a{suffix}"
    assert _export(capsys, tmp_path / "a", archive)[0] == 0
    members = _members(archive)
    bundle = json.loads(members["e/metrics.json"])
    bundle["results"][0]["note"] = "edited after export"
    members["e/metrics.json"] = json.dumps(bundle).encode()
    tampered = _repack(archive, members, tmp_path / f"tampered{suffix}")
    rc, out, err = _merge(capsys, tampered, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and line == (f"tda: error: {tampered}: member e/metrics.json does not match its sha256 in "
                                f"{MANIFEST} (the archive was changed or corrupted after export); refused")
    assert not (tmp_path / "lb").exists() and out == ""


@pytest.mark.parametrize("attack, expect", [
    ("absolute", "unsafe path"), ("dotdot", "unsafe path"), ("symlink", "link or special file"),
    ("extra", "is not in manifest.json"), ("missing", "lists e/config.json, which the archive lacks"),
    ("no manifest", "no manifest.json"), ("not an archive", "not a readable .tar.gz archive"),
])
def test_a_hostile_archive_is_refused_in_one_line(tmp_path, capsys, attack, expect):
    _results(tmp_path / "a", "e", {"m1": 0.3})
    archive = tmp_path / "a.tar.gz"
    assert _export(capsys, tmp_path / "a", archive)[0] == 0
    members = _members(archive)
    bad = tmp_path / "bad.tar.gz"
    if attack == "not an archive":
        bad.write_text("hello")
    elif attack == "symlink":
        with tarfile.open(bad, "w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, _io.BytesIO(data))
            link = tarfile.TarInfo("e/loo")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tf.addfile(link)
    else:
        if attack == "absolute":
            members["/tmp/evil.json"] = b"{}"
        elif attack == "dotdot":
            members["e/../../evil.json"] = b"{}"
        elif attack == "extra":
            members["e/extra.json"] = b"{}"
        elif attack == "missing":
            del members["e/config.json"]
        else:
            del members[MANIFEST]
        _repack(archive, members, bad)
    rc, _, err = _merge(capsys, bad, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and str(bad) in line and expect in line
    assert not (tmp_path / "evil.json").exists() and not Path("/tmp/evil.json").exists()


def test_an_error_in_an_archived_bundle_names_the_archive_and_member(tmp_path, capsys):
    """Hashes match (a bundle made so on purpose), but its replicates contradict its value."""
    bundle = _bundle("e", {"m1": 0.3})
    bundle["results"][0]["value"] = 0.9
    _write(tmp_path / "a", bundle)
    io.write_json(tmp_path / "a" / "e" / "config.json", bundle["config"])
    archive = tmp_path / "a.zip"
    assert _export(capsys, tmp_path / "a", archive)[0] == 0
    rc, _, err = _merge(capsys, archive, out=tmp_path / "lb")
    line = _one_error_line(err)
    assert rc == 2 and f"{archive}:e/metrics.json: row 0 (e/lds/m1 (per-seed))" in line and "tda-merge-" not in line


def test_export_refuses_a_folder_without_results_and_a_bad_suffix(tmp_path, capsys):
    (tmp_path / "r" / "e").mkdir(parents=True)
    io.write_json(tmp_path / "r" / "e" / "config.json", _config("e"))
    rc, _, err = _export(capsys, tmp_path / "r", tmp_path / "x.tar.gz")
    assert rc == 2 and "no result bundle" in _one_error_line(err)
    rc, _, err = _export(capsys, tmp_path / "r", tmp_path / "x.rar")
    assert rc == 2 and ".tar.gz, .tgz or .zip" in _one_error_line(err)


def test_a_link_inside_a_zip_is_refused(tmp_path, capsys):
    import stat

    _results(tmp_path / "a", "e", {"m1": 0.3})
    archive = tmp_path / "a.zip"
    assert _export(capsys, tmp_path / "a", archive)[0] == 0
    members = _members(archive)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("e/loo")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc")
    rc, _, err = _merge(capsys, bad, out=tmp_path / "lb")
    assert rc == 2 and "member 'e/loo' is a link or special file" in _one_error_line(err)
