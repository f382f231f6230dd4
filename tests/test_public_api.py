"""The public modules users import declare `__all__`: every name in it exists, and every public name that
the package, the rules, the benchmarks and the example plugin import from such a module is in it."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC = ["tda_core.api", "tda_core.layout", "tda_core.methods.registry", "tda_core.metrics.registry",
          "tda_core.metrics.groundtruth", "tda_core.scores", "tda_core.leaderboard", "tda_core.board", "tda_core.studies",
          "tda_core.spec", "tda_core.schema", "tda_core.board.studies"]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    names = module.__all__
    assert len(names) == len(set(names)), f"{name}.__all__ lists a name twice"
    assert [n for n in names if not hasattr(module, n)] == []
    namespace = {}
    exec(f"from {name} import *", namespace)  # noqa: S102 (the star import gives exactly __all__)
    assert set(names) <= set(namespace)


def _imported_names() -> dict[str, set[tuple[str, str]]]:
    """module of PUBLIC -> {(importing file, name)} over tda_core, rules, the Snakefile, bench and examples."""
    found = {m: set() for m in PUBLIC}
    files = [*(REPO / "tda_core").rglob("*.py"), *(REPO / "bench").rglob("*.py"), *(REPO / "examples").rglob("*.py")]
    for f in files:
        rel = f.relative_to(REPO)
        package = list(rel.parts[:-1])
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                module = node.module
            if module in found:
                found[module] |= {(str(rel), a.name) for a in node.names}
    for f in [*(REPO / "rules").glob("*.smk"), REPO / "Snakefile"]:
        for m in re.finditer(r"^from (tda_core[\w.]*) import ([\w, ]+)$", f.read_text(), flags=re.M):
            if m.group(1) in found:
                found[m.group(1)] |= {(f.name, n.strip().split(" as ")[0]) for n in m.group(2).split(",")}
    return found


def test_what_other_modules_import_is_in_all():
    found = _imported_names()
    assert found["tda_core.scores"] and found["tda_core.methods.registry"]  # the scan sees imports
    missing = {(module, f, n) for module, uses in found.items() for f, n in uses
               if not n.startswith("_") and n not in importlib.import_module(module).__all__}
    assert missing == set(), missing
