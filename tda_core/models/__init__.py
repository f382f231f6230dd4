"""Model builders by config name (tda_core/models/registry.py: one row per family).

The torch-based names load lazily, so that config validation (which reads the registry) can run while
Snakemake builds the DAG without importing torch."""

__all__ = ["build_model"]


def __getattr__(name):
    if name in __all__:
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
