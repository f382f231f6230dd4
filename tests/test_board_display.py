"""What the board prints (issue 17, item 8): p-values never as "0", an unresolved noise ceiling as
"not resolved" (no number, no plot line), and an Overview that ranks rows only over the experiments
they all ran on, with their coverage."""

import numpy as np
import pandas as pd
import pytest

from tda_core import io
from tda_core import plots
from tda_core.leaderboard import LEGEND, bar_plot, collect, overview_table, write_all
from tda_core.metrics.stats import reliability, target_fields


def _bundle(path, experiment, rows, noise=None, scenario="converged"):
    """An evaluate bundle (pre-version-1 form: no provenance needed) with rows of metric lds."""
    doc = {"experiment": experiment, "scenario": scenario, "n_subsets": 40, "seeds_per_subset": 2, "results": rows}
    if noise is not None:
        doc["noise"] = {"lds": noise}
    io.write_json(path, doc)
    return path


def _row(experiment, method, variant, value, rank, noise=None, **kw):
    ci = {"ci_low": value - 0.05, "ci_high": value + 0.05}
    if kw.get("replicates"):  # a bundle's CI is the percentile interval of its replicates (bundle checks it)
        lo, hi = np.quantile(np.asarray(kw["replicates"], dtype=float), [0.025, 0.975])
        ci = {"ci_low": float(lo), "ci_high": float(hi)}
    return {"experiment": experiment, "method": method, "metric": "lds", "variant": variant, "models": 1,
            "aliases": "", "status": "ok", "value": value, **ci,
            "rank": rank, "rank_ci_low": rank, "rank_ci_high": rank, "tied_with_best": rank == 1,
            "wall_time_s": 1.0, "peak_memory_mb": 10.0, **(noise or {}), **kw}


def _ground_truth_noise(signal: float, seed: int) -> dict:
    """Reliability and ceiling (the evaluate stage's own estimator) of a planted ground truth: subset
    measurements [M, R'=2, Q] = signal * subset effect + seed noise. signal 0: the seeds share nothing."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(40, 1, 30))
    subset = signal * effect + rng.normal(size=(40, 2, 30))
    return target_fields(reliability(subset, n_boot=200, seed=seed))


def _board(tmp_path, bundles, pruning=None):
    out = tmp_path / "board"
    write_all(bundles, out / "l.csv", out / "l.md", out / "l.png", out / "l.html", study_files={"pruning": pruning or []})
    return out


def _md_tables(md: str) -> list[pd.DataFrame]:
    """The Markdown pipe tables of a page, as string frames."""
    tables, block = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            tables.append(pd.DataFrame(block[2:], columns=block[0]))
            block = []
    return tables


# -- (a) p-values --------------------------------------------------------------------------------------
def test_a_p_of_zero_is_printed_as_below_0001_never_0(tmp_path):
    """A paired bootstrap whose every replicate favours one row gives p = 0 (it only says p < 1/B): the claims
    table of the board printed it as '0'. Every p cell of every table must read '< 0.001' instead."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.6, 0.02, size=400)
    rows = [_row("e", "if_ekfac", "seed-averaged", 0.80, 1, replicates=list(base + 0.2)),
            _row("e", "if_ekfac", "per-seed", 0.60, 2, replicates=list(base))]
    out = _board(tmp_path, [_bundle(tmp_path / "e.json", "e", rows)])
    md = (out / "l.md").read_text()
    p_cells = [str(c) for t in _md_tables(md) for col in t.columns if col.lower() == "p" or col.lower().startswith("p ")
               for c in t[col]]
    assert p_cells, "the board prints no p-value (the ensemble claim should be tested on these rows)"
    assert "0" not in p_cells and "0.0" not in p_cells
    assert "< 0.001" in p_cells
    assert "< 0.001" in (out / "l.html").read_text().replace("&lt;", "<")
    assert any(line.startswith("**p**") for line in LEGEND)


def test_a_every_p_column_of_a_displayed_table_goes_through_format_p():
    from tda_core.leaderboard import format_p_columns

    table = pd.DataFrame({"claim": ["x", "y", "z", "w"], "p": [0.0, "0", "0.0412", "< 0.001"],
                          "p (Holm)": [1e-5, 0.5, float("nan"), None], "value": [0.0, 0.0, 0.0, 0.0]})
    shown = format_p_columns(table)
    assert shown["p"].tolist() == ["< 0.001", "< 0.001", "0.0412", "< 0.001"]
    assert shown["p (Holm)"].tolist() == ["< 0.001", "0.5", "n/a", "n/a"]
    assert shown["value"].tolist() == [0.0] * 4  # other columns untouched


# -- (b) the noise ceiling -----------------------------------------------------------------------------
def _captured_figure(monkeypatch, df):
    """The bar plot's figure (its save is intercepted so the artists can be inspected)."""
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=110: figs.append(fig))
    bar_plot(df, "unused.png")
    return figs[0]


