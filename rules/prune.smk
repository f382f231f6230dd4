# Pruning benchmark (d-TDA; docs/design.md, section Evaluation), for experiments with a `pruning:` block, evaluated
# out of sample: the removals are picked with the scoring models' (seeds 0..R-1) validation-loss
# attributions (scores/{method}/val_seed{r}), and every model is retrained on the fresh
# pruning.retrain_seeds for the full-data run's step count (step-matched), the full-data baseline
# included. One job per (method, variant, p), per p for random removal, and one for the full-data
# baseline retrains all S retrain seeds: the runs of a job share one subset size, hence one batch
# shape, and train together under vmap (train.vectorize) -- on CPU one vmapped process beats S
# processes (~7 s start each). Runtimes below are per job, i.e. for all S seeds. One summary (mean,
# std, 95% t-interval over retrain seeds) and the pruning curve per experiment. Helpers: rules/common.smk.


rule prune_retrain:
    input:
        config=exp_paths("{exp}").config,
        scores=lambda w: score_dir(w.exp, w.method),
    output:
        exp_paths("{exp}").pruning_run("{method}", "{variant}", "{p}"),
    wildcard_constraints:
        variant="fixed|dtda|fixed-balanced|dtda-balanced",
        p=r"[0-9]+(\.[0-9]+)?",
    params:
        seeds=pruning_seed_args,
        ensemble=pruning_ensemble_size,
    log:
        exp_paths("{exp}").log("prune_{method}_{variant}_p{p}"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} prune --exp-config {input.config} --method {wildcards.method}"
        " --variant {wildcards.variant} --p {wildcards.p} --retrain-seeds {params.seeds}"
        " --ensemble-size {params.ensemble}"
        " --scores-dir {input.scores} --out {output}"


rule prune_random:
    input:
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").pruning_random("{p}"),
    wildcard_constraints:
        p=r"[0-9]+(\.[0-9]+)?",
    params:
        seeds=pruning_seed_args,
        ensemble=pruning_ensemble_size,
    log:
        exp_paths("{exp}").log("prune_random_p{p}"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} prune-baseline --kind random --exp-config {input.config}"
        " --p {wildcards.p} --retrain-seeds {params.seeds} --ensemble-size {params.ensemble} --out {output}"


rule prune_full:
    input:
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").pruning_full,
    params:
        seeds=pruning_seed_args,
        ensemble=pruning_ensemble_size,
    log:
        exp_paths("{exp}").log("prune_full"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} prune-baseline --kind full --exp-config {input.config}"
        " --retrain-seeds {params.seeds} --ensemble-size {params.ensemble} --out {output}"


rule prune_summary:
    input:
        config=exp_paths("{exp}").config,
        runs=lambda w: pruning_runs(w.exp),
    output:
        json=exp_paths("{exp}").pruning_summary,
        png=report(exp_paths("{exp}").pruning_plot, caption="../workflow/report/pruning.rst", category="Pruning",
                   labels={"experiment": "{exp}", "figure": "pruning curve"}),
    log:
        exp_paths("{exp}").log("prune_summary"),
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} prune-summary --exp-config {input.config} --runs {input.runs}"
        " --out {output.json} --plot {output.png}"
