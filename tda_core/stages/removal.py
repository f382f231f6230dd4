"""Top-k removal jobs (tda_core.removal): one job per (method, k), per k for random removal, one for the
full-data baseline, each retraining every (sampled query, retrain seed) run; and the summary.

    removal_retrain   remove each sampled query's top k of a method's query scores, retrain every seed
    removal_random    the same with k random examples per query (the baseline)
    removal_full      the full-data models retrained on the same seeds (every drop is paired with them)
    removal_summary   one bundle (results/{exp}/removal/results.json: topk_drop_k{k} and brittleness rows
                      per method, ranked like every metric) and the removal curve

A job's runs all train on N - k examples for the same step count, hence share one batch shape and
train together under vmap (`train.vectorize`), as the ground-truth shards do.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from .. import io
from ..errors import ArtifactError
from ..api import Experiment
from ..bundle import provenance
from ..metrics.rows import board_rows, result_rows, row_inputs
from ..removal import RANDOM_BASELINE, brittleness, mean_drop, random_set, removal_scores, sample_queries, top_k
from ..tasks import margin
from ..tracking import tracked_run
from ..training import Run, full_data_steps, train_models
from ..config import block_defaults
from ..scores import method_scores
from .common import CostMeter, measure, result_head

log = logging.getLogger("tda")

NO_TRACKING = {"mode": "none"}


def _options(options: dict) -> dict:
    return {**block_defaults("removal"), **options}  # the schema's defaults, for library callers


def _queries(exp: Experiment, opts: dict) -> np.ndarray:
    return sample_queries(len(exp.splits.query_y), opts["queries"], opts["query_seed"])


def _is_classification(exp: Experiment) -> bool:
    return exp.spec.kind == "classification"


def retrain_and_measure(exp: Experiment, seeds: list[int], removed: list[np.ndarray], queries: np.ndarray,
                        steps: str, desc: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Retrain seeds[s] without removed[j] for every (j, s); f(z_queries[j]) and its margin (classification)
    of each run, [S, Q], and the cost. removed[j] is query j's set (an empty set: the full-data model)."""
    s = exp.splits
    total_steps = full_data_steps(exp.cfg, s.n_train) if steps == "full_data" else None
    runs, cells = [], []
    for j, rem in enumerate(removed):
        mask = np.ones(s.n_train, dtype=bool)
        mask[rem] = False
        for i, seed in enumerate(seeds):
            runs.append(Run(int(seed), mask, total_steps=total_steps))
            cells.append((i, j))
    with CostMeter() as cost:
        results = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device,
                               vectorize=exp.spec.train.vectorize, desc=desc)
    f = np.full((len(seeds), len(removed)), np.nan)
    m = np.full_like(f, np.nan) if _is_classification(exp) else None
    x, y = s.query_x[queries], s.query_y[queries]
    for (i, j), res in zip(cells, results):
        f[i, j] = measure(exp, res.params, x[j:j + 1], y[j:j + 1])[0]
        if m is not None:
            m[i, j] = _margin(exp, res.params, x[j:j + 1], y[j:j + 1])[0]
    return f, m, cost.as_dict()


