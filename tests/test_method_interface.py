"""The narrow method interface: methods see an AttributionContext (tda_core/methods/context.py), never the
Experiment or its config, and their curvature cache is private to their own score directory."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, tiny_config
from tda_core.api import Experiment, load_experiment
from tda_core.methods.context import AttributionContext, Checkpoint, Interval, Trajectory
from tda_core.methods.registry import get_method
from tda_core.stages.attribute import attribute_method
from tda_core.stages.context import build_context
from tda_core.stages.train import train_full
from tda_core.targets import target_context

NONE = {"mode": "none"}
FORBIDDEN_MODULES = {"tda_core.api", "tda_core.config"}
FORBIDDEN_ATTRIBUTES = {"exp", "cfg", "load_model_meta", "load_checkpoints", "scores_path", "model_path"}
METHOD_SIDE = [p for d in ("methods", "curvature") for p in sorted((REPO / "tda_core" / d).glob("*.py"))]


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("path", METHOD_SIDE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_method_modules_import_no_experiment_or_config_and_read_no_cfg(path):
    bad = {m for m in _imported_modules(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MODULES)}
    assert not bad, f"{path.name} imports {sorted(bad)}: methods see only the AttributionContext"
    math_modules = {"torch", "np", "math"}  # torch.exp is no experiment
    attrs = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)
             and not (isinstance(n.value, ast.Name) and n.value.id in math_modules)}
    assert not attrs & FORBIDDEN_ATTRIBUTES, f"{path.name} reads {sorted(attrs & FORBIDDEN_ATTRIBUTES)}"


def test_the_import_check_sees_relative_imports(tmp_path):
    """The check above has teeth: `from ..api import Experiment` inside tda_core/methods resolves to tda_core.api."""
    fake = REPO / "tda_core" / "methods" / "_probe_not_a_module.py"
    source = "from ..api import Experiment\nfrom .. import config\n"
    try:
        fake.write_text(source)
        assert {"tda_core.api", "tda_core.config"} <= _imported_modules(fake)
    finally:
        fake.unlink()


def test_targets_and_score_stem_import_no_api_and_no_torch():
    assert not {m for m in _imported_modules(REPO / "tda_core" / "targets.py") if m.startswith("tda_core.api")}
    code = "import sys; from tda_core.targets import score_stem; print(score_stem('val', 1), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["val_seed1", "False"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = tiny_config(seeds=1, train={"n_checkpoints": 2})
    cfg["results_dir"] = str(tmp_path_factory.mktemp("iface"))
    exp = load_experiment(cfg, "tiny")
    train_full(exp, 0, exp.model_path(0), NONE)
    return exp


def _leaves(obj, seen=None):
    """Every value reachable through the record's dataclass fields, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    children = []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        children = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    for c in children:
        yield from _leaves(c, seen)


@pytest.mark.parametrize("target", ["query", "val", "train_self", "randomized"])
def test_the_record_a_method_sees_holds_no_experiment_and_no_config(tiny, target):
    ctx, _ = target_context(build_context(tiny, [0]), target, val=(tiny.splits.val_x, tiny.splits.val_y))
    assert isinstance(ctx, AttributionContext)
    traj = ctx.trajectory(0)
    for rec in (ctx, traj, *traj.checkpoints):
        assert not any(hasattr(rec, a) for a in FORBIDDEN_ATTRIBUTES), type(rec).__name__
    for leaf in _leaves(ctx):
        assert not isinstance(leaf, Experiment)
        assert not (isinstance(leaf, dict) and {"train", "seeds", "config_hash"} & set(leaf)), "a config dict"
    # the trajectory: one checkpoint per saved step, each interval's steps and learning rate as trained
    meta = tiny.load_model_meta(0)
    assert [c.step for c in traj.checkpoints] == meta["checkpoint_steps"]
    assert traj.checkpoints[0].interval is None
    assert all(isinstance(c, Checkpoint) and isinstance(c.interval, Interval) for c in traj.checkpoints[1:])
    lrs = np.asarray(meta["lrs"])
    for a, b in zip(traj.checkpoints[:-1], traj.checkpoints[1:]):
        assert b.interval.steps == b.step - a.step and b.lr == pytest.approx(lrs[a.step:b.step].mean())
        assert b.interval.pool is None  # single-stage: every example
    assert traj.weight_decay == tiny.cfg["train"]["weight_decay"]
    schedule = traj.replay()
    assert len(schedule.batches) == meta["total_steps"] and np.allclose(schedule.lrs, lrs)


def test_curvature_cache_lands_in_the_methods_own_score_directory(tiny):
    """Fitted curvature is cached inside scores/{method}/_cache/ (the attribute job's declared output),
    the randomized target's apart: its cached fit must be of the re-initialised model, not the trained one."""
    attribute_method(tiny, "if_ekfac", ["0"], ["query", "randomized"], {}, NONE)
    score_dir = tiny.scores_path("if_ekfac", 0).parent
    cached = sorted(p.relative_to(score_dir).as_posix() for p in score_dir.rglob("*.pt"))
    assert cached and all(p.startswith("_cache/") for p in cached), cached
    assert any(p.startswith("_cache/randomized/") for p in cached) and any(p.count("/") == 1 for p in cached)
    assert not (tiny.root / "curvature").exists()
    assert not [p for p in tiny.root.rglob("*.pt") if p.parent.name != "models" and "_cache" not in p.parts]
    # the randomized scores of the cached run equal those fitted afresh on the randomized model
    ctx, _ = target_context(build_context(tiny, [0]), "randomized")
    fresh = get_method("if_ekfac")(cache=False).score(ctx)
    np.testing.assert_array_equal(np.load(tiny.scores_path("if_ekfac", 0, "randomized")), fresh)
    trained = get_method("if_ekfac")(cache=False).score(build_context(tiny, [0]))
    np.testing.assert_array_equal(np.load(tiny.scores_path("if_ekfac", 0)), trained)
    assert np.abs(fresh - trained).max() > 1e-3 * np.abs(trained).max()  # the two fits really differ


def test_a_method_runs_on_a_hand_built_context_without_any_experiment():
    """Bring your own data and model: an AttributionContext from plain tensors and one checkpoint;
    grad_dot's scores are -v_q . g_i computed by hand with autograd."""
    from tda_core.tasks import ClassificationTask

    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])
    xq, yq = torch.randn(2, 3), torch.tensor([1, 0])

    def build_model(seed):
        torch.manual_seed(seed)
        return torch.nn.Linear(3, 2)

    params = {k: v.detach() for k, v in build_model(0).named_parameters()}
    traj = Trajectory(0, (Checkpoint(0, params),), optimizer=None)
    ctx = AttributionContext(task=ClassificationTask("loss"), train_x=x, train_y=y, query_x=xq, query_y=yq,
                             seeds=(0,), build_model=build_model, load_trajectory=lambda seed: traj)
    scores = get_method("grad_dot")().score(ctx)

    def flat_grad(xi, yi):
        m = build_model(0)
        torch.nn.functional.cross_entropy(m(xi[None]), yi[None]).backward()
        return torch.cat([p.grad.reshape(-1) for p in m.parameters()])

    G = torch.stack([flat_grad(x[i], y[i]) for i in range(6)])
    V = torch.stack([flat_grad(xq[q], yq[q]) for q in range(2)])
    np.testing.assert_allclose(scores, -(V @ G.T).numpy(), rtol=1e-5, atol=1e-6)
