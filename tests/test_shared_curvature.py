"""One curvature fit per (experiment, curvature options): the fit_curvature job writes
results/{exp}/curvature/{key}/ once, and the attribute jobs of every method with those options only read it.

The reference scores are always an independent in-process fit: the method with cache=False on a fresh
context (no shared folder, no cache), i.e. the path every method took before the fit was shared."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import planned_jobs, tiny_config

from tda_core import io
from tda_core.api import load_experiment
from tda_core.errors import ConfigError
from tda_core.methods.registry import curvature_fit, get_method, method_entry
from tda_core.stages.attribute import attribute_method
from tda_core.stages.context import build_context
from tda_core.stages.curvature import MANIFEST, fit_shared_curvature
from tda_core.stages.train import train_full
from tda_core.targets import target_context

NONE = {"mode": "none"}
EXPECTED = {"fisher": "expected"}


def key(method, **options):
    fit = curvature_fit(method, options)
    return None if fit is None else fit["key"]


def test_methods_with_equal_curvature_options_share_one_key():
    shared = key("if_ekfac", **EXPECTED)
    # damping is applied at score time; fisher_seed / n_fisher_samples draw nothing under fisher: expected
    assert shared == key("if_ensemble", **EXPECTED) == key("dtda_if", **EXPECTED) \
        == key("if_ekfac", fisher="expected", damping=1.0, damping_rel=0.5, fisher_seed=3, n_fisher_samples=4) \
        == key("if_ekfac.damping_rel-0.01", fisher="expected", damping_rel=0.01)  # a tuning variant
    assert key("source", **EXPECTED) == key("source_ensemble", **EXPECTED) == key("dtda_source", **EXPECTED)
    different = [shared, key("if_kfac", **EXPECTED), key("if_ekfac"), key("if_ekfac", fisher_seed=1),
                 key("if_ekfac", n_fisher_samples=2), key("source", **EXPECTED), key("source_fast", **EXPECTED),
                 key("source", fisher="expected", n_segments=2)]
    assert len(set(different)) == len(different), different
    assert shared == "ekfac_final.fisher-expected"
    for method in ("grad_dot", "tracin", "trak", "if_exact", "unrolled", "if_ekfac_kronfluence", "logra", "datainf"):
        assert method_entry(method).curvature is None and key(method) is None, method
    assert key("if_ekfac", cache=False) is None  # cache off: the method fits in its own job, as asked
    with pytest.raises(ConfigError, match="method 'if_ekfac' option 'fisher' must be one of sampled|expected"):
        key("if_ekfac", fisher="exact")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two seeds of the tiny MLP with 3 saved checkpoints (SOURCE: 3 segments of one interval each)."""
    cfg = tiny_config()
    cfg["results_dir"] = str(tmp_path_factory.mktemp("shared_curvature"))
    exp = load_experiment(cfg, "tiny")
    for seed in range(2):
        train_full(exp, seed, exp.model_path(seed), NONE)
    return exp


def _records(caplog, text):
    return [r for r in caplog.records if r.name == "tda" and text in r.getMessage()]


def _reference(exp, method, options, seeds):
    """An independent in-process fit: the method with caching off on a fresh context."""
    return np.asarray(get_method(method)(**{**options, "cache": False}).score(build_context(exp, seeds)))


CONSUMERS = [  # (method, options): three share the EK-FAC IF fit, two the SOURCE fits (sampled Fisher)
    ("if_ekfac", EXPECTED), ("if_ensemble", EXPECTED), ("if_ekfac.damping_rel-0.5", {**EXPECTED, "damping_rel": 0.5}),
    ("dtda_source", {}), ("source", {}), ("source_fast", {}),
]


