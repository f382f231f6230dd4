"""Datasets, deterministic splits and ground-truth subset masks.

The torch-based names load lazily, so that plan-time checks (tda_core.data.sources, numpy only) can
run while Snakemake builds the DAG without importing torch."""

__all__ = ["Splits", "load_splits", "subset_masks"]


def __getattr__(name):
    if name in __all__:
        from . import splits

        return getattr(splits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
