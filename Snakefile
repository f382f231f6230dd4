# tda-bench: data -> full-data models + subset ground truth -> attribution -> evaluation -> leaderboard.
#   snakemake --cores 2                                   default benchmark (embedded digits, CPU)
#   snakemake --cores 2 --configfile workflow/config/tiny.yaml
#   snakemake --workflow-profile workflow/profiles/slurm  the same DAG on a SLURM cluster
#
# Rule params hold only settings that change numbers: Snakemake reruns a job whose params changed.
# Tracking (W&B) goes to the undeclared side file {results_dir}/.tracking.json instead, which the
# `tda` CLI reads (tda_core/tracking.py), so switching tracking.mode reruns nothing. Building the DAG
# imports no torch (registry rows, not method classes; tests/test_workflow.py checks both).
# Plugin methods (entry points, "module:Class" in methods:) are the exception: their modules are
# imported while the config is validated (tda_core/methods/registry.py).
import json
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from tda_core.errors import TdaError

try:  # the registries read installed packages' studies (entry points): a broken one is one line, no traceback
    from tda_core.config import (check_models, check_plan, experiment_block, experiments_to_run, method_options,
                                 resolve_experiment, shared_experiment_config, validate_config)
    from tda_core.layout import SAFE_NAME
    from tda_core.tracking import share_service as share_tracking_service
    from tda_core.tracking import write_settings as write_tracking_settings
    from tda_core.methods.registry import method_entry
    from tda_core.studies import STUDIES
except TdaError as e:
    raise WorkflowError(f"tda-bench: {e}") from None

min_version("8.0")

# The default config is read only when no --configfile is given, so a config file replaces it
# (experiments are never merged from two files); --config key=value still overrides either.
if not workflow.overwrite_configfiles:

    configfile: "workflow/config/config.yaml"


# Plan-time validation: the schema, then per experiment the data (sizes, labels, values) and the model
# built on one example in a child process, remembered once it passed (tda_core.config.check_plan and
# check_models), so that errors arrive at `snakemake -n`, in one line, before any job runs. Jobs that
# re-read this file (cluster executors) skip the model build.
try:
    validate_config(config)
    RESULTS_DIR = config["results_dir"]
    EXPERIMENTS = {name: resolve_experiment(config, name) for name in experiments_to_run(config)}
    _model_checks = [check_plan(e, build_model=False) for e in EXPERIMENTS.values()]
    if workflow.is_main_process:
        check_models(_model_checks)
except TdaError as e:
    raise WorkflowError(f"tda-bench: {e}") from None


onstart:
    # Before any job starts (on the submitting host under SLURM; a file under results_dir reaches the
    # nodes). Not on dry runs, nor with --no-hooks: jobs then use the file an earlier run left.
    write_tracking_settings(RESULTS_DIR, config["tracking"])
    # one W&B service for every local job (they inherit WANDB_SERVICE): saves each job starting its own
    if workflow.local_exec:
        share_tracking_service(config["tracking"])


wildcard_constraints:
    exp="|".join(re.escape(e) for e in EXPERIMENTS),
    method=SAFE_NAME.pattern,  # plugin names may hold . and -
    curvature=SAFE_NAME.pattern,  # a shared curvature fit's key (tda_core.methods.registry.curvature_fit)
    metric=r"[A-Za-z0-9_]+",
    seed=r"\d+|all",
    shard=r"\d+",


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/attribute.smk"
include: "rules/evaluate.smk"
include: "rules/diffusion.smk"
# every study's rules (tda_core/studies.py: one row per study names its rule file)
for study in STUDIES.values():

    include: study.rule_file


include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.leaderboard.output,
