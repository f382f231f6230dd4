"""Stage 5: score the methods' attributions with the metrics against the ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io
from ..api import Experiment
from ..errors import ArtifactError
from ..metrics.registry import get_metric, metric_target
from ..targets import score_stem
from ..tracking import tracked_run
from .common import load_method_scores


def compute(exp: Experiment, metric: str, method: str, score_jsons: list, groundtruth_path) -> dict:
    """One metric for one method (no side effects); a failed attribution gives a failed result."""
    result, sidecars, scores = load_method_scores(exp, method, metric, score_jsons)
    if scores is None:
        return result
    groundtruth, gt_meta = io.load_npz(groundtruth_path, expect_hash=exp.hash) if groundtruth_path else ({}, {})
    groundtruth.update(target_groundtruth(exp, metric_target(metric), sidecars))
    result.update(status="ok", **get_metric(metric)(scores, groundtruth))
    if metric_target(metric) == "query" and groundtruth_path:  # metrics against the subset models
        result["groundtruth_steps"] = gt_meta.get("groundtruth_steps", "same_epochs")
    return result


def evaluate(exp: Experiment, metric: str, method: str, score_jsons: list, groundtruth_path, out,
             tracking: dict) -> dict:
    """One metric, written to its own file (library use and single-metric checks)."""
    result = compute(exp, metric, method, score_jsons, groundtruth_path)
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "evaluate", f"{exp.name}/{metric}/{method}",
                     {"experiment": exp.name, "method": method, "metric": metric}) as run:
        run.summary_update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    io.write_json(out, result)
    return result


def evaluate_experiment(exp: Experiment, metrics: list[str], methods: list[str], score_jsons: list,
                        groundtruth_path, out, tracking: dict) -> list[dict]:
    """Every metric of every method of one experiment in one job: the workflow's path.

    One process start and one W&B run per experiment instead of one per method (process start-up,
    mostly importing torch, is most of a small evaluation's cost). `score_jsons` holds the files of
    every method (scores/{method}/...) and every target the metrics need; each metric takes those of
    its own target (query files are named seed{r}.json, others {target}_seed{r}.json).
    """
    by_method = {m: [] for m in methods}
    for p in score_jsons:
        method = Path(p).parent.name
        if method not in by_method:
            raise ArtifactError(f"{p}: score file of method '{method}', which is not in --method {' '.join(methods)}")
        by_method[method].append(p)
    results = []
    for method in methods:
        for metric in metrics:
            target = metric_target(metric)
            prefix = score_stem(target, "")  # seed{r} / {target}_seed{r}
            mine = [p for p in by_method[method] if Path(p).name.startswith(prefix)]
            if not mine:
                raise ArtifactError(f"{exp.name}: no {target} score files of '{method}' were given for {metric}")
            results.append(compute(exp, metric, method, mine, groundtruth_path))
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "evaluate", f"{exp.name}/evaluate",
                     {"experiment": exp.name, "methods": methods, "metrics": metrics}) as run:
        run.summary_update({f"{r['method']}/{r['metric']}/{k}": v for r in results for k, v in r.items()
                            if isinstance(v, (int, float, str))})
        run.log_table("evaluation", results_table(results))
    io.write_json(out, {"config_hash": exp.hash, "experiment": exp.name, "results": results})
    return results


def results_table(results: list[dict]):
    """The scalar fields of every result, one row each (for the W&B table)."""
    import pandas as pd

    cols = ["method", "metric", "status", "value", "ci_low", "ci_high", "ceiling", "wall_time_s", "peak_memory_mb"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in results], columns=cols)


def target_groundtruth(exp: Experiment, target: str, sidecars: list[dict]) -> dict:
    """What a metric of another target needs besides the subset measurements (from the splits)."""
    if target != "train_self":
        return {}
    indices = [s.get("query_index") for s in sidecars]
    if any(i is None or i != indices[0] for i in indices):
        raise ArtifactError(f"{exp.name}: train_self score files disagree on (or lack) their query_index; rerun them")
    return {"self_index": np.asarray(indices[0]), "corrupted": exp.splits.corrupted}