def test_one_fit_per_key_and_every_consumer_gets_the_in_process_scores(tiny, caplog):
    caplog.set_level(logging.INFO, logger="tda")
    fits = {}
    for method, options in CONSUMERS:
        fit = curvature_fit(method, options)
        fits[fit["key"]] = fit
    assert len(fits) == 3  # if_ekfac (+2 sharing it), source (+ dtda_source), source_fast
    for fit in fits.values():
        manifest = fit_shared_curvature(tiny, fit, tiny.layout.curvature_dir(fit["key"]))
        per_seed = 1 if fit["checkpoints"] == "final" else 3  # 3 segments of one checkpoint each
        assert len(manifest["files"]) == 2 * per_seed and not manifest["failed"], manifest
        assert io.read_json(f"{tiny.layout.curvature_dir(fit['key'])}/{MANIFEST}")["config_hash"] == tiny.hash
    assert len(_records(caplog, ": fitted")) == 2 * (1 + 3 + 3)
    caplog.clear()

    for method, options in CONSUMERS:
        entry = method_entry(method)
        seeds = ["all"] if entry.all_seeds_at_once else ["0", "1"]
        attribute_method(tiny, method, seeds, ["query", "val"], options, NONE)
        for s in seeds:
            got = np.load(tiny.scores_path(method, s))
            ref = _reference(tiny, method, options, [0, 1] if s == "all" else [int(s)])
            np.testing.assert_array_equal(got, ref.astype(np.float32), err_msg=f"{method} seed {s}")
    assert not _records(caplog, ": fitted"), "an attribute job re-fitted a shared curvature"
    assert _records(caplog, "read the shared fit")
    assert not list(tiny.root.glob("scores/*/_cache/*.pt"))  # nothing cached privately: all was shared


def test_the_randomized_target_never_reads_the_shared_fit(tiny):
    """Its parameters are a re-initialised model's: it fits its own curvature, as an in-process fit does."""
    fit = curvature_fit("if_ekfac", EXPECTED)
    fit_shared_curvature(tiny, fit, tiny.layout.curvature_dir(fit["key"]))
    attribute_method(tiny, "if_kfac", ["0"], ["randomized"], EXPECTED, NONE)  # no shared kfac fit: fits its own
    attribute_method(tiny, "if_ekfac", ["0"], ["randomized"], EXPECTED, NONE)
    ctx, _ = target_context(build_context(tiny, [0]), "randomized")
    fresh = get_method("if_ekfac")(cache=False, **EXPECTED).score(ctx)
    np.testing.assert_array_equal(np.load(tiny.scores_path("if_ekfac", 0, "randomized")), fresh)
    assert list((tiny.root / "scores/if_ekfac/_cache/randomized").glob("*.pt"))


def test_a_fit_the_job_cannot_make_leaves_the_methods_failed_row(tiny):
    """n_segments above the saved checkpoint intervals: the fit job notes it and writes nothing; the method then
    fails in its own job with the same one-line reason (a failed row, not a missing one)."""
    options = {"n_segments": 5}
    fit = curvature_fit("source", options)
    manifest = fit_shared_curvature(tiny, fit, tiny.layout.curvature_dir(fit["key"]))
    assert manifest["files"] == [] and set(manifest["failed"]) == {"0", "1"}
    assert "n_segments=5 > the 3 checkpoint intervals" in manifest["failed"]["0"]
    meta = attribute_method(tiny, "source", ["0"], ["query"], options, NONE)[0]
    assert meta["status"] == "failed" and "n_segments=5 > the 3 checkpoint intervals" in meta["reason"]


def test_a_shared_fit_of_another_config_is_refitted(tiny, tmp_path, caplog):
    """A shared file stamped with another config hash is never used: the job fits (and says so)."""
    caplog.set_level(logging.INFO, logger="tda")
    fit = curvature_fit("if_ekfac", EXPECTED)
    folder = tiny.layout.curvature_dir(fit["key"])
    fit_shared_curvature(tiny, fit, folder)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for f in (tiny.root / "curvature" / fit["key"]).glob("*.pt"):
        blob = io.load_torch(f)
        io.save_torch(foreign / f.name, {**blob, "config_hash": "another"})
    ctx = build_context(tiny, [0], shared_dir=foreign)
    caplog.clear()
    scores = get_method("if_ekfac")(**EXPECTED).score(ctx)
    assert _records(caplog, "computed from another config") and _records(caplog, ": fitted")
    np.testing.assert_array_equal(scores, _reference(tiny, "if_ekfac", EXPECTED, [0]))


