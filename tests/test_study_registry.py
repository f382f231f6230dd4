"""One row per study: tda_core/studies.py's StudyEntry is all the Snakefile, the config, the `tda` CLI, the layout,
the seeds and the board read, so a new study is its rule file, its stage module and one row. Checked end to end
with a toy study installed the way a package adds one (an entry point of group tda_bench.studies): on a copy of
the finished tiny workflow run, Snakemake runs its job and the leaderboard and nothing else, and the board shows
its numbers, checked against the score files read with numpy."""
from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest
import yaml
from conftest import TINY_WORKFLOW_GROUP, copy_workflow_run, planned_jobs, run_snakemake

from tda_core.errors import ConfigError
from tda_core.registry_rows import import_path
from tda_core.spec import JOB_LOCAL, UNHASHED
from tda_core.studies import STUDIES, study_entry, study_of_command

# The toy study's row module (what a package ships): imports nothing heavy, so the DAG stays cheap.
TOY_ROW = '''
from pathlib import Path

from tda_core.studies import StudyEntry

HERE = Path(__file__).resolve().parent
ROW = StudyEntry(
    "score_power", str(HERE / "score_power.smk"), ("score-power",), "toy_study.stage:add_commands",
    "score_power/results.json", "toy_study.stage:board",
    results=(("{experiment}/score_power/results.json", "toy study: mean |score|^power per method"),),
    schema={"type": "object", "additionalProperties": False, "required": ["power"],
            "properties": {"power": {"type": "number", "exclusiveMinimum": 0}}})
'''
# Its stage module: the `tda` subcommand and the board section.
TOY_STAGE = '''
import numpy as np
import pandas as pd

from tda_core import io
from tda_core.scores import method_scores


def score_power(exp, methods, score_dirs, power, out):
    rows = [{"method": m, "value": float(np.mean(np.abs(method_scores(exp, m, "query", d).array) ** power))}
            for m, d in zip(methods, score_dirs)]
    io.write_json(out, {"experiment": exp.name, "power": power, "rows": rows})


def add_commands(stage):
    from tda_core.cli import experiment_of

    def cmd(args):
        score_power(experiment_of(args), args.method, args.scores_dir, args.power, args.out)

    sp = stage("score-power", cmd, "toy study: mean |score|^power of every method")
    sp.add_argument("--method", nargs="+", required=True)
    sp.add_argument("--scores-dir", nargs="+", required=True)
    sp.add_argument("--power", type=float, required=True)
    sp.add_argument("--out", required=True)


def board(paths, bundles):
    rows = [{"experiment": d["experiment"], "method": r["method"], "mean |score|^p": r["value"]}
            for d in map(io.read_json, paths) for r in d["rows"]]
    if not rows:
        return []
    table = pd.DataFrame(rows).set_index(["experiment", "method"])
    return [("score_power", 2, "Toy study: score power", "mean over queries, training examples and seeds", table)]
'''
TOY_RULES = '''
rule score_power:
    input:
        config=exp_paths("{exp}").config,
        scores=lambda w: score_dirs(w.exp),
    output:
        exp_paths("{exp}").study_file("score_power/results.json"),
    params:
        methods=lambda w: " ".join(EXPERIMENTS[w.exp]["methods"]),
        power=lambda w: EXPERIMENTS[w.exp]["score_power"]["power"],
    log:
        exp_paths("{exp}").log("score_power"),
    shell:
        "tda --log {log} score-power --exp-config {input.config} --method {params.methods}"
        " --scores-dir {input.scores} --power {params.power} --out {output}"
'''


def _install_toy_study(root):
    """The toy study as an installed package: its modules and a dist-info folder declaring the entry point."""
    pkg = root / "toy_study"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(TOY_ROW))
    (pkg / "stage.py").write_text(textwrap.dedent(TOY_STAGE))
    (pkg / "score_power.smk").write_text(textwrap.dedent(TOY_RULES))
    dist = root / "toy_study-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-study\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tda_bench.studies]\nscore_power = toy_study:ROW\n")
    return root