def _dashed_vertical_lines(fig) -> list[tuple[float, str]]:
    out = []
    for ax in fig.axes:
        for line in ax.get_lines():
            x = np.asarray(line.get_xdata(), dtype=float)
            if line.get_linestyle() == "--" and len(x) == 2 and x[0] == x[1]:
                out.append((float(x[0]), line.get_label()))
    return out


def test_b_unresolved_ceiling_reads_not_resolved_and_draws_no_line(tmp_path, monkeypatch):
    noise = _ground_truth_noise(signal=0.0, seed=3)  # planted: seeds share nothing, nothing to resolve
    assert noise["reliability_ci_low"] <= 0 and noise["ceiling"] == 0.0  # stats' "no reliable signal" report
    rows = [_row("e", "source", "per-seed", 0.726, 1, noise), _row("e", "if_ekfac", "per-seed", 0.5, 2, noise)]
    path = _bundle(tmp_path / "e.json", "e", rows, noise)
    fig = _captured_figure(monkeypatch, collect([path]))
    assert _dashed_vertical_lines(fig) == []  # the old plot drew a dashed 'ceiling' line at 0
    assert "ceiling not resolved" in fig.axes[0].get_title()
    monkeypatch.undo()
    out = _board(tmp_path, [path])
    md, page = (out / "l.md").read_text(), (out / "l.html").read_text()
    assert "ceiling 0.000" not in md and "ceiling 0.000" not in page
    signal = md.split("## Signal of each experiment's ground truth")[1].split("\n## ")[0]
    assert "not resolved" in signal and "low signal" in signal
    lds = md.split("### lds on e")[1].split("\n## ")[0]
    assert "ceiling not resolved" in lds.split("\n\n")[1]  # the ground-truth line above the table
    assert page.count("not resolved") >= 2
    csv = pd.read_csv(out / "l.csv")
    assert csv.ceiling.isna().all()  # no 0.0 in the numbers either


def test_b_resolved_ceiling_is_printed_and_drawn_at_its_value(tmp_path, monkeypatch):
    noise = _ground_truth_noise(signal=1.5, seed=3)  # planted: strong subset effect, r1 about 0.7
    assert noise["reliability_ci_low"] > 0
    rows = [_row("e", "source", "per-seed", 0.7, 1, noise), _row("e", "if_ekfac", "per-seed", 0.5, 2, noise)]
    path = _bundle(tmp_path / "e.json", "e", rows, noise)
    md = (_board(tmp_path, [path]) / "l.md").read_text()
    assert f"ceiling {noise['ceiling']:.3f}" in md and "not resolved" not in md.split("## Signal")[1]
    lines = _dashed_vertical_lines(_captured_figure(monkeypatch, collect([path])))
    assert lines == [(pytest.approx(noise["ceiling"]), "ceiling")]


# -- (c) the Overview ----------------------------------------------------------------------------------
def _overview_bundles(tmp_path, values: dict[str, dict[str, float]]):
    """One bundle per experiment; values[row][experiment] = LDS (rank = its order within the experiment)."""
    experiments = sorted({e for v in values.values() for e in v})
    paths = []
    for e in experiments:
        here = sorted(((v[e], m) for m, v in values.items() if e in v), reverse=True)
        rows = [_row(e, m, "per-seed", val, k + 1) for k, (val, m) in enumerate(here)]
        paths.append(_bundle(tmp_path / f"{e}.json", e, rows))
    return paths


def test_c_a_one_experiment_row_does_not_top_rows_that_ran_on_five(tmp_path):
    rng = np.random.default_rng(1)
    experiments = [f"e{k}" for k in range(5)]
    strength = {"a": 0.7, "b": 0.6, "c": 0.5, "d": 0.4}  # planted order a > b > c > d, small per-experiment noise
    values = {m: {e: s + rng.normal(0, 0.03) for e in experiments} for m, s in strength.items()}
    values["solo"] = {"e0": 0.95}  # ran on one (easy) experiment only, best there
    table = overview_table(collect(_overview_bundles(tmp_path, values)))
    assert table.index[0] != "solo (per-seed)"  # the old board put it first: mean percentile 1.0 over one experiment
    # ground truth for the shared rows: mean over the five experiments of the percentile among a..d
    shared = np.array([[values[m][e] for e in experiments] for m in strength])  # [4, 5]
    pct = 1 - (np.argsort(np.argsort(-shared, axis=0), axis=0)) / 3
    expected = [m for _, m in sorted(zip(-pct.mean(axis=1), strength))]
    ranked = table[table["overview rank"] != ""]
    assert list(ranked.index) == [f"{m} (per-seed)" for m in expected]
    solo = table.loc["solo (per-seed)"]
    assert solo["overview rank"] == "" and solo["mean rank percentile"] == ""
    assert solo["ran on"] == "1 of 5" and solo["e0"] == "0.950 #1★"  # its value is still shown
    assert "e1" in solo["not ranked because"]
    assert (ranked["ran on"] == "5 of 5").all()
    assert list(table.index).index("solo (per-seed)") > len(ranked) - 1  # listed after the ranked rows
    md = (_board(tmp_path, _overview_bundles(tmp_path, values)) / "l.md").read_text()
    overview = md.split("## Overview: LDS by experiment")[1].split("\n## ")[0]
    assert "1 of 5" in overview and "Ranked over 5 of 5 experiments" in overview
    assert any("**ran on**" in line for line in LEGEND) and any("**not ranked because**" in line for line in LEGEND)


