"""Pruning benchmark jobs: one job per (method, variant, p) retrains all retrain seeds; baselines; summary.

    prune_retrain   remove the p% picked by a method's validation-loss attributions, retrain every retrain seed
    prune_random    the random-removal baseline for p, every retrain seed
    prune_full      the full-data baseline, retrained on the same retrain seeds (not the scoring models)
    prune_summary   test accuracy / loss per (method, variant, p): mean, std and a 95% t-interval over
                    the retrain seeds, a JSON table and the pruning curve

Out of sample and step-matched (tda_core.pruning): the scores come from the scoring models (seeds
0..R-1); every retrain uses the fresh `pruning.retrain_seeds` and trains for the full-data run's
step count. A job's runs share one subset size, hence one batch shape, so they train together under
vmap when `train.vectorize` is on (one process instead of S: a process start alone costs seconds).
Scoring groups (tda_core.pruning): the R scoring models form G disjoint groups of `ensemble_size`, the
retrain seeds G disjoint groups; every run records its group, and the summary keeps per-group means
(the unit of replication of the claims' tests). Every run records the class coverage of its set.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .. import io
from ..api import Experiment
from ..pruning import (class_coverage, n_removed, parse_variant_token, random_removals, removal_benefit,
                       retrain_groups, scoring_groups, select, variant_scores)
from ..scores import method_scores
from ..tracking import tracked_run
from ..training import Run, full_data_steps, train_models
from .common import CostMeter

log = logging.getLogger("tda")

CI_LEVEL = 0.95


def heldout_quality(exp: Experiment, params: dict) -> dict:
    """Test accuracy, mean test loss and mean validation loss (cross-entropy) of one model."""
    model = exp.build_model(0).to(exp.device)
    call = exp.caller(model, {k: v.to(exp.device) for k, v in params.items()})
    s = exp.splits
    out = {}
    with torch.no_grad():
        for split, x, y in (("test", s.test_x, s.test_y), ("val", s.val_x, s.val_y)):
            logits = call(x.to(exp.device)).float().cpu()
            out[f"{split}_loss"] = float(F.cross_entropy(logits, y).item())
            out[f"{split}_accuracy"] = float((logits.argmax(-1) == y).float().mean())
    return out


def retrain_without(exp: Experiment, seeds: list[int], removed: list[np.ndarray], desc: str) -> tuple[list[dict], dict]:
    """Retrain seed seeds[k] without removed[k], each for the full-data run's step count; per-run rows, cost."""
    s = exp.splits
    steps = full_data_steps(exp.cfg, s.n_train)
    runs = []
    for seed, rem in zip(seeds, removed):
        mask = np.ones(s.n_train, dtype=bool)
        mask[rem] = False
        runs.append(Run(int(seed), mask, total_steps=steps))
    with CostMeter() as cost:
        results = train_models(exp.cfg, s, runs, exp.build_model, exp.task, exp.device,
                               vectorize=exp.spec.train.vectorize, desc=desc)
    rows = []
    labels = s.train_y.cpu().numpy() if hasattr(s.train_y, "cpu") else np.asarray(s.train_y)
    n_classes = int(labels.max()) + 1
    for run, rem, res in zip(runs, removed, results):
        rows.append({"seed": run.seed, **heldout_quality(exp, res.params), "final_train_loss": res.final_loss,
                     "total_steps": res.plan.total_steps, "n_removed": int(len(rem)), "removed": rem.tolist(),
                     "removed_corrupted_fraction": float(s.corrupted[rem].mean()) if len(rem) else 0.0,
                     **class_coverage(rem, labels, n_classes), "wall_time_s": cost.wall_time_s / len(runs)})
    return rows, cost.as_dict()


