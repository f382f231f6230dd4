# Top-k removal and brittleness (tda_core/removal.py), for experiments with a `removal:` block: for each
# sampled query, the k training examples with the largest query scores of a method are removed and the
# model retrained on fresh seeds (removal.retrain_seeds: disjoint from the scoring seeds and from
# pruning's), by default for the full-data run's step count. One job per (method, k), per k for random
# removal, one for the full-data baseline on the same seeds; a job's runs (queries x seeds) share one
# subset size, hence one batch shape, and train together under vmap. The summary is a result bundle
# (topk_drop_k{k} and brittleness rows, read by the leaderboard like metrics.json) and the curve over k.
# Helpers: rules/common.smk.


rule removal_retrain:
    input:
        config=f"{R}/{{exp}}/config.json",
        scores=lambda w: score_dir(w.exp, w.method),
    output:
        f"{R}/{{exp}}/removal/methods/{{method}}/k{{k}}.json",
    wildcard_constraints:
        k=r"[0-9]+(\.[0-9]+)?",
    params:
        score_files=lambda w: score_jsons(w.exp, w.method, "query"),
        seeds=removal_seed_args,
        options=removal_options,
    log:
        f"{R}/logs/{{exp}}/removal_{{method}}_k{{k}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} removal --kind method --exp-config {input.config}"
        " --method {wildcards.method} --k {wildcards.k} --retrain-seeds {params.seeds}"
        " --options {params.options:q} --scores {params.score_files} --out {output}"


rule removal_random:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/removal/baselines/random_k{{k}}.json",
    wildcard_constraints:
        k=r"[0-9]+(\.[0-9]+)?",
    params:
        seeds=removal_seed_args,
        options=removal_options,
    log:
        f"{R}/logs/{{exp}}/removal_random_k{{k}}.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} removal --kind random --exp-config {input.config}"
        " --k {wildcards.k} --retrain-seeds {params.seeds} --options {params.options:q} --out {output}"


rule removal_full:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/removal/baselines/full.json",
    params:
        seeds=removal_seed_args,
        options=removal_options,
    log:
        f"{R}/logs/{{exp}}/removal_full.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "tda --log {log} --threads {threads} removal --kind full --exp-config {input.config}"
        " --retrain-seeds {params.seeds} --options {params.options:q} --out {output}"


rule removal_summary:
    input:
        config=f"{R}/{{exp}}/config.json",
        full=f"{R}/{{exp}}/removal/baselines/full.json",
        runs=lambda w: removal_runs(w.exp),
    output:
        results=f"{R}/{{exp}}/removal/results.json",
        png=report(f"{R}/{{exp}}/removal/removal.png", category="Top-k removal",
                   labels={"experiment": "{exp}", "figure": "top-k removal curve and brittleness"}),
    log:
        f"{R}/logs/{{exp}}/removal_summary.log",
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} removal-summary --exp-config {input.config} --full {input.full} --runs {input.runs}"
        " --out {output.results} --plot {output.png}"
