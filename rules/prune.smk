# Pruning benchmark (d-TDA; DESIGN.md section 3), for experiments with a `pruning:` block: one job
# per (method, variant, p, seed) retrains without the p% that the method's validation-loss
# attributions (scores/{method}/val_seed{r}) pick; random-removal and full-data baselines per seed;
# one summary (mean +- std over seeds) and the pruning curve per experiment. Helpers: rules/common.smk.


rule prune_retrain:
    input:
        config=f"{R}/{{exp}}/config.json",
        scores=lambda w: score_dir(w.exp, w.method),
    output:
        f"{R}/{{exp}}/pruning/{{method}}/{{variant}}/p{{p}}/seed{{seed}}.json",
    wildcard_constraints:
        variant="fixed|dtda",
        p=r"[0-9]+(\.[0-9]+)?",
    params:
        score_files=pruning_val_scores,
    log:
        f"{R}/logs/{{exp}}/prune_{{method}}_{{variant}}_p{{p}}_seed{{seed}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "tda --log {log} --threads {threads} prune --exp-config {input.config} --method {wildcards.method}"
        " --variant {wildcards.variant} --p {wildcards.p} --seed {wildcards.seed} --scores {params.score_files}"
        " --out {output}"


rule prune_random:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/pruning/_random/p{{p}}/seed{{seed}}.json",
    wildcard_constraints:
        p=r"[0-9]+(\.[0-9]+)?",
    log:
        f"{R}/logs/{{exp}}/prune_random_p{{p}}_seed{{seed}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "tda --log {log} --threads {threads} prune-baseline --kind random --exp-config {input.config}"
        " --p {wildcards.p} --seed {wildcards.seed} --out {output}"


rule prune_full:
    input:
        config=f"{R}/{{exp}}/config.json",
        model=f"{R}/{{exp}}/models/seed{{seed}}.pt",
    output:
        f"{R}/{{exp}}/pruning/_full/seed{{seed}}.json",
    log:
        f"{R}/logs/{{exp}}/prune_full_seed{{seed}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tda --log {log} --threads {threads} prune-baseline --kind full --exp-config {input.config}"
        " --seed {wildcards.seed} --model {input.model} --out {output}"


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
