"""tda_core: the library behind tda-bench (data, models, training, curvature, methods, metrics)."""

__version__ = "0.1.0"
