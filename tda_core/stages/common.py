from __future__ import annotations

import resource
import time

import numpy as np
import torch


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
