"""Board rows: variants and model counts, identical scores folded into one row, paired ranks, the
leaderboard's columns, legend and claims section (on a planted datamodel, not on the code's own output)."""

import numpy as np
import pandas as pd

from tda_core import io
from tda_core.leaderboard import write_all
from tda_core.metrics.groundtruth import GroundTruth
from tda_core.metrics.registry import get_metric
from tda_core.metrics.rows import board_rows, result_rows, row_inputs
from tda_core.scores import Scores


def _benchmark(seed=0, n=60, m=40, q=15, seeds=2):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(q, n))  # the planted datamodel: f_j(q) = sum_{i in S_j} w[q, i] + seed noise
    masks = rng.random((m, n)) < 0.5
    signal = masks.astype(float) @ w.T
    subset = signal[:, None, :] + rng.normal(scale=2.0, size=(m, seeds, q))
    full = w.sum(axis=1)[None, :] + rng.normal(scale=2.0, size=(seeds, q))
    per_seed = [w + rng.normal(scale=1.5, size=w.shape) for _ in range(seeds)]
    return GroundTruth(masks=masks, subset=subset, full=full), per_seed, rng


def _rows(metric, methods, gt):
    rows = []
    for name, (arrays, usage) in methods.items():
        scores = Scores.from_arrays(arrays, usage, method=name)
        result = {"experiment": "e", "method": name, "metric": metric, "status": "ok",
                  **get_metric(metric)(scores, gt)}
        rows += result_rows(result, row_inputs(metric, scores, n_models=2))
    return rows


def test_identical_scores_are_one_row_and_variants_are_labelled():
    gt, per_seed, rng = _benchmark()
    methods = {
        "single": (per_seed, "per_seed"),                          # per-seed files
        "pool": ([np.mean(per_seed, axis=0)], "pooled"),           # an ensemble file = the per-seed average
        "samples": (np.stack(per_seed), "per_seed_samples"),       # a d-TDA [R, Q, N] file of the same scores
        "noise": ([rng.normal(size=per_seed[0].shape) for _ in range(2)], "per_seed"),
    }
    rows, pairwise = board_rows({m: _rows(m, methods, gt) for m in ("lds", "dlds_mean")})
    lds = {(r["method"], r["variant"]): r for r in rows if r["metric"] == "lds"}
    # LDS: per-seed (1 model), its seed average (2 models) = the pooled file = the samples' mean
    assert lds[("single", "per-seed")]["models"] == 1
    averaged = lds[("single", "seed-averaged")]
    assert averaged["models"] == 2
    assert set(averaged["aliases"].split(", ")) == {"pool (ensemble)", "samples (seed-averaged)"}
    assert ("pool", "ensemble") not in lds and ("samples", "seed-averaged") not in lds
    # dLDS: the per-seed files and the samples file are the same predicted distribution
    dl = {(r["method"], r["variant"]): r for r in rows if r["metric"] == "dlds_mean"}
    assert {"samples (per-seed)", "pool (ensemble)"} <= set(dl[("single", "per-seed")]["aliases"].split(", "))
    assert "samples (fixed-seed)" in dl[("single", "fixed-seed")]["aliases"]
    # no two rows of one metric carry the same value and replicates
    for metric in ("lds", "dlds_mean"):
        seen = [(r["value"], tuple(r["replicates"][:20])) for r in rows if r["metric"] == metric]
        assert len(seen) == len(set(seen))
    # ranks: the planted signal beats pure noise, significantly (the seed-averaged rows: between
    # per-seed rows with 2 scoring seeds the seed effect has 1 df, t on 1 df, rarely significant)
    assert lds[("noise", "seed-averaged")]["tied_with_best"] is False
    assert lds[("noise", "per-seed")]["rank"] > lds[("single", "seed-averaged")]["rank"]
    assert lds[("single", "seed-averaged")]["rank_ci_low"] <= lds[("single", "seed-averaged")]["rank"]
    assert pairwise["lds"]


def test_leaderboard_columns_legend_and_claims(tmp_path):
    gt, per_seed, rng = _benchmark(seed=1)
    methods = {"if_ekfac": (per_seed, "per_seed"),
               "source": ([s + rng.normal(scale=0.5, size=s.shape) for s in per_seed], "per_seed"),
               "random": ([rng.normal(size=per_seed[0].shape) for _ in range(2)], "per_seed")}
    rows, pairwise = board_rows({"lds": _rows("lds", methods, gt)})
    for r in rows:
        r.update(experiment="e-nc", wall_time_s=1.0, peak_memory_mb=10.0)
    noise = {"lds": {k: rows[0][k] for k in ("reliability", "ceiling") if rows[0].get(k) is not None}}
    path = tmp_path / "metrics.json"
    io.write_json(path, {"experiment": "e-nc", "scenario": "non_converged", "n_subsets": 40, "seeds_per_subset": 2,
                         "noise": noise, "results": rows, "pairwise": pairwise})
    acc = {"dtda": [0.90, 0.91, 0.93, 0.90, 0.92], "fixed": [0.86, 0.88, 0.87, 0.86, 0.89],
           "baseline": [0.87, 0.87, 0.88, 0.85, 0.88]}  # per scoring group; fixed vs random: paired t p ~ 0.8
    rows = [{"method": "random removal" if v == "baseline" else "if_ekfac", "variant": v, "p": 10.0, "status": "ok",
             "test_accuracy_by_group": a, "test_accuracy_mean": float(np.mean(a)), "test_accuracy_std": 0.01,
             "test_loss_mean": 0.3, "test_loss_std": 0.01, "experiment": "e-nc"} for v, a in acc.items()]
    io.write_json(tmp_path / "summary.json", {"experiment": "e-nc", "label_noise": 0.1, "rows": rows})
    out = tmp_path / "lb"
    df = write_all([path], out / "l.csv", out / "l.md", out / "l.png", out / "l.html",
                   study_files={"pruning": [tmp_path / "summary.json"]})
    csv = pd.read_csv(out / "l.csv")
    for col in ("rank", "rank_ci_low", "rank_ci_high", "tied_with_best", "models", "aliases", "variant"):
        assert col in csv.columns
    assert not df.duplicated(["experiment", "metric", "method", "variant"]).any()
    md = (out / "l.md").read_text()
    assert md.index("## How to read this board") < md.index("## lds")
    assert "Holm" in md and "ceiling" in md
    claims = md.split("## Claims of the papers")[1].split("\n## ")[0]
    assert "SOURCE beats IF on non-converged training" in claims
    assert any(v in claims for v in ("holds", "reversed", "not significant"))
    assert "Ensembles beat single models (IF)" in claims
    pruning = [" ".join(line.split()) for line in claims.splitlines() if "d-TDA pruning" in line]
    assert len(pruning) == 2
    assert pruning[0].endswith("| holds |") and "if_ekfac (dtda, unbalanced)" in pruning[0]  # +0.04 per group
    assert pruning[1].endswith("| not significant |") and "random removal" in pruning[1]


def test_diffusion_picture_headers_follow_the_sign_of_the_scores_shown():
    from tda_core.stages.diffusion_pictures import score_header

    assert "raise the loss" in score_header("3 highest", np.array([0.3, 0.2, 0.1]))
    negative = score_header("3 highest", np.array([-0.1, -0.2, -0.3]))  # the 'highest' of all-negative scores
    assert "lower the loss" in negative and "raise" not in negative
    assert "raise" in score_header("3 lowest", np.array([0.2, -0.1, -0.3])) and "lower" in score_header(
        "3 lowest", np.array([0.2, -0.1, -0.3]))