def _margin(exp: Experiment, params: dict, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Logit of the label minus log-sum-exp of the others: < 0 exactly when the prediction is not the label."""
    model = exp.build_model(0).to(exp.device)
    call = exp.caller(model, {k: v.to(exp.device) for k, v in params.items()})
    with torch.no_grad():
        return margin(call(x.to(exp.device)).float(), y.to(exp.device)).double().cpu().numpy()


def _head(exp, method, k, opts, seeds, queries) -> dict:
    return {"config_hash": exp.hash, "experiment": exp.name, "method": method, "k": int(k),
            "queries": queries.tolist(), "retrain_seeds": [int(s) for s in seeds], "removal": opts,
            "total_steps": full_data_steps(exp.cfg, exp.splits.n_train) if opts["steps"] == "full_data" else None}


def _finish(exp, head, removed, seeds, queries, opts, out, desc, tracking) -> dict:
    f, m, cost = retrain_and_measure(exp, seeds, removed, queries, opts["steps"], desc)
    result = {**head, "status": "ok", "measurement": f.tolist(), "margin": None if m is None else m.tolist(),
              "removed": [np.asarray(r).tolist() for r in removed], "retrain": cost}
    log.info("%s: mean f over %d queries x %d seeds: %.4f", desc, len(queries), len(seeds), float(f.mean()))
    return _write(exp, out, result, tracking)


def _write(exp, out, result: dict, tracking: dict) -> dict:
    """The job file, and its W&B run (job type removal): the settings and the mean measurement."""
    name = f"{exp.name}/removal/{result['method']}/k{result['k']}"
    head = {k: v for k, v in result.items() if k not in ("measurement", "margin", "removed", "retrain")}
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "removal", name, head) as run:
        summary = {"status": result["status"]}
        if result.get("measurement") is not None:
            summary.update(mean_measurement=float(np.mean(result["measurement"])), **result["retrain"])
        run.summary_update(summary)
    io.write_json(out, result)
    return result


def removal_retrain(exp: Experiment, method: str, k: int, options: dict, seeds: list[int], scores_dir, out,
                    tracking: dict = NO_TRACKING) -> dict:
    """Every sampled query without its top k of the method's query scores (averaged over scoring seeds),
    read from `scores_dir` (None: the layout's scores/{method})."""
    opts = _options(options)
    queries = _queries(exp, opts)
    head = _head(exp, method, k, opts, seeds, queries)
    scores = method_scores(exp, method, "query", scores_dir)
    result = result_head(exp, method, f"topk_drop_k{k}", scores)
    head.update(attribution={k2: result[k2] for k2 in ("wall_time_s", "peak_memory_mb")})
    if not scores.ok:  # the attribution failed: a failed job, never a silently missing one
        return _write(exp, out, {**head, "status": "failed", "reason": scores.failed_reason}, tracking)
    variant, models, _ = row_inputs("topk_drop", scores, n_models=exp.cfg["seeds"])[""]
    head.update(variant=variant, models=models)
    tau = removal_scores(scores.seed_arrays())[queries]
    removed = [top_k(row, k) for row in tau]
    return _finish(exp, head, removed, seeds, queries, opts, out, f"{exp.name} removal {method} k={k}", tracking)


def removal_random(exp: Experiment, k: int, options: dict, seeds: list[int], out,
                   tracking: dict = NO_TRACKING) -> dict:
    opts = _options(options)
    queries = _queries(exp, opts)
    head = {**_head(exp, RANDOM_BASELINE, k, opts, seeds, queries), "variant": "baseline", "models": None}
    removed = [random_set(exp.splits.n_train, k, int(q)) for q in queries]
    return _finish(exp, head, removed, seeds, queries, opts, out, f"{exp.name} removal random k={k}", tracking)


def removal_full(exp: Experiment, options: dict, seeds: list[int], out, tracking: dict = NO_TRACKING) -> dict:
    """The full-data models on the removal seeds: one run per seed, measured on every sampled query."""
    opts = _options(options)
    queries = _queries(exp, opts)
    head = _head(exp, "full data", 0, opts, seeds, queries)
    total_steps = full_data_steps(exp.cfg, exp.splits.n_train) if opts["steps"] == "full_data" else None
    runs = [Run(int(s), None, total_steps=total_steps) for s in seeds]
    s = exp.splits
    with CostMeter() as cost:
        results = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device,
                               vectorize=exp.spec.train.vectorize, desc=f"{exp.name} removal full")
    x, y = s.query_x[queries], s.query_y[queries]
    f = np.stack([measure(exp, r.params, x, y) for r in results])
    m = np.stack([_margin(exp, r.params, x, y) for r in results]) if _is_classification(exp) else None
    result = {**head, "status": "ok", "measurement": f.tolist(), "margin": None if m is None else m.tolist(),
              "retrain": cost.as_dict()}
    return _write(exp, out, result, tracking)


# -- summary ---------------------------------------------------------------------------------------
def removal_summary(exp: Experiment, full_json, job_jsons: list, out, out_png) -> list[dict]:
    """One bundle: a topk_drop_k{k} row per (method, k) and a brittleness row per method, ranked within
    each metric by the paired bootstrap (shared query and seed draws); and the curve over k."""
    from ..plots import removal_curve

    full = io.read_json(full_json)
    io.check_hash(full_json, full.get("config_hash"), exp.hash)
    f_full = np.asarray(full["measurement"])
    m_full = None if full.get("margin") is None else np.asarray(full["margin"])
    jobs: dict[str, dict[int, dict]] = {}
    for p in job_jsons:
        j = io.read_json(p)
        io.check_hash(p, j.get("config_hash"), exp.hash)
        if j["queries"] != full["queries"] or j["retrain_seeds"] != full["retrain_seeds"]:
            raise ArtifactError(f"{p}: other queries or retrain seeds than {full_json}; rerun the removal jobs")
        jobs.setdefault(j["method"], {})[int(j["k"])] = j
    per_metric: dict[str, list] = {}
    for method, by_k in jobs.items():
        for k, j in sorted(by_k.items()):
            per_metric.setdefault(f"topk_drop_k{k}", []).extend(result_rows(*_drop_result(exp, j, f_full)))
        if m_full is not None:
            per_metric.setdefault("brittleness", []).extend(result_rows(*_brittleness_result(exp, by_k, m_full)))
    results, pairwise = board_rows(per_metric)
    ks = sorted({k for by_k in jobs.values() for k in by_k})
    bundle = {**provenance(exp, "removal"), "experiment": exp.name, "kind": exp.spec.kind,
              "seeds": exp.cfg["seeds"], "removal": {**full["removal"], "ks": ks, "queries": full["queries"],
                                                     "retrain_seeds": full["retrain_seeds"]},
              "results": results, "pairwise": pairwise}
    io.write_json(out, bundle)
    removal_curve(results, exp.name, out_png)
    return results


def _row_head(exp, j, metric) -> dict:
    att = j.get("attribution") or {}
    return {"config_hash": exp.hash, "experiment": exp.name, "method": j["method"], "metric": metric,
            "wall_time_s": att.get("wall_time_s"), "peak_memory_mb": att.get("peak_memory_mb")}


def _inputs(j, arrays) -> dict:
    """The row's label and the arrays that decide its numbers (equal arrays: one row with aliases)."""
    return {"": (j.get("variant", ""), j.get("models"), arrays)}


def _drop_result(exp, j, f_full):
    head = {**_row_head(exp, j, f"topk_drop_k{j['k']}"), "k": j["k"]}
    if j["status"] != "ok":
        return {**head, "status": "failed", "reason": j.get("reason", "unknown")}, None
    result = {**head, "status": "ok", **mean_drop(f_full, np.asarray(j["measurement"])),
              "n_queries": len(j["queries"]), "n_seeds": len(j["retrain_seeds"])}
    return result, _inputs(j, [np.asarray(j["removed"], dtype=np.float64)])


def _brittleness_result(exp, by_k, m_full):
    first = next(iter(by_k.values()))
    head = _row_head(exp, first, "brittleness")
    failed = [j for j in by_k.values() if j["status"] != "ok"]
    if failed:
        return {**head, "status": "failed", "reason": failed[0].get("reason", "unknown")}, None
    stats = brittleness(m_full, {k: np.asarray(j["margin"]) for k, j in by_k.items()})
    note = (f"median censored: most queries do not flip within k <= {stats['ks'][-1]}" if stats["censored"]
            else "")
    result = {**head, "status": "ok", **stats, "note": note}
    if stats["value"] is None:
        result["note"] = "no sampled query is classified correctly by the full-data models"
    arrays = [np.asarray(by_k[k]["removed"], dtype=np.float64) for k in sorted(by_k)]
    return result, _inputs(first, arrays)


# -- its `tda` subcommands (tda_core/studies.py: this study's row names them) ----------------------------
def add_commands(stage) -> None:
    """This study's `tda` subcommands, added with the CLI's `stage` helper (tda_core.cli.build_parser)."""
    from ..cli import experiment_of, json_arg, tracking_of
    from ..errors import ConfigError

    def cmd_removal(args):
        from ..removal import k_values, retrain_seeds

        exp, options = experiment_of(args), json_arg(args.options, "--options")
        seeds, tracking = retrain_seeds(exp.cfg["seeds"], args.retrain_seeds), tracking_of(args, exp)
        if args.kind == "full":
            removal_full(exp, options, seeds, args.out, tracking)
            return
        if args.k is None or (args.kind == "method" and not args.method):
            raise ConfigError("removal --kind method needs --method and --k; --kind random needs --k")
        k = k_values([args.k], exp.splits.n_train)[0]
        if args.kind == "random":
            removal_random(exp, k, options, seeds, args.out, tracking)
        else:
            removal_retrain(exp, args.method, k, options, seeds, args.scores_dir, args.out, tracking)

    def cmd_removal_summary(args):
        removal_summary(experiment_of(args), args.full, args.runs, args.out, args.plot)

    sp = stage("removal", cmd_removal, "top-k removal: retrain every (sampled query, seed) without a method's "
               "top k, k random examples, or nothing (the full-data baseline)")
    sp.add_argument("--kind", required=True, choices=["method", "random", "full"])
    sp.add_argument("--method")
    sp.add_argument("--k", type=float, help="examples removed per query (a count, or a fraction in (0, 1))")
    sp.add_argument("--retrain-seeds", type=int, nargs="+", required=True,
                    help="fresh seeds (disjoint from the scoring seeds 0..R-1 and from pruning's)")
    sp.add_argument("--options", help="the removal settings as JSON: queries, query_seed, steps")
    sp.add_argument("--scores-dir", help="the method's score folder (default: the layout's scores/{method})")
    sp.add_argument("--out", required=True)

    sp = stage("removal-summary", cmd_removal_summary, "top-k removal: one bundle (drop per k, brittleness), the curve")
    sp.add_argument("--full", required=True, help="the full-data baseline job")
    sp.add_argument("--runs", nargs="+", required=True, help="the method and random-removal jobs")
    sp.add_argument("--out", required=True)
    sp.add_argument("--plot", required=True)
