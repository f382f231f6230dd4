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
        config=f"{R}/{{exp}}/config.json",
        scores=lambda w: score_dir(w.exp, w.method),
    output:
        f"{R}/{{exp}}/pruning/{{method}}/{{variant}}/p{{p}}.json",
    wildcard_constraints:
        variant="fixed|dtda",
        p=r"[0-9]+(\.[0-9]+)?",
    params:
        score_files=pruning_val_scores,
        seeds=pruning_seed_args,
    log:
        f"{R}/logs/{{exp}}/prune_{{method}}_{{variant}}_p{{p}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} prune --exp-config {input.config} --method {wildcards.method}"
        " --variant {wildcards.variant} --p {wildcards.p} --retrain-seeds {params.seeds}"
        " --scores {params.score_files} --out {output}"


rule prune_random:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/pruning/_random/p{{p}}.json",
    wildcard_constraints:
        p=r"[0-9]+(\.[0-9]+)?",
    params:
        seeds=pruning_seed_args,
    log:
        f"{R}/logs/{{exp}}/prune_random_p{{p}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} prune-baseline --kind random --exp-config {input.config}"
        " --p {wildcards.p} --retrain-seeds {params.seeds} --out {output}"


rule prune_full:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/pruning/_full.json",
    params:
        seeds=pruning_seed_args,
    log:
        f"{R}/logs/{{exp}}/prune_full.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} prune-baseline --kind full --exp-config {input.config}"
        " --retrain-seeds {params.seeds} --out {output}"


rule prune_summary:
    input:
        config=f"{R}/{{exp}}/config.json",
        runs=lambda w: pruning_runs(w.exp),
    output:
        json=f"{R}/{{exp}}/pruning/summary.json",
        png=report(f"{R}/{{exp}}/pruning/pruning.png", category="Pruning",
                   labels={"experiment": "{exp}", "figure": "pruning curve"}),
    log:
        f"{R}/logs/{{exp}}/prune_summary.log",
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} prune-summary --exp-config {input.config} --runs {input.runs}"
        " --out {output.json} --plot {output.png}"
