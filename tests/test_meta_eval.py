"""Do the metrics agree? Planted orderings: identical -> rho 1, reversed -> rho -1, unrelated -> an
interval covering 0; aliases count as their row; the leaderboard shows the section and the heatmap."""

import numpy as np

from tda_core import io
from tda_core.leaderboard import agreement_plot_path, write_all
from tda_core.meta_eval import agreement


def _row(metric, method, value, reps, aliases=""):
    return {"experiment": "e", "metric": metric, "method": method, "variant": "per-seed", "status": "ok",
            "value": float(value), "ci_low": float(np.quantile(reps, 0.025)), "ci_high": float(np.quantile(reps, 0.975)),
            "replicates": [float(x) for x in reps], "aliases": aliases}


def _bundle(seed=0, k=8, b=400):
    rng = np.random.default_rng(seed)
    truth = np.linspace(0.1, 0.8, k)
    shared = rng.normal(scale=0.01, size=(k, b))  # paired replicates: the same draws for every metric
    unrelated = np.array([3, 6, 0, 5, 2, 7, 1, 4]) / 10  # Spearman 0 with the truth's order
    rows = []
    for i, t in enumerate(truth):
        name = f"m{i}"
        rows.append(_row("lds", name, t, t + shared[i]))
        rows.append(_row("dlds_mean", name, t + 0.05, t + 0.05 + shared[i]))     # the same ordering
        rows.append(_row("dlds_w2", name, -t, -t - shared[i]))                    # reversed
        rows.append(_row("mislabel_auc", name, unrelated[i], unrelated[i] + rng.normal(scale=0.01, size=b // 2)))
    return {"experiment": "e", "results": rows}


def test_planted_orderings():
    table = agreement(_bundle()).set_index(["metric A", "metric B"])
    same = table.loc[("dlds_mean", "lds")]
    assert same.rho == 1.0 and same.ci_low > 0.95 and same.interval == "paired replicates" and same.verdict == "agree"
    rev = table.loc[("dlds_w2", "lds")]
    assert rev.rho == -1.0 and rev.ci_high < -0.95 and rev.verdict == "disagree"
    unrelated = table.loc[("lds", "mislabel_auc")]
    assert unrelated.rho == 0.0 and unrelated.interval == "rows resampled"  # replicates of another length
    assert unrelated.ci_low < 0 < unrelated.ci_high and unrelated.verdict == "no agreement shown"


def test_aliases_count_as_their_row():
    bundle = _bundle()
    # m7 in dlds_mean is folded into m6's row: it must still be matched, once, as m7
    rows = [r for r in bundle["results"] if not (r["metric"] == "dlds_mean" and r["method"] == "m7")]
    for r in rows:
        if r["metric"] == "dlds_mean" and r["method"] == "m6":
            r["aliases"] = "m7 (per-seed)"
    table = agreement({"experiment": "e", "results": rows}).set_index(["metric A", "metric B"])
    assert table.loc[("dlds_mean", "lds")].rows == 8


def test_leaderboard_section_and_heatmap(tmp_path):
    path = tmp_path / "metrics.json"
    io.write_json(path, _bundle())
    out = tmp_path / "lb"
    write_all([path], out / "l.csv", out / "l.md", out / "l.png", out / "l.html")
    md = (out / "l.md").read_text()
    assert "## Do the metrics agree?" in md and "### metric agreement on e" in md
    assert agreement_plot_path(out / "l.png").read_bytes()[:4] == b"\x89PNG"


def test_few_resampled_rows_give_no_interval():
    """Four methods in common, rows resampled: the bootstrap of 4 rows is degenerate (replicates with two
    distinct rows have rho +-1), so no interval and no verdict; paired replicates keep theirs."""
    keep = {f"m{i}" for i in range(4)}
    rows = [r for r in _bundle()["results"] if r["method"] in keep]
    table = agreement({"experiment": "e", "results": rows}).set_index(["metric A", "metric B"])
    few = table.loc[("lds", "mislabel_auc")]
    assert few.rows == 4 and few.verdict == "too few rows" and np.isnan(few.ci_low) and np.isnan(few.ci_high)
    assert table.loc[("dlds_mean", "lds")].verdict == "agree"  # 4 rows, but the replicates are paired
