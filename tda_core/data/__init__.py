"""Datasets, deterministic splits and ground-truth subset masks."""
from .splits import Splits, load_splits, subset_masks

__all__ = ["Splits", "load_splits", "subset_masks"]