def test_a_study_block_is_checked_by_its_rows_schema(monkeypatch, tmp_path):
    """The toy study's row (its schema) validates its block in one line, and the block changes no config hash."""
    import sys

    from conftest import tiny_config

    from tda_core import config
    from tda_core.config import resolve_experiment, validate_config

    monkeypatch.syspath_prepend(str(_install_toy_study(tmp_path / "site")))
    from toy_study import ROW

    before = resolve_experiment(validate_config(tiny_config()), "tiny")["config_hash"]
    monkeypatch.setitem(STUDIES, ROW.name, ROW)
    config._schema.cache_clear()
    config.schema_path.cache_clear()
    try:
        bad = tiny_config(score_power={"power": -1})
        with pytest.raises(ConfigError, match="config error at experiments.tiny.score_power.power: -1 is less than"):
            validate_config(bad)
        good = validate_config(tiny_config(score_power={"power": 2}))
        assert resolve_experiment(good, "tiny")["config_hash"] == before
    finally:
        monkeypatch.delitem(STUDIES, ROW.name)
        config._schema.cache_clear()
        config.schema_path.cache_clear()
        sys.modules.pop("toy_study", None)


def test_every_row_resolves():
    assert list(STUDIES)[:4] == ["pruning", "tuning", "removal", "loo"]  # the board's order of their sections
    for name, row in STUDIES.items():
        assert study_entry(name) is row
        assert callable(import_path(row.cli)) and callable(import_path(row.board))
        assert row.retrain_seeds is None or callable(import_path(row.retrain_seeds))
        assert row.check is None or callable(import_path(row.check))
        assert name in UNHASHED and name in JOB_LOCAL  # a study changes no trained model
        for command in row.commands:
            assert study_of_command(command) is row
    assert study_of_command("train") is None
    with pytest.raises(ConfigError, match="unknown study 'nope'; known: loo, pruning"):
        study_entry("nope")


@pytest.mark.xdist_group(TINY_WORKFLOW_GROUP)
def test_a_new_study_is_its_rule_file_its_stage_module_and_one_row(repo, tiny_workflow_run, tmp_path):
    plugin = _install_toy_study(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin), os.environ.get("PYTHONPATH")]))}
    cfg = yaml.safe_load((repo / "workflow/config/tiny.yaml").read_text())
    cfg["tracking"] = {"mode": "none"}
    exp = cfg["experiments"]["tiny-mlp"]
    exp.pop("removal")  # tiny.yaml's top-k removal is tested in test_workflow
    work = copy_workflow_run(tiny_workflow_run, tmp_path / "work")
    config_before = (work / "results/tiny-mlp/config.json").read_bytes()

    exp["score_power"] = {"power": 2}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    # outside the config hash: nothing trains or attributes again, only the study's job and the board
    run = run_snakemake(work, configfile=tmp_path / "toy.yaml", cores=1, env=env, timeout=600)
    assert planned_jobs(run.stdout + run.stderr) == {"score_power": 1, "leaderboard": 1, "all": 1}, run.stderr[-3000:]
    res = work / "results"
    assert (res / "tiny-mlp/config.json").read_bytes() == config_before
    written = json.loads((res / "tiny-mlp/score_power/results.json").read_text())
    # the independent truth: the score files read with numpy
    for row in written["rows"]:
        files = sorted((res / "tiny-mlp/scores" / row["method"]).glob("seed*.npy"))
        truth = np.mean([np.abs(np.load(f)) ** 2 for f in files])
        assert files and row["value"] == pytest.approx(truth, rel=1e-6), row
    assert {r["method"] for r in written["rows"]} == set(exp["methods"])
    board = (res / "leaderboard.md").read_text()
    section = board.split("## Toy study: score power\n")[1].split("\n## ")[0]
    assert "mean over queries, training examples and seeds" in section
    shown = {}  # the section's table: "| tiny-mlp / {method} | {value} |"
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("tiny-mlp / "):
            shown[cells[0].split(" / ")[1]] = float(cells[1])
    assert shown == pytest.approx({r["method"]: r["value"] for r in written["rows"]}, rel=1e-6)
    assert board.index("## Toy study: score power") > board.index("## lds")  # after the metrics' sections


def test_a_broken_study_plugin_is_one_line(repo, tmp_path):
    """An installed study whose module does not import stops `tda` and the workflow's plan with one line naming
    the plugin, not a traceback."""
    import subprocess
    import sys

    site = tmp_path / "site"
    dist = site / "broken_study-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-study\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tda_bench.studies]\nbroken = no_such_module:ROW\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    want = ("study plugin 'broken' (no_such_module:ROW) cannot be loaded: ModuleNotFoundError: "
            "No module named 'no_such_module'")
    r = subprocess.run([sys.executable, "-c", "import sys; from tda_core.cli import main; sys.exit(main(['methods']))"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip() == f"tda: error: {want}", r.stderr
    plan = run_snakemake(tmp_path, "-n", env=env, check=False, timeout=300)
    out = plan.stdout + plan.stderr
    assert plan.returncode != 0 and f"tda-bench: {want}" in out and "Traceback" not in out, out[-2000:]
