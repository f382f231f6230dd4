"""Leave-one-out study jobs: retrain without a few points with many seeds, then score each method.

    loo_train     S full-data and K x S leave-one-out models (query measurements only)
    loo_evaluate  every method's predicted vs actual mean shifts (tda_core.metrics.loo), one bundle,
                  and their scatter plot
"""
from __future__ import annotations

import numpy as np

from .. import io
from ..api import Experiment
from ..bundle import provenance
from ..config import block_defaults
from ..errors import ConfigError
from ..metrics.groundtruth import LooTruth
from ..metrics.loo import evaluate_loo
from ..metrics.rows import board_rows, result_rows, row_inputs
from ..scores import method_scores
from ..seeds import LOO_PROTOCOL, loo_seeds
from ..tracking import tracked_run
from ..training import Run, train_models
from .common import CostMeter, measure, result_head

DEFAULTS = block_defaults("loo")  # the schema's (tda_core/schemas/config.schema.yaml)


def loo_points(n_train: int, options: dict) -> np.ndarray:
    if options.get("points"):
        points = np.asarray(options["points"], dtype=int)
        if points.min() < 0 or points.max() >= n_train:
            raise ConfigError(f"loo.points must lie in 0..{n_train - 1}")
        return points
    rng = np.random.default_rng([options["point_seed"], 31337])
    return np.sort(rng.choice(n_train, size=min(options["n_points"], n_train), replace=False))


def loo_train(exp: Experiment, options: dict, out, tracking: dict) -> None:
    opts = {**DEFAULTS, **options}
    s = exp.splits
    points = loo_points(s.n_train, opts)
    seeds = loo_seeds({"loo": opts})  # disjoint from the scoring models' seeds (tda_core/seeds.py)
    vectorize = exp.spec.train.vectorize

    def query_measurements(mask):  # [S, Q]; one vmapped group per removed point (equal batch shapes)
        runs = [Run(seed, mask) for seed in seeds]
        res = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device, vectorize=vectorize,
                           desc=f"{exp.name} loo")
        return np.stack([measure(exp, r.params, s.query_x, s.query_y) for r in res])

    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "loo_train", f"{exp.name}/loo", exp.cfg) as run:
        with CostMeter() as cost:
            full = query_measurements(None)
            loo = []
            for k in points:
                mask = np.ones(s.n_train, dtype=bool)
                mask[k] = False
                loo.append(query_measurements(mask))
        run.summary_update({"models": len(seeds) * (len(points) + 1), **cost.as_dict()})
    io.save_npz(out, {"config_hash": exp.hash, **opts, "retrain_seeds": seeds, "loo_protocol": LOO_PROTOCOL,
                      **cost.as_dict()}, points=points, full=full,
                loo=np.stack(loo))


def loo_evaluate(exp: Experiment, methods: list[str], score_dirs: dict | None, loo_path, out, out_png) -> list[dict]:
    """Every method's predicted vs actual leave-one-out mean shifts (one bundle, one scatter plot).

    `score_dirs` maps a method to its score folder (default: the layout's scores/{method}); the
    query scores there are read.
    """
    from ..plots import loo_scatter

    truth = LooTruth.load(loo_path, exp.hash)
    rows = [row for m in methods
            for row in result_rows(*_loo_result(exp, m, (score_dirs or {}).get(m), truth))]
    results, pairwise = board_rows({"loo_shift": rows})
    settings = {k: truth.meta.get(k) for k in DEFAULTS}  # the loo_train settings: its ground truth
    settings["points"] = [int(k) for k in truth.points]
    io.write_json(out, {**provenance(exp, "loo"), "experiment": exp.name, "loo": settings, "results": results,
                        "pairwise": pairwise})
    loo_scatter(results, exp.name, out_png)
    return results


def _loo_result(exp: Experiment, method: str, score_dir, truth: LooTruth):
    """score_dir: the method's score folder (None: the layout's)."""
    scores = method_scores(exp, method, "query", score_dir)
    result, inputs = result_head(exp, method, "loo_shift", scores), None
    if scores.ok:
        result.update(status="ok", **evaluate_loo(scores, truth))
        inputs = row_inputs("loo_shift", scores, n_models=exp.cfg["seeds"])
    return result, inputs


# -- its `tda` subcommands (tda_core/studies.py: this study's row names them) ----------------------------
def add_commands(stage) -> None:
    """This study's `tda` subcommands, added with the CLI's `stage` helper (tda_core.cli.build_parser)."""
    import logging

    from ..cli import experiment_of, json_arg, score_dirs_of, tracking_of

    log = logging.getLogger("tda")

    def cmd_loo_train(args):
        exp = experiment_of(args)
        loo_train(exp, json_arg(args.options, "--options"), args.out, tracking_of(args, exp))

    def cmd_loo_evaluate(args):
        for res in loo_evaluate(experiment_of(args), args.method, score_dirs_of(args), args.loo, args.out, args.plot):
            if res["status"] == "ok":
                log.info("%s LOO mean shift: r=%.3f (split-half reliability %.3f)", res["method"], res["value"],
                         res["split_half_reliability"])

    sp = stage("loo-train", cmd_loo_train, "leave-one-out study: retrain without a few points, many seeds")
    sp.add_argument("--options", help="the experiment's loo block as JSON")
    sp.add_argument("--out", required=True)

    sp = stage("loo-evaluate", cmd_loo_evaluate,
               "leave-one-out study: every method's predicted vs actual shifts, and their scatter plot")
    sp.add_argument("--method", nargs="+", required=True)
    sp.add_argument("--scores-dir", nargs="+", help="each --method's score folder, in order (default: "
                    "results/{exp}/scores/{method})")
    sp.add_argument("--loo", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--plot", required=True, help="PNG of the scatter plots")
