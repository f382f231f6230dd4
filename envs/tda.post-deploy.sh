#!/usr/bin/env bash
# Snakemake runs this inside the new env, from the directory snakemake was started in (the repo root).
set -euo pipefail
pip install --no-deps -e "${SNAKEMAKE_WORKFLOW_BASEDIR:-$PWD}"
