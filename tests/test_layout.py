"""tda_core/layout.py is the one place the artifact layout is written: the rules, the package and
results/README.md agree with it, and nothing in tda_core imports in a cycle."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tda_core import layout
from tda_core.layout import ExperimentLayout, ResultsLayout, ScoreFile, score_files

REPO = Path(__file__).resolve().parents[1]


class _Recorder:
    """A layout whose attributes are recorded as they are read."""

    def __init__(self, layout_):
        self.layout, self.read = layout_, set()

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self.layout, name)


def _path_attributes(cls) -> set[str]:
    """The public properties and methods of a layout class (each builds a path)."""
    return {n for n, v in vars(cls).items() if not n.startswith("_") and (isinstance(v, property) or callable(v))}


# Public layout attributes with no row of their own in layout.RESULTS_FILES: the experiment's folder
# and the attribute job's output folder, the folders of rows that are listed; a study's file by its relative
# path (each study's own rows are checked below).
NOT_ROWS = {"root", "score_dir", "study_file"}
# Rows that no layout attribute builds: the wandb library writes its runs there (tda_core/tracking.py).
NOT_BUILT = {"wandb/"}


def test_results_files_rows_are_the_paths_the_layout_builds():
    """Each row of layout.RESULTS_FILES (results/README.md's table) is the path of the layout attribute
    that builds it, and every path attribute of the layout has its row: neither drifts from the other."""
    e, b = _Recorder(ExperimentLayout("R", "{experiment}")), _Recorder(ResultsLayout("R"))
    built = {
        "{experiment}/config.json": e.config,
        "{experiment}/groundtruth/masks.npy": e.masks,
        "{experiment}/groundtruth/shard{k}.npz": e.shard("{k}"),
        "{experiment}/groundtruth/fixed_shard{k}.npz": e.fixed_shard("{k}"),
        "{experiment}/groundtruth/measurements.npz": e.groundtruth,
        "{experiment}/models/seed{r}.pt": e.model("{r}"),
        "{experiment}/scores/{method}/seed{r}.npy": e.score_file("{method}", "query", "{r}", ".npy"),
        "{experiment}/scores/{method}/_cache/": e.curvature_cache("{method}") + "/",
        "{experiment}/curvature/{fit}/": e.curvature_dir("{fit}") + "/",
        "{experiment}/metrics.json": e.metrics,
        "{experiment}/pruning/{method}/{variant}/p{p}.json": e.pruning_run("{method}", "{variant}", "{p}"),
        "{experiment}/pruning/_random/p{p}.json": e.pruning_random("{p}"),
        "{experiment}/pruning/_full.json": e.pruning_full,
        "{experiment}/pruning/summary.json": e.pruning_summary,
        "{experiment}/pruning/pruning.png": e.pruning_plot,
        "{experiment}/loo/measurements.npz": e.loo_measurements,
        "{experiment}/loo/results.json": e.loo_results,
        "{experiment}/loo/loo.png": e.loo_plot,
        "{experiment}/removal/methods/{method}/k{k}.json": e.removal_run("{method}", "{k}"),
        "{experiment}/removal/baselines/random_k{k}.json": e.removal_random("{k}"),
        "{experiment}/removal/baselines/full.json": e.removal_full,
        "{experiment}/removal/results.json": e.removal_results,
        "{experiment}/removal/removal.png": e.removal_plot,
        "{experiment}/tuning.json": e.tuning,
        "{experiment}/tuning.png": e.tuning_plot,
        "{experiment}/pictures/": e.pictures + "/",
        "logs/{experiment}/{job}.log": e.log("{job}"),
        "logs/{job}.log": b.log("{job}"),
        "leaderboard.{csv,md,html,png}": b.leaderboard("{csv,md,html,png}"),
        "leaderboard_metric_agreement.png": b.metric_agreement_plot,
        ".tracking.json": b.tracking_settings,
        "tracking/{job_type}/{name}.json": b.tracking_record("{job_type}", "{name}"),
    }
    rows = [pattern for pattern, _ in layout.RESULTS_FILES]
    assert len(rows) == len(set(rows)), "a path listed twice"
    assert set(rows) == set(built) | NOT_BUILT, (set(rows) ^ (set(built) | NOT_BUILT))
    for pattern, path in built.items():
        assert path == f"R/{pattern}", (pattern, path)
    assert e.read | NOT_ROWS == _path_attributes(ExperimentLayout), _path_attributes(ExperimentLayout) - e.read
    assert b.read == _path_attributes(ResultsLayout), _path_attributes(ResultsLayout) - b.read
    assert all(text.strip() for _, text in layout.RESULTS_FILES)


def test_every_study_lists_the_files_the_board_reads():
    """A study row's board file and plots (tda_core/studies.py) are among its own rows of the path table, and
    study_file builds them where the layout's own attributes do."""
    from tda_core.studies import STUDIES

    e = ExperimentLayout("R", "{experiment}")
    for row in STUDIES.values():
        own = {pattern for pattern, _ in row.results}
        for relative in (row.board_file, *row.images):
            assert f"{{experiment}}/{relative}" in own, (row.name, relative)
            assert e.study_file(relative) == f"R/{{experiment}}/{relative}"
    assert e.study_file(STUDIES["pruning"].board_file) == e.pruning_summary
    assert e.study_file(STUDIES["removal"].board_file) == e.removal_results


def test_results_readme_holds_the_rendered_table():
    """results/README.md's path table is layout.results_table() (`python -m tda_core.layout` rewrites it)."""
    text = (REPO / "results" / "README.md").read_text()
    assert layout.readme_with_table(text) == text, "results/README.md is stale: run python -m tda_core.layout"
    table = text.split(layout.README_BEGIN)[1].split(layout.README_END)[0]
    listed = re.findall(r"^    results/(\S+)", table, flags=re.M)
    assert listed == [pattern for pattern, _ in layout.RESULTS_FILES]


def test_layout_main_rewrites_a_stale_table(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"prose\n{layout.README_BEGIN}\n    results/old.json  gone\n{layout.README_END}\nmore prose\n")
    assert layout.main(["--check", str(readme)]) == 1 and "differs" in capsys.readouterr().err
    assert layout.main([str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("prose\n") and text.endswith("more prose\n") and "old.json" not in text
    assert layout.results_table() in text and layout.main(["--check", str(readme)]) == 0
    readme.write_text("no markers\n")
    assert layout.main(["--check", str(readme)]) == 1 and "needs one line" in capsys.readouterr().err
    res = subprocess.run([sys.executable, "-m", "tda_core.layout", "--check"], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr


def test_score_files_and_wildcards():
    e = ExperimentLayout("res", "tiny")
    assert e.score_file("tracin", "val", 1, ".npy") == "res/tiny/scores/tracin/val_seed1.npy"
    assert e.score_file("tracin", "query", "all") == "res/tiny/scores/tracin/seedall.json"
    assert [f.path() for f in score_files("d", "m", "train_self", "per_seed", 2)] == \
        ["d/train_self_seed0.json", "d/train_self_seed1.json"]
    assert [f.path(".npy") for f in score_files("d", "m", "query", "per_seed_samples", 3)] == ["d/seedall.npy"]
    assert score_files("d", "m", "query", "pooled", 3) == [ScoreFile("d", "m", "query", "all")]
    assert ExperimentLayout("R", "{exp}").model("{seed}") == "R/{exp}/models/seed{seed}.pt"  # Snakemake patterns


def test_experiment_paths_come_from_the_layout():
    from tda_core.api import Experiment

    exp = Experiment({"name": "tiny", "config_hash": "h", "results_dir": "somewhere"})
    e = ExperimentLayout("somewhere", "tiny")
    assert str(exp.model_path(1)) == e.model(1) and str(exp.groundtruth_path()) == e.groundtruth
    assert str(exp.scores_path("grad_dot", 0, "randomized")) == e.score_file("grad_dot", "randomized", 0, ".npy")
    assert exp.layout == e


def test_dry_run_plans_exactly_the_files_the_layout_predicts(tmp_path):
    """The DAG of tiny.yaml (its rules' outputs) against the files tda_core/layout.py names for it."""
    results = tmp_path / "results"
    res = subprocess.run([sys.executable, "-m", "snakemake", "--summary", "--configfile", "workflow/config/tiny.yaml",
                          "--config", f"results_dir={results}"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr[-2000:]
    planned = {line.split("\t")[0] for line in res.stdout.splitlines()[1:] if line.strip()}
    e, b = ExperimentLayout(str(results), "tiny-mlp"), ResultsLayout(str(results))
    # tiny.yaml: 2 seeds, 8 subsets in shards of 4, methods random, grad_dot, tracin; no pruning / loo;
    # top-k removal of grad_dot's top 4 and 30 (with random removal and the full-data baseline)
    want = {e.config, e.masks, e.groundtruth, e.metrics, b.metric_agreement_plot,
            *(e.model(r) for r in range(2)), *(e.shard(k) for k in range(2)),
            *(e.score_dir(m) for m in ("random", "grad_dot", "tracin")),
            *(b.leaderboard(x) for x in ("csv", "md", "html", "png")),
            *(e.removal_run("grad_dot", k) for k in (4, 30)), *(e.removal_random(k) for k in (4, 30)),
            e.removal_full, e.removal_results, e.removal_plot}
    assert planned == want


# -- stage numbers ---------------------------------------------------------------------------------
# The tda_core/stages module of each rules file's jobs (its "Stage N" header names the same stage).
STAGE_MODULES = {"data.smk": ["prepare"], "train.smk": ["train", "groundtruth"],
                 "attribute.smk": ["attribute", "curvature"], "evaluate.smk": ["evaluate"], "report.smk": ["report"]}


def test_stage_numbers_in_headers_are_the_readmes():
    """The "Stage N" headers of rules/*.smk and tda_core/stages/*.py number the stages as README.md's list does."""
    text = (REPO / "README.md").read_text()
    listed = text.split("Stages (one `rules/*.smk` each")[1].split("\n\n")[1]
    readme = {}
    for number, item in re.findall(r"^(\d)\. (.*?)(?=^\d\. |\Z)", listed, flags=re.M | re.S):
        readme |= {smk: int(number) for smk in re.findall(r"rules/(\w+\.smk)", item)}
    assert set(STAGE_MODULES) <= set(readme), readme
    headers = {}
    for f in [*(REPO / "rules").glob("*.smk"), *(REPO / "tda_core" / "stages").glob("*.py")]:
        m = re.match(r'(?:# |""")Stage (\d+)\b', f.read_text())
        if m:
            headers[f.name] = int(m.group(1))
    want = {smk: readme[smk] for smk in STAGE_MODULES} | \
        {f"{mod}.py": readme[smk] for smk, mods in STAGE_MODULES.items() for mod in mods}
    assert {name: headers.get(name) for name in want} == want
    assert set(headers) <= set(want), f"a Stage header the README list does not place: {set(headers) - set(want)}"


# -- no import cycles ------------------------------------------------------------------------------
def _module_imports() -> dict[str, set[str]]:
    """tda_core module -> the tda_core modules it imports (at any depth of its body: lazy ones too)."""
    pkg = REPO / "tda_core"
    names = {}
    for f in pkg.rglob("*.py"):
        rel = f.relative_to(REPO).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        names[".".join(parts)] = (f, rel.name == "__init__")
    graph = {}
    for mod, (f, is_pkg) in names.items():
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + (node.module.split(".") if node.module else [])) if node.level else node.module
                for alias in node.names:  # "from . import io" imports the submodule io
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in names else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[mod] = {d for d in deps if d in names and d != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_graph_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_tda_core():
    graph = _module_imports()
    assert "tda_core.layout" in graph["tda_core.api"] and "tda_core.io" in graph["tda_core.scores"]  # the graph sees imports
    cycles = _cycles(graph)
    assert cycles == [], cycles


def test_layout_imports_neither_torch_nor_numpy():
    tree = ast.parse((REPO / "tda_core" / "layout.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {"torch", "numpy"} & {m.split(".")[0] for m in imported}


def test_cli_pairs_score_folders_with_methods(capsys):
    """--scores-dir names one folder per --method (paired by position, never parsed from the path)."""
    from tda_core.cli import main

    rc = main(["evaluate", "--config", str(REPO / "workflow/config/tiny.yaml"), "--experiment", "tiny-mlp",
               "--tracking", '{"mode": "none"}', "--metric", "lds", "--method", "grad_dot", "tracin",
               "--scores-dir", "only/one", "--out", "unused.json"])
    assert rc == 2 and "--scores-dir gives 1 folders for 2 --method names" in capsys.readouterr().err
