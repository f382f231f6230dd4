from __future__ import annotations

import resource
import time

import numpy as np
import torch

from ..scores import Scores


def measure(exp, params: dict, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """f(z, theta) for a batch of examples, as float64 numpy."""
    model = exp.build_model(0).to(exp.device)
    params = {k: v.to(exp.device) for k, v in params.items()}
    with torch.no_grad():
        return exp.task.measure(exp.caller(model, params), x.to(exp.device), y.to(exp.device)).double().cpu().numpy()


def accuracy(exp, params: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    """The share of correct argmax predictions; for token sequences (y [n, T]), of the real (not padded) tokens."""
    from ..tasks import IGNORE_INDEX

    model = exp.build_model(0).to(exp.device)
    params = {k: v.to(exp.device) for k, v in params.items()}
    with torch.no_grad():
        logits = exp.caller(model, params)(x.to(exp.device))
    correct = logits.argmax(-1).cpu() == y
    if y.ndim == 2:  # next-token prediction: padded positions (IGNORE_INDEX) are no prediction
        real = y != IGNORE_INDEX
        return float((correct & real).sum() / real.sum().clamp_min(1))
    return float(correct.float().mean())


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


def score_dir_of(exp, method: str, score_dirs: dict | None):
    """The method's score folder: as given (a stage's --scores-dir), else the layout's."""
    given = (score_dirs or {}).get(method)
    return given if given is not None else exp.layout.score_dir(method)


def result_head(exp, method: str, metric: str, scores: Scores) -> dict:
    """The head of a method's result for one metric: experiment, method, metric and the attribution
    cost; if any attribution failed, a finished failed result."""
    sidecars = scores.sidecars
    head = {"config_hash": exp.hash, "experiment": exp.name, "method": method, "metric": metric,
            "seeds": [s.get("seeds") for s in sidecars],
            "wall_time_s": sum(s.get("wall_time_s", 0.0) for s in sidecars) / max(1, len(sidecars)),
            "peak_memory_mb": max((s.get("peak_memory_mb", 0.0) for s in sidecars), default=0.0)}
    if not scores.ok:
        return {**head, "status": "failed", "reason": scores.failed_reason}
    return head
