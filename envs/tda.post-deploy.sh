#!/usr/bin/env bash
# Snakemake runs this inside the new env, from the directory snakemake was started in (the repo root).
# A regular (non-editable) install: the env carries its own copy of tda_core, schema included
# (package data), so jobs do not depend on the checkout staying where it was.
set -euo pipefail
pip install --no-deps "${SNAKEMAKE_WORKFLOW_BASEDIR:-$PWD}"