def _head(exp: Experiment, method: str, variant: str, percent: float, seeds: list[int], ensemble_size: int,
          selection: str = "unbalanced") -> dict:
    groups = scoring_groups(exp.cfg["seeds"], ensemble_size)
    return {"config_hash": exp.hash, "experiment": exp.name, "method": method, "variant": variant,
            "selection": selection, "p": percent, "scoring_seeds": list(range(exp.cfg["seeds"])),
            "scoring_groups": groups, "retrain_groups": retrain_groups([int(s) for s in seeds], len(groups)),
            "retrain_seeds": [int(s) for s in seeds], "full_data_steps": full_data_steps(exp.cfg, exp.splits.n_train)}


def _group_of(head: dict) -> dict:
    """retrain seed -> its group index."""
    return {s: g for g, seeds in enumerate(head["retrain_groups"]) for s in seeds}


def _write(exp, out, result, tracking, name):
    runs = result.get("runs", [])
    summary = {k: v for k, v in result.items() if isinstance(v, (int, float, str))}
    for key in ("test_accuracy", "test_loss"):
        if runs:
            summary[f"{key}_mean"] = float(np.mean([r[key] for r in runs]))
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "prune", name,
                     {k: v for k, v in result.items() if k != "runs"}) as run:
        run.summary_update(summary)
    io.write_json(out, result)
    return result


def _finish(exp, head, rows, cost, out, tracking, name):
    group = _group_of(head)
    for row in rows:
        row["group"] = group[row["seed"]]
    result = {**head, "status": "ok", "runs": rows, **cost}
    log.info("%s %s p=%g: test accuracy %s over retrain seeds %s", head["method"], head["variant"], head["p"],
             np.round([r["test_accuracy"] for r in rows], 4).tolist(), head["retrain_seeds"])
    return _write(exp, out, result, tracking, name)


def prune_retrain(exp: Experiment, method: str, variant: str, percent: float, seeds: list[int], score_dir,
                  out, tracking: dict, ensemble_size: int = 2) -> dict:
    """Every retrain seed without the method's picks, read from the validation-target scores in
    `score_dir` (None: the layout's scores/{method}), per scoring group (tda_core.pruning): each
    scoring model's own set (fixed) or the group's averaged scores' set (dtda), retrained with the
    group's retrain seeds. `variant` is a job token: 'dtda', 'fixed-balanced', ..."""
    base, selection = parse_variant_token(variant)
    head = _head(exp, method, variant, percent, seeds, ensemble_size, selection)
    name = f"{exp.name}/prune/{method}/{variant}/p{percent:g}"
    scores = method_scores(exp, method, "val", score_dir)
    if not scores.ok:  # the attribution failed: a failed row, never a silently missing one
        return _write(exp, out, {**head, "status": "failed", "reason": scores.failed_reason}, tracking, name)
    per_seed = scores.seed_arrays()
    k = n_removed(percent, exp.splits.n_train)
    labels = exp.splits.train_y.cpu().numpy()
    plan = []  # (retrain seed, scoring seed or None, removed set)
    for group, retrain in zip(head["scoring_groups"], head["retrain_groups"]):
        pickers = group if base == "fixed" else [None]
        for r in pickers:
            chosen = select(removal_benefit(variant_scores(per_seed, base, r if r is not None else group[0], group)),
                            k, selection, labels)
            plan += [(seed, r, chosen) for seed in retrain]
    rows, cost = retrain_without(exp, [p[0] for p in plan], [p[2] for p in plan],
                                 f"{exp.name} {method} {variant} p{percent:g}")
    for row, (_, r, _) in zip(rows, plan):
        row["scoring_seed"] = r  # fixed: whose model's scores picked this run's set; dtda: None (its group)
    return _finish(exp, head, rows, cost, out, tracking, name)


def prune_random(exp: Experiment, percent: float, seeds: list[int], out, tracking: dict, ensemble_size: int = 2) -> dict:
    n = exp.splits.n_train
    removed = [random_removals(n, n_removed(percent, n), int(s), percent) for s in seeds]
    rows, cost = retrain_without(exp, seeds, removed, f"{exp.name} random p{percent:g}")
    head = _head(exp, "random removal", "baseline", percent, seeds, ensemble_size)
    return _finish(exp, head, rows, cost, out, tracking, f"{exp.name}/prune/random/p{percent:g}")


