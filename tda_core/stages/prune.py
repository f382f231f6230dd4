"""Pruning benchmark jobs: one retrain per (method, variant, p, seed), the baselines, the summary.

    prune_retrain   remove the p% picked by a method's validation-loss attributions, retrain seed r
    prune_random    the random-removal baseline for (p, seed)
    prune_full      the full-data baseline: the existing full-data model of seed r
    prune_summary   test accuracy / loss mean +- std over seeds, a JSON table and the pruning curve
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .. import io
from ..api import Experiment
from ..metrics.distributional import scores_per_seed
from ..pruning import n_removed, random_removals, removal_benefit, select_removals, variant_scores
from ..tracking import tracked_run
from ..training import Run, train_models
from .common import CostMeter, read_scores

log = logging.getLogger("tda")


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


def retrain_without(exp: Experiment, seed: int, removed: np.ndarray) -> dict:
    s = exp.splits
    mask = np.ones(s.n_train, dtype=bool)
    mask[removed] = False
    with CostMeter() as cost:
        res = train_models(exp.cfg, s, [Run(seed, mask)], exp.build_model, exp.task, exp.device,
                           desc=f"{exp.name} pruned seed {seed}")[0]
    return {**heldout_quality(exp, res.params), "final_train_loss": res.final_loss,
            "n_removed": int(len(removed)), "removed": removed.tolist(),
            "removed_corrupted_fraction": float(s.corrupted[removed].mean()) if len(removed) else 0.0,
            **cost.as_dict()}


def _write(exp, out, result, tracking, name):
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "prune", name,
                     {k: v for k, v in result.items() if k != "removed"}) as run:
        run.summary_update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    io.write_json(out, result)
    return result


def prune_retrain(exp: Experiment, method: str, variant: str, percent: float, seed: int, score_jsons: list,
                  out, tracking: dict) -> dict:
    base = {"config_hash": exp.hash, "experiment": exp.name, "method": method, "variant": variant,
            "p": percent, "seed": seed}
    _, failed_reason, scores = read_scores(exp, score_jsons)
    if failed_reason is not None:  # the attribution failed: a failed row, never a silently missing one
        return _write(exp, out, {**base, "status": "failed", "reason": failed_reason},
                      tracking, f"{exp.name}/prune/{method}/{variant}/p{percent:g}/seed{seed}")
    per_seed = scores_per_seed(scores)
    benefit = removal_benefit(variant_scores(per_seed, variant, seed))
    removed = select_removals(benefit, n_removed(percent, exp.splits.n_train))
    result = {**base, "status": "ok", **retrain_without(exp, seed, removed)}
    log.info("%s %s p=%g seed %d: test accuracy %.4f", method, variant, percent, seed, result["test_accuracy"])
    return _write(exp, out, result, tracking, f"{exp.name}/prune/{method}/{variant}/p{percent:g}/seed{seed}")


def prune_random(exp: Experiment, percent: float, seed: int, out, tracking: dict) -> dict:
    n = exp.splits.n_train
    removed = random_removals(n, n_removed(percent, n), seed, percent)
    result = {"config_hash": exp.hash, "experiment": exp.name, "method": "random removal", "variant": "baseline",
              "p": percent, "seed": seed, "status": "ok", **retrain_without(exp, seed, removed)}
    return _write(exp, out, result, tracking, f"{exp.name}/prune/random/p{percent:g}/seed{seed}")


def prune_full(exp: Experiment, seed: int, model_path, out, tracking: dict) -> dict:
    params = io.load_torch(model_path, expect_hash=exp.hash)["checkpoints"][-1]["params"]
    result = {"config_hash": exp.hash, "experiment": exp.name, "method": "full data", "variant": "baseline",
              "p": 0.0, "seed": seed, "status": "ok", "n_removed": 0, **heldout_quality(exp, params)}
    return _write(exp, out, result, tracking, f"{exp.name}/prune/full/seed{seed}")


# -- summary ---------------------------------------------------------------------------------------
_QUALITY = ("test_accuracy", "test_loss", "val_loss", "removed_corrupted_fraction")


def summarize(exp_name: str, job_jsons: list) -> dict:
    """Group the per-seed jobs by (method, variant, p): mean and std over seeds of each quality."""
    groups: dict[tuple, list[dict]] = {}
    for p in job_jsons:
        r = io.read_json(p)
        groups.setdefault((r["method"], r["variant"], float(r["p"])), []).append(r)
    rows = []
    for (method, variant, percent), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        ok = [r for r in runs if r.get("status") == "ok"]
        row = {"experiment": exp_name, "method": method, "variant": variant, "p": percent,
               "n_seeds": len(ok), "status": "ok" if len(ok) == len(runs) else "failed"}
        if row["status"] != "ok":
            row["reason"] = next(r.get("reason", "unknown") for r in runs if r.get("status") != "ok")
        for key in _QUALITY:
            vals = np.array([r[key] for r in ok if key in r], dtype=float)
            row[f"{key}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        row["wall_time_s"] = float(np.mean([r.get("wall_time_s", 0.0) for r in ok])) if ok else float("nan")
        rows.append(row)
    return {"experiment": exp_name, "rows": rows}


def prune_summary(exp: Experiment, job_jsons: list, out_json, out_png) -> dict:
    from ..plots import pruning_curve

    summary = {"config_hash": exp.hash, **summarize(exp.name, job_jsons)}
    io.write_json(out_json, summary)
    pruning_curve(summary["rows"], exp.name, out_png)
    return summary
