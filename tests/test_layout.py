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


def _templates() -> dict[str, str]:
    """Every path method of the layout, called with wildcards: its path template."""
    e, b = ExperimentLayout("{results_dir}", "{exp}"), ResultsLayout("{results_dir}")
    return {
        "config": e.config, "masks": e.masks, "model": e.model("{r}"), "shard": e.shard("{k}"),
        "fixed_shard": e.fixed_shard("{k}"), "groundtruth": e.groundtruth, "scores": e.score_file("{method}", "query", "{r}"),
        "metrics": e.metrics, "pruning_run": e.pruning_run("{method}", "{variant}", "{p}"),
        "pruning_random": e.pruning_random("{p}"), "pruning_full": e.pruning_full, "pruning_summary": e.pruning_summary,
        "loo": e.loo_measurements, "loo_results": e.loo_results, "pictures": e.pictures + "/",
        "log": e.log("{job}"), "tracking": b.tracking_settings, "curvature": e.curvature_cache("{method}") + "/",
        "curvature_fit": e.curvature_dir("{fit}") + "/",
        "tuning": e.tuning, "removal_run": e.removal_run("{method}", "{k}"), "removal_random": e.removal_random("{k}"),
        "removal_full": e.removal_full, "removal_results": e.removal_results,
    }


def test_layout_docstring_lists_what_the_code_builds():
    doc = layout.__doc__
    for name, template in _templates().items():
        want = template.replace(".json", ".npy") if name == "scores" else template
        assert want in doc, (name, template)
    assert ResultsLayout("r").leaderboard("csv") == "r/leaderboard.csv"


def test_results_readme_paths_are_the_layouts():
    """Each path results/README.md lists is one of tda_core/layout.py's (README: results/, {experiment})."""
    doc = layout.__doc__
    listed = re.findall(r"^\s+(results/\S+)", (REPO / "results" / "README.md").read_text(), flags=re.M)
    assert len(listed) >= 8
    for path in listed:
        template = path.replace("results/", "{results_dir}/", 1).replace("{experiment}", "{exp}")
        assert template in doc, f"results/README.md lists {path}, which tda_core/layout.py does not"


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
