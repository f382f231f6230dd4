"""The leaderboard shows the evaluation metrics: variant rows, failed rows, the pruning tables, embedded plots."""

import base64

from tda_core import io
from tda_core.leaderboard import write_all
from tda_core.plots import pruning_curve


def _metric(path, **kw):
    io.write_json(path, {"wall_time_s": 1.0, "peak_memory_mb": 10.0, "ceiling": 0.5, **kw})
    return path


def test_leaderboard_with_variants_failures_and_pruning(tmp_path):
    m = [
        _metric(tmp_path / "a.json", experiment="e", method="tracin", metric="dlds_w2", status="ok", value=0.61,
                ci_low=0.5, ci_high=0.7, variants={"fixed-seed": {"value": 0.42, "ci_low": 0.3, "ci_high": 0.5}}),
        _metric(tmp_path / "b.json", experiment="e", method="if_exact", metric="dlds_w2", status="failed",
                reason="TdaError: for small models only"),
        _metric(tmp_path / "c.json", experiment="e", method="tracin", metric="lds", status="ok", value=0.8,
                ci_low=0.7, ci_high=0.9),
        _metric(tmp_path / "d.json", experiment="e", method="grad_dot", metric="dlds_variance", status="ok",
                value=float("nan"), ci_low=float("nan"), ci_high=float("nan")),
        _metric(tmp_path / "loo.json", experiment="e", method="tracin", metric="loo_shift", status="ok", value=0.2,
                ci_low=-0.1, ci_high=0.4, points=[1, 2, 3, 4], n_seeds=64, resolved_fraction=0.045,
                seeds_needed_median=400.48, split_half_reliability=0.5),
    ]
    rows = [
        {"experiment": "e", "method": "full data", "variant": "baseline", "p": 0.0, "status": "ok",
         "test_accuracy_mean": 0.90, "test_accuracy_std": 0.01, "test_loss_mean": 0.3, "test_loss_std": 0.02},
        {"experiment": "e", "method": "random removal", "variant": "baseline", "p": 10.0, "status": "ok",
         "test_accuracy_mean": 0.88, "test_accuracy_std": 0.01, "test_loss_mean": 0.35, "test_loss_std": 0.02,
         "test_accuracy_ci_low": 0.8676, "test_accuracy_ci_high": 0.8924, "test_loss_ci_low": 0.3252,
         "test_loss_ci_high": 0.3748},
        {"experiment": "e", "method": "if_ekfac", "variant": "dtda", "p": 10.0, "status": "ok",
         "test_accuracy_mean": 0.91, "test_accuracy_std": 0.005, "test_loss_mean": 0.28, "test_loss_std": 0.01,
         "test_accuracy_ci_low": 0.9038, "test_accuracy_ci_high": 0.9162, "test_loss_ci_low": 0.2676,
         "test_loss_ci_high": 0.2924},
        {"experiment": "e", "method": "trak", "variant": "dtda", "p": 10.0, "status": "failed", "reason": "oom"},
    ]
    io.write_json(tmp_path / "summary.json", {"experiment": "e", "rows": rows})
    pruning_curve(rows, "e", tmp_path / "pruning.png")
    out = tmp_path / "lb"
    df = write_all(m, out / "l.csv", out / "l.md", out / "l.png", out / "l.html", [tmp_path / "pruning.png"],
                   {"pruning": [tmp_path / "summary.json"]})
    assert set(zip(df.method, df.variant)) == {("tracin", ""), ("tracin", "fixed-seed"), ("if_exact", ""),
                                               ("grad_dot", "")}
    loo_rows = [" ".join(line.split()) for line in (out / "l.md").read_text().splitlines()]
    assert "| e | 4 | 64 | 0.045 | 400.5 | 0.500 |" in loo_rows  # the LOO rule of thumb: seeds needed
    md = (out / "l.md").read_text()
    w2 = md.split("## dlds_w2\n")[1].split("\n## ")[0]
    assert [" ".join(line.split()) for line in w2.splitlines() if "fixed-seed" in line][0].startswith(
        "| | tracin | fixed-seed | | 0.420 [0.300, 0.500]")
    assert "| if_exact" in w2 and "failed" in w2
    assert w2.index("| tracin") < w2.index("| if_exact")  # failed rows last
    assert "n/a" in md.split("## dlds_variance\n")[1].split("\n## ")[0]
    acc = md.split("## pruning: test accuracy")[1].split("##")[0]
    assert "0.9100 [0.9038, 0.9162]" in acc and "0.8800 [0.8676, 0.8924]" in acc
    assert "trak (dtda)" in acc and "failed" in acc
    assert "| full data | 0.9000 |" in " ".join(acc.split())  # no interval (older summary): the mean alone
    assert "0.2800 [0.2676, 0.2924]" in md.split("## pruning: test loss")[1].split("##")[0]
    assert "## Classic vs distributional LDS" in md
    page = (out / "l.html").read_text()
    assert base64.b64encode((tmp_path / "pruning.png").read_bytes()).decode()[:200] in page
    assert "pruning: test loss" in page