@pytest.mark.slow
def test_two_attribute_jobs_read_one_fit_at_once(repo, tmp_path):
    """snakemake --cores 2: one fit_curvature job, then if_ekfac's and if_ensemble's attribute jobs start
    together (both wait on the one fit) and read it; their scores equal the in-process fit's."""
    cfg = tiny_config(methods=["grad_dot", "if_ekfac", "if_ensemble"], method_options={"if_ekfac": EXPECTED,
                                                                                        "if_ensemble": EXPECTED})
    cfg["results_dir"] = "results"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/tiny/scores/{m}" for m in ("if_ekfac", "if_ensemble")]
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
                        "--configfile", str(tmp_path / "c.yaml"), "--cores", "2", *targets],
                       capture_output=True, text=True, timeout=900, env={"PYTHONPATH": str(repo), **_env()})
    assert r.returncode == 0, r.stderr[-4000:]
    assert planned_jobs(r.stdout + r.stderr) == {"prepare": 1, "train_full": 2, "fit_curvature": 1, "attribute": 2}
    # both consumers were started before either finished (Snakemake's log: job starts, then "Finished jobid")
    events = re.findall(r"^(?:(?:local)?rule (attribute):|Finished jobid: \d+ \(Rule: (attribute)\))", r.stderr, flags=re.M)
    assert [("start" if s else "end") for s, _ in events] == ["start", "start", "end", "end"], r.stderr[-3000:]

    exp = load_experiment({**cfg, "results_dir": str(tmp_path / "results")}, "tiny")
    fit_dir = Path(exp.layout.curvature_dir(key("if_ekfac", **EXPECTED)))
    assert sorted(p.name for p in fit_dir.glob("*.pt")) == ["ekfac_seed0_ckpt3_expected.pt", "ekfac_seed1_ckpt3_expected.pt"]
    logs = {p.stem: p.read_text() for p in (tmp_path / "results/logs/tiny").glob("*.log")}
    fit_log = next(text for name, text in logs.items() if name.startswith("fit_curvature_"))
    assert fit_log.count(": fitted") == 2  # the one fit, both seeds
    for method in ("if_ekfac", "if_ensemble"):
        assert ": fitted" not in logs[f"attribute_{method}"] and "read the shared fit" in logs[f"attribute_{method}"]
    for method, seeds in (("if_ekfac", [[0], [1]]), ("if_ensemble", [[0, 1]])):
        for s in seeds:
            got = np.load(exp.scores_path(method, "all" if len(s) > 1 else s[0]))
            np.testing.assert_allclose(got, _reference(exp, method, EXPECTED, s), rtol=1e-6, atol=0)
    assert json.loads((fit_dir / MANIFEST).read_text())["seeds"] == [0, 1]


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_fit_curvature_cli_refuses_a_bad_fit_in_one_line(repo, tmp_path, capsys):
    from tda_core.cli import main

    rc = main(["fit-curvature", "--config", str(repo / "workflow/config/tiny.yaml"), "--experiment", "tiny-mlp",
               "--tracking", '{"mode": "none"}', "--fit", '{"kind": "qfac", "checkpoints": "final"}',
               "--out", str(tmp_path / "fit")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "a curvature fit needs kind (kfac|ekfac)" in err, err
    rc = main(["fit-curvature", "--config", str(repo / "workflow/config/tiny.yaml"), "--experiment", "tiny-mlp",
               "--tracking", '{"mode": "none"}', "--fit", '{"kind": "ekfac", "checkpoints": "final", '
               '"options": {"damping": 1.0}}', "--out", str(tmp_path / "fit")])
    assert rc == 2 and "only curvature options (fisher, fisher_seed, n_fisher_samples, n_segments)" in capsys.readouterr().err
    assert not (tmp_path / "fit").exists()


def test_a_shared_fit_is_priced_into_each_readers_cost(tiny, tmp_path):
    """The board's cost column means 'as if the method ran alone': a reader of the shared fit adds the fit
    job's time for its seed (from fit.json) to its own scoring time; a method that fits in its job does not."""
    fit = curvature_fit("if_ekfac", EXPECTED)
    manifest = fit_shared_curvature(tiny, fit, tiny.layout.curvature_dir(fit["key"]))
    meta = attribute_method(tiny, "if_ekfac", ["1"], ["query"], EXPECTED, NONE)[0]
    fit_s = manifest["seed_wall_time_s"]["1"]
    assert fit_s > 0 and meta["shared_fit_wall_time_s"] == pytest.approx(fit_s)
    assert meta["wall_time_s"] == pytest.approx(meta["score_wall_time_s"] + fit_s)
    ensemble = attribute_method(tiny, "if_ensemble", ["all"], ["query"], EXPECTED, NONE)[0]
    assert ensemble["shared_fit_wall_time_s"] == pytest.approx(sum(manifest["seed_wall_time_s"].values()))
    own = attribute_method(tiny, "if_kfac", ["1"], ["query"], EXPECTED, NONE)[0]  # no shared kfac fit
    assert "shared_fit_wall_time_s" not in own and own["status"] == "ok"
