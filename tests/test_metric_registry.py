"""One row per metric: the registry's MetricEntry is all the evaluator, the rows and the board read, so a new
metric is its function plus one row (checked end to end with a toy metric on a finished tiny workflow run)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import TINY_WORKFLOW_GROUP

from tda_core import io
from tda_core.api import Experiment
from tda_core.errors import ConfigError
from tda_core.metrics import registry
from tda_core.metrics.registry import METRICS, MetricEntry, get_metric, known_metrics, metric_entry


def evaluate_reversed_lds(scores, groundtruth, n_boot: int = 1000, seed: int = 0) -> dict:
    """The toy metric: the LDS of the negated scores, i.e. minus the LDS (Spearman is odd in its argument).
    scores: tda_core.scores.Scores, groundtruth: tda_core.metrics.groundtruth.GroundTruth."""
    from tda_core.metrics.lds import evaluate_lds

    return evaluate_lds(replace(scores, array=-scores.array), groundtruth, n_boot=n_boot, seed=seed)


TOY = MetricEntry("reversed_lds", f"{__name__}:evaluate_reversed_lds", "reversed LDS",
                  "Toy metric: the LDS of the negated scores; lower is better.", lower_is_better=True,
                  track="distributional", seed_rows=registry.PER_SEED, signal=registry.CEILING)


def test_every_row_resolves_and_names_are_checked():
    assert set(known_metrics()) == {n for n, row in METRICS.items() if row.function is not None}
    for name in known_metrics():
        assert callable(get_metric(name)), name
    assert metric_entry("topk_drop_k30") is METRICS["topk_drop"]
    for name in ("loo_shift", "brittleness", "nope"):  # other stages' rows, or no row: not for metrics:
        with pytest.raises(ConfigError, match=f"unknown metric '{name}'; known: "):
            get_metric(name)


@pytest.mark.xdist_group(TINY_WORKFLOW_GROUP)
def test_a_new_metric_is_one_row(tiny_workflow_run, tmp_path, monkeypatch):
    from tda_core.leaderboard import write_all
    from tda_core.stages.evaluate import evaluate_experiment

    monkeypatch.setitem(METRICS, TOY.name, TOY)
    res = tiny_workflow_run / "results" / "tiny-mlp"
    exp = Experiment({**io.read_json(res / "config.json"), "results_dir": str(tiny_workflow_run / "results")})
    out = tmp_path / "metrics.json"
    evaluate_experiment(exp, ["lds", TOY.name], ["grad_dot", "tracin"], None, res / "groundtruth" / "measurements.npz",
                        out, {"mode": "none"})
    rows = io.read_json(out)["results"]
    by = {(r["metric"], r["method"], r["variant"]): r for r in rows if r.get("status") == "ok"}
    lds = {k[1:]: r for k, r in by.items() if k[0] == "lds"}
    toy = {k[1:]: r for k, r in by.items() if k[0] == TOY.name}
    assert toy.keys() == lds.keys() and len(toy) >= 2  # the same rows (per-seed, seed-averaged) as lds
    for key, r in toy.items():  # an independent truth: Spearman(-x, y) = -Spearman(x, y)
        assert r["value"] == pytest.approx(-lds[key]["value"], abs=1e-6), key
    # lower is better: ranked as lds ranks the negated values
    assert {k: r["rank"] for k, r in toy.items()} == {k: r["rank"] for k, r in lds.items()}
    board = tmp_path / "board"
    df = write_all([out], board / "l.csv", board / "l.md", board / "l.png", board / "l.html")
    assert TOY.name in set(df.metric) and set(df[df.metric == TOY.name].track) == {"distributional"}
    md = (board / "l.md").read_text()
    section = md.split(f"\n## {TOY.name}\n")[1].split("\n## ")[0]
    assert TOY.note in section and "reversed LDS" in section
    assert md.index("## lds") < md.index(f"## {TOY.name}")  # after the ordered metrics
