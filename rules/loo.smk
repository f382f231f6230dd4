# Leave-one-out study ("LOO is noisy", d-TDA), for experiments with a `loo:` block: retrain without
# a few points with many seeds (one job), score every method's predicted mean shifts, one scatter. Helpers: rules/common.smk.


rule loo_train:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/loo/measurements.npz",
    params:
        options=lambda w: json.dumps(EXPERIMENTS[w.exp]["loo"]),
        tracking=TRACKING,
    log:
        f"{R}/logs/{{exp}}/loo_train.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "tda --log {log} --threads {threads} loo-train --exp-config {input.config} --options {params.options:q}"
        " --tracking {params.tracking:q} --out {output}"


rule loo_evaluate:
    input:
        config=f"{R}/{{exp}}/config.json",
        loo=f"{R}/{{exp}}/loo/measurements.npz",
        scores=lambda w: score_jsons(w.exp, w.method),
    output:
        f"{R}/{{exp}}/loo/{{method}}.json",
    log:
        f"{R}/logs/{{exp}}/loo_evaluate_{{method}}.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tda --log {log} loo-evaluate --exp-config {input.config} --method {wildcards.method}"
        " --scores {input.scores} --loo {input.loo} --out {output}"


rule loo_plot:
    input:
        lambda w: loo_results(w.exp),
    output:
        report(f"{R}/{{exp}}/loo/loo.png", category="Leave-one-out",
               labels={"experiment": "{exp}", "figure": "predicted vs actual LOO shift"}),
    log:
        f"{R}/logs/{{exp}}/loo_plot.log",
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} loo-plot --experiment-name {wildcards.exp} --results {input} --out {output}"
