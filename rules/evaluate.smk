# Stage 4: every metric of every method of an experiment, in one job (one process start: importing
# torch is most of a small evaluation's cost), against the subset ground truth; writes the bundle
# results/{exp}/metrics.json (one result per method and metric; a failed attribution, a failed row).


rule evaluate:
    input:
        config=exp_paths("{exp}").config,
        groundtruth=exp_paths("{exp}").groundtruth,
        scores=lambda w: score_dirs(w.exp),  # in the order of params.methods
        models=lambda w: model_files(w.exp),  # their meta: test accuracy / loss (the bundle's model_fit)
    output:
        exp_paths("{exp}").metrics,
    params:
        metrics=lambda w: " ".join(EXPERIMENTS[w.exp]["metrics"]),
        methods=lambda w: " ".join(EXPERIMENTS[w.exp]["methods"]),
    log:
        exp_paths("{exp}").log("evaluate"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "tda --log {log} evaluate --exp-config {input.config} --metric {params.metrics}"
        " --method {params.methods} --scores-dir {input.scores} --groundtruth {input.groundtruth}"
        " --out {output}"
