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
        config=exp_paths("{exp}").config,
        scores=lambda w: score_dir(w.exp, w.method),
    output:
        exp_paths("{exp}").removal_run("{method}", "{k}"),
    wildcard_constraints:
        k=r"[0-9]+(\.[0-9]+)?",
    params:
        seeds=removal_seed_args,
        options=removal_options,
    log:
        exp_paths("{exp}").log("removal_{method}_k{k}"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} removal --kind method --exp-config {input.config}"
        " --method {wildcards.method} --k {wildcards.k} --retrain-seeds {params.seeds}"
        " --options {params.options:q} --scores-dir {input.scores} --out {output}"


rule removal_random:
    input:
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").removal_random("{k}"),
    wildcard_constraints:
        k=r"[0-9]+(\.[0-9]+)?",
    params:
        seeds=removal_seed_args,
        options=removal_options,
    log:
        exp_paths("{exp}").log("removal_random_k{k}"),
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
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").removal_full,
    params:
        seeds=removal_seed_args,
        options=removal_options,
    log:
        exp_paths("{exp}").log("removal_full"),
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
        config=exp_paths("{exp}").config,
        full=exp_paths("{exp}").removal_full,
        runs=lambda w: removal_runs(w.exp),
    output:
        results=exp_paths("{exp}").removal_results,
        png=report(exp_paths("{exp}").removal_plot, caption="../workflow/report/removal.rst", category="Top-k removal",
                   labels={"experiment": "{exp}", "figure": "top-k removal curve and brittleness"}),
    log:
        exp_paths("{exp}").log("removal_summary"),
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} removal-summary --exp-config {input.config} --full {input.full} --runs {input.runs}"
        " --out {output.results} --plot {output.png}"