def test_c_shared_set_uses_the_most_values_and_ranks_longer_rows_over_it(tmp_path):
    """Two rows ran on all five experiments, six on four of them: ranking over the four shared by all eight
    uses 32 values (five: 10); the two complete rows are ranked over those four, not over their fifth."""
    rng = np.random.default_rng(2)
    four = [f"e{k}" for k in range(4)]
    values = {f"m{k}": {e: 0.8 - 0.05 * k + rng.normal(0, 0.01) for e in four} for k in range(8)}
    for m in ("m6", "m7"):  # the two worst on the shared four are best on the fifth: it must not count
        values[m]["e4"] = 0.99 if m == "m6" else 0.98
    table = overview_table(collect(_overview_bundles(tmp_path, values)))
    assert list(table.index[:8]) == [f"m{k} (per-seed)" for k in range(8)]  # old board: m6 above m5
    assert table.attrs["shared"] == four
    assert table.loc["m6 (per-seed)", "ran on"] == "5 of 5" and table.loc["m0 (per-seed)", "ran on"] == "4 of 5"


def test_c_an_alias_counts_as_its_row_in_the_coverage(tmp_path):
    """dtda_if's seed average is if_ensemble's row on one experiment (identical scores, one row with an alias):
    it ran there, so it is not 'missing' that experiment."""
    p1 = _bundle(tmp_path / "e0.json", "e0", [_row("e0", "if_ensemble", "ensemble", 0.8, 1,
                                                   aliases="dtda_if (seed-averaged)"),
                                              _row("e0", "grad_dot", "per-seed", 0.5, 2)])
    p2 = _bundle(tmp_path / "e1.json", "e1", [_row("e1", "dtda_if", "seed-averaged", 0.7, 1),
                                              _row("e1", "if_ensemble", "ensemble", 0.6, 2),
                                              _row("e1", "grad_dot", "per-seed", 0.4, 3)])
    table = overview_table(collect([p1, p2]))
    assert table.loc["dtda_if (seed-averaged)", "ran on"] == "2 of 2"
    assert table.loc["dtda_if (seed-averaged)", "overview rank"] == "1"


def test_the_page_is_typed_sections_with_stable_keys(tmp_path):
    """write_all hands out board.Section objects in page order, each with a unique key that is not its title;
    the legend is found by its key and carries the LEGEND lines, which both pages print."""
    from tda_core.board import Section, section

    rows = [_row("e1", "m1", "", 0.6, 1), _row("e1", "m2", "", 0.4, 2)]
    page = []
    out = tmp_path / "board"
    write_all([_bundle(tmp_path / "e1.json", "e1", rows)], out / "l.csv", out / "l.md", out / "l.png",
              out / "l.html", sections_out=page)
    assert page and all(isinstance(s, Section) for s in page)
    assert [s.order for s in page] == list(range(len(page)))
    keys = [s.key for s in page]
    assert len(keys) == len(set(keys)) and "overview" in keys and "metric/lds/e1" in keys
    legend = section(page, "legend")
    assert legend.order == 0 and legend.bullets == tuple(LEGEND) and legend.title != legend.key
    assert section(page, "metric/lds/e1").table is not None and section(page, "no such key") is None
    md = (out / "l.md").read_text()
    assert all(f"- {line}" in md for line in LEGEND)


def test_the_report_logs_each_table_under_its_section_key(tmp_path):
    """The leaderboard job's tracking run (mode record) names every table by its section's key, never by a
    title: leaderboard/metric/lds/e1 holds the rows of that section's table."""
    import json

    from tda_core.stages.report import leaderboard
    from tda_core.tracking import record_path

    rows = [_row("e1", "m1", "", 0.6, 1), _row("e1", "m2", "", 0.4, 2)]
    out = tmp_path / "results"
    leaderboard([_bundle(tmp_path / "e1.json", "e1", rows)], {}, [], [], out, {"mode": "record"})
    record = json.loads(record_path(out, "report", "leaderboard").read_text())
    tables = record["tables"]
    assert "leaderboard" in tables and "leaderboard/metric/lds/e1" in tables and "leaderboard/overview" in tables
    assert not any(" " in name for name in tables)  # no title ("Overview: LDS by experiment") names a table
    lds = tables["leaderboard/metric/lds/e1"]
    assert len(lds["data"]) == 2 and any("m1" in map(str, r) for r in lds["data"])
