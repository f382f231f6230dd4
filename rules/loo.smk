# Leave-one-out study ("LOO is noisy", d-TDA), for experiments with a `loo:` block: retrain without
# a few points with many seeds (one job), then score every method's predicted mean shifts and plot
# them (one job). Helpers: rules/common.smk.


rule loo_train:
    input:
        config=exp_paths("{exp}").config,
    output:
        exp_paths("{exp}").loo_measurements,
    params:
        options=lambda w: json.dumps(EXPERIMENTS[w.exp]["loo"], sort_keys=True),
        # a rerun trigger only (not passed to tda): a study retrained under an older seed protocol reruns
        seeds=lambda w: loo_seed_args(w.exp),
    log:
        exp_paths("{exp}").log("loo_train"),
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
        config=exp_paths("{exp}").config,
        loo=exp_paths("{exp}").loo_measurements,
        scores=lambda w: score_dirs(w.exp),  # in the order of params.methods
    output:
        results=exp_paths("{exp}").loo_results,
        plot=report(exp_paths("{exp}").loo_plot, caption="../workflow/report/loo.rst", category="Leave-one-out",
                    labels={"experiment": "{exp}", "figure": "predicted vs actual LOO shift"}),
    params:
        methods=lambda w: " ".join(EXPERIMENTS[w.exp]["methods"]),
    log:
        exp_paths("{exp}").log("loo_evaluate"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "tda --log {log} loo-evaluate --exp-config {input.config} --method {params.methods}"
        " --scores-dir {input.scores} --loo {input.loo} --out {output.results} --plot {output.plot}"
