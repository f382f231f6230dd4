# Leave-one-out study ("LOO is noisy", d-TDA), for experiments with a `loo:` block: retrain without
# a few points with many seeds (one job), then score every method's predicted mean shifts and plot
# them (one job). Helpers: rules/common.smk.


rule loo_train:
    input:
        config=f"{R}/{{exp}}/config.json",
    output:
        f"{R}/{{exp}}/loo/measurements.npz",
    params:
        options=lambda w: json.dumps(EXPERIMENTS[w.exp]["loo"]),
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
        " --out {output}"


rule loo_evaluate:
    input:
        config=f"{R}/{{exp}}/config.json",
        loo=f"{R}/{{exp}}/loo/measurements.npz",
        scores=lambda w: score_dirs(w.exp),
    output:
        results=f"{R}/{{exp}}/loo/results.json",
        plot=report(f"{R}/{{exp}}/loo/loo.png", category="Leave-one-out",
                    labels={"experiment": "{exp}", "figure": "predicted vs actual LOO shift"}),
    params:
        score_files=lambda w: all_score_jsons(w.exp),
        methods=lambda w: " ".join(EXPERIMENTS[w.exp]["methods"]),
    log:
        f"{R}/logs/{{exp}}/loo_evaluate.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "tda --log {log} loo-evaluate --exp-config {input.config} --method {params.methods}"
        " --scores {params.score_files} --loo {input.loo} --out {output.results} --plot {output.plot}"
