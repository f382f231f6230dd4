"""The workflow's stages, one module each; the `tda` CLI calls these, Snakemake rules call the CLI."""