def prune_full(exp: Experiment, seeds: list[int], out, tracking: dict, ensemble_size: int = 2) -> dict:
    """The full-data baseline retrained on the retrain seeds (the scoring models are in-sample)."""
    rows, cost = retrain_without(exp, seeds, [np.zeros(0, dtype=int) for _ in seeds], f"{exp.name} full data")
    head = _head(exp, "full data", "baseline", 0.0, seeds, ensemble_size)
    return _finish(exp, head, rows, cost, out, tracking, f"{exp.name}/prune/full")


# -- summary ---------------------------------------------------------------------------------------
_QUALITY = ("test_accuracy", "test_loss", "val_loss", "removed_corrupted_fraction")


def t_interval(values, level: float = CI_LEVEL) -> tuple[float, float]:
    """Student-t interval for the mean over seeds: mean -+ t_{(1+level)/2, n-1} * std(ddof=1) / sqrt(n).

    The retrain seeds are i.i.d. draws of training randomness, few in number (5 by default), so the
    t quantile (not the normal one, nor a bootstrap that cannot resolve 5 points) sizes the interval.
    nan for fewer than two values."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def summarize(exp_name: str, job_jsons: list) -> dict:
    """Group the jobs by (method, variant, p): mean, std and 95% t-interval over the retrain seeds."""
    groups: dict[tuple, list[dict]] = {}
    for p in job_jsons:
        r = io.read_json(p)
        groups.setdefault((r["method"], r["variant"], float(r["p"])), []).append(r)
    rows = []
    scoring, retrain = set(), set()
    for (method, variant, percent), jobs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        for j in jobs:
            scoring.update(j.get("scoring_seeds", []))
            retrain.update(j.get("retrain_seeds", []))
        ok = sorted((run for j in jobs if j.get("status") == "ok" for run in j.get("runs", [])), key=lambda r: r["seed"])
        failed = [j for j in jobs if j.get("status") != "ok"]
        row = {"experiment": exp_name, "method": method, "variant": variant, "p": percent,
               "n_seeds": len({run["seed"] for run in ok}), "n_runs": len(ok),
               "retrain_seeds": sorted({run["seed"] for run in ok}),
               "status": "failed" if failed or not ok else "ok", "ci_level": CI_LEVEL}
        if failed:
            row["reason"] = failed[0].get("reason", "unknown")
        for key in _QUALITY:
            vals = np.array([r[key] for r in ok if key in r], dtype=float)
            row[f"{key}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = t_interval(vals)
        # per retrain seed, in seed order: every set is retrained on the same seeds, so the leaderboard's
        # claims compare sets with paired tests
        row["test_accuracy_values"] = [float(r["test_accuracy"]) for r in ok if "test_accuracy" in r]
        # the unit of replication of the claims' tests: one mean per scoring group (tda_core.pruning)
        by_group: dict[int, list[float]] = {}
        for r in ok:
            by_group.setdefault(int(r.get("group", 0)), []).append(float(r["test_accuracy"]))
        row["test_accuracy_by_group"] = [float(np.mean(by_group[g])) for g in sorted(by_group)]
        row["selection"] = next((j.get("selection") for j in jobs if j.get("selection")), "unbalanced")
        row["base_variant"] = variant.split("-")[0]
        # class coverage of the pruned sets: the worst run, and the mean removed count per class
        cover = [r for r in ok if "min_class_fraction_kept" in r]
        if cover:
            worst = min(cover, key=lambda r: r["min_class_fraction_kept"])
            row["min_class_fraction_kept"] = float(worst["min_class_fraction_kept"])
            row["least_kept_class"] = int(worst["least_kept_class"])
            row["removed_per_class_mean"] = np.mean([r["removed_per_class"] for r in cover], axis=0).round(2).tolist()
        steps = {r["total_steps"] for r in ok if "total_steps" in r}
        if steps:
            row["total_steps"] = steps.pop() if len(steps) == 1 else sorted(steps)
        row["wall_time_s"] = float(np.mean([r.get("wall_time_s", 0.0) for r in ok])) if ok else float("nan")
        rows.append(row)
    groups = next((io.read_json(p).get("scoring_groups") for p in job_jsons), None)
    return {"experiment": exp_name, "scoring_seeds": sorted(scoring), "retrain_seeds": sorted(retrain),
            "scoring_groups": groups,
            "ci": f"{CI_LEVEL:.0%} Student-t interval over retrain seeds", "rows": rows}


def prune_summary(exp: Experiment, job_jsons: list, out_json, out_png) -> dict:
    from ..plots import pruning_curve

    summary = {"config_hash": exp.hash, "label_noise": exp.spec.dataset["label_noise"],
               **summarize(exp.name, job_jsons)}
    io.write_json(out_json, summary)
    pruning_curve(summary["rows"], exp.name, out_png)
    return summary


# -- its `tda` subcommands (tda_core/studies.py: this study's row names them) ----------------------------
def add_commands(stage) -> None:
    """This study's `tda` subcommands, added with the CLI's `stage` helper (tda_core.cli.build_parser)."""
    from ..cli import experiment_of, tracking_of
    from ..errors import ConfigError
    from ..pruning import VARIANT_TOKENS

    def cmd_prune(args):
        exp = experiment_of(args)
        prune_retrain(exp, args.method, args.variant, args.p, _retrain_seeds(args), args.scores_dir, args.out,
                      tracking_of(args, exp), ensemble_size=args.ensemble_size)

    def _retrain_seeds(args) -> list[int]:
        """--retrain-seeds, checked against the scoring seeds 0..R-1 of the experiment (out of sample)."""
        from ..pruning import retrain_seeds

        return retrain_seeds(experiment_of(args).cfg["seeds"], args.retrain_seeds)

    def cmd_prune_baseline(args):
        exp = experiment_of(args)
        tracking, seeds = tracking_of(args, exp), _retrain_seeds(args)
        if args.kind == "random":
            if args.p is None:
                raise ConfigError("prune-baseline random needs --p")
            prune_random(exp, args.p, seeds, args.out, tracking, ensemble_size=args.ensemble_size)
        else:
            prune_full(exp, seeds, args.out, tracking, ensemble_size=args.ensemble_size)

    def cmd_prune_summary(args):
        prune_summary(experiment_of(args), args.runs, args.out, args.plot)

    sp = stage("prune", cmd_prune, "pruning: remove the p%% a method picks, retrain every retrain seed")
    sp.add_argument("--method", required=True)
    sp.add_argument("--variant", required=True, choices=VARIANT_TOKENS,
                    help="variant, with -balanced for the class-balanced selection (tda_core/pruning.py)")
    sp.add_argument("--p", type=float, required=True, help="percent of the training set removed")
    sp.add_argument("--retrain-seeds", type=int, nargs="+", required=True,
                    help="fresh seeds to retrain with (disjoint from the scoring seeds 0..R-1)")
    sp.add_argument("--scores-dir", help="the method's score folder holding its validation-target scores "
                    "(default: results/{exp}/scores/{method}, tda_core/layout.py)")
    sp.add_argument("--ensemble-size", type=int, default=2, help="scoring models per scoring group (pruning.ensemble_size)")
    sp.add_argument("--out", required=True)

    sp = stage("prune-baseline", cmd_prune_baseline, "pruning baselines: random removal, full data")
    sp.add_argument("--kind", required=True, choices=["random", "full"])
    sp.add_argument("--p", type=float)
    sp.add_argument("--retrain-seeds", type=int, nargs="+", required=True,
                    help="fresh seeds to retrain with (full: the full-data baseline is retrained on them too)")
    sp.add_argument("--ensemble-size", type=int, default=2, help="scoring models per scoring group (pruning.ensemble_size)")
    sp.add_argument("--out", required=True)

    sp = stage("prune-summary", cmd_prune_summary, "pruning: mean, std and 95%% CI table, the pruning curve")
    sp.add_argument("--runs", nargs="+", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--plot", required=True)
