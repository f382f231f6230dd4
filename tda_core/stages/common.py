from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from .. import io


def measure(exp, params: dict, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """f(z, theta) for a batch of examples, as float64 numpy."""
    model = exp.build_model(0).to(exp.device)
    params = {k: v.to(exp.device) for k, v in params.items()}
    with torch.no_grad():
        return exp.task.measure(exp.caller(model, params), x.to(exp.device), y.to(exp.device)).double().cpu().numpy()


def accuracy(exp, params: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    model = exp.build_model(0).to(exp.device)
    params = {k: v.to(exp.device) for k, v in params.items()}
    with torch.no_grad():
        logits = exp.caller(model, params)(x.to(exp.device))
    return float((logits.argmax(-1).cpu() == y).float().mean())


class CostMeter:
    """Wall time and peak memory (process RSS; CUDA peak allocation when on GPU) of a block."""

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_time_s = time.perf_counter() - self.t0
        self.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        self.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
        return False

    def as_dict(self) -> dict:
        return {"wall_time_s": self.wall_time_s, "peak_memory_mb": max(self.peak_rss_mb, self.peak_cuda_mb),
                "peak_rss_mb": self.peak_rss_mb, "peak_cuda_mb": self.peak_cuda_mb}


def read_scores(exp, score_jsons: list) -> tuple[list[dict], str | None, list | None]:
    """Sidecars, the reason of the first failed attribution (or None), and the score arrays (None if
    one failed). Sidecars of another config fail with one line naming the method."""
    sidecars = [io.read_json(p) for p in score_jsons]
    failed = [s for s in sidecars if s.get("status") != "ok"]
    if failed:
        return sidecars, failed[0].get("reason", "unknown"), None
    for s in sidecars:
        io.check_hash(s.get("method"), s.get("config_hash"), exp.hash)
    return sidecars, None, [io.load_npy(Path(p).with_suffix(".npy")) for p in score_jsons]


def load_method_scores(exp, method: str, metric: str, score_jsons: list) -> tuple[dict, list | None, list | None]:
    """A method's score files for one metric: (result head, sidecars, scores).

    The head names the experiment, method and metric and carries the attribution cost; if any
    attribution failed it is a finished failed result and sidecars / scores are None.
    """
    sidecars, failed_reason, scores = read_scores(exp, score_jsons)
    head = {"config_hash": exp.hash, "experiment": exp.name, "method": method, "metric": metric,
            "seeds": [s.get("seeds") for s in sidecars],
            "wall_time_s": sum(s.get("wall_time_s", 0.0) for s in sidecars) / max(1, len(sidecars)),
            "peak_memory_mb": max((s.get("peak_memory_mb", 0.0) for s in sidecars), default=0.0)}
    if failed_reason is not None:
        return {**head, "status": "failed", "reason": failed_reason}, None, None
    return head, sidecars, scores
