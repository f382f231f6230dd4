"""Stage 5: score one method's attributions with one metric against the ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io
from ..api import Experiment
from ..errors import ArtifactError
from ..metrics.registry import get_metric, metric_target
from ..tracking import tracked_run


def evaluate(exp: Experiment, metric: str, method: str, score_jsons: list, groundtruth_path, out,
             tracking: dict) -> dict:
    sidecars = [io.read_json(p) for p in score_jsons]
    result = {"config_hash": exp.hash, "experiment": exp.name, "method": method, "metric": metric,
              "seeds": [s["seeds"] for s in sidecars],
              "wall_time_s": sum(s.get("wall_time_s", 0.0) for s in sidecars) / max(1, len(sidecars)),
              "peak_memory_mb": max((s.get("peak_memory_mb", 0.0) for s in sidecars), default=0.0)}
    failed = [s for s in sidecars if s.get("status") != "ok"]
    if failed:
        result.update(status="failed", reason=failed[0].get("reason", "unknown"))
    else:
        for s in sidecars:
            io.check_hash(s.get("method"), s.get("config_hash"), exp.hash)
        scores = [io.load_npy(Path(p).with_suffix(".npy")) for p in score_jsons]
        groundtruth = io.load_npz(groundtruth_path, expect_hash=exp.hash)[0] if groundtruth_path else {}
        groundtruth.update(target_groundtruth(exp, metric_target(metric), sidecars))
        result.update(status="ok", **get_metric(metric)(scores, groundtruth))
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "evaluate", f"{exp.name}/{metric}/{method}",
                     {"experiment": exp.name, "method": method, "metric": metric}) as run:
        run.summary_update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
    io.write_json(out, result)
    return result


def target_groundtruth(exp: Experiment, target: str, sidecars: list[dict]) -> dict:
    """What a metric of another target needs besides the subset measurements (from the splits)."""
    if target != "train_self":
        return {}
    indices = [s.get("query_index") for s in sidecars]
    if any(i is None or i != indices[0] for i in indices):
        raise ArtifactError(f"{exp.name}: train_self score files disagree on (or lack) their query_index; rerun them")
    return {"self_index": np.asarray(indices[0]), "corrupted": exp.splits.corrupted}
