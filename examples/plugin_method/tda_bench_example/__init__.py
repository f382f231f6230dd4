"""An example tda-bench plugin: the attribution method grad_norm_dot (entry point tda_bench.methods)."""
