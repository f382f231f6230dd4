# Stage 5: every metric of every method of an experiment, in one job (one process start: importing
# torch is most of a small evaluation's cost), against the subset ground truth; writes the bundle
# results/{exp}/metrics.json (one result per method and metric; a failed attribution, a failed row).


rule evaluate:
    input:
        config=f"{R}/{{exp}}/config.json",
        groundtruth=f"{R}/{{exp}}/groundtruth/measurements.npz",
        scores=lambda w: score_dirs(w.exp),
    output:
        f"{R}/{{exp}}/metrics.json",
    params:
        # query scores, plus those of each metric's own target (mislabel_auc: train_self)
        score_files=lambda w: evaluation_score_jsons(w.exp),
        metrics=lambda w: " ".join(EXPERIMENTS[w.exp]["metrics"]),
        methods=lambda w: " ".join(EXPERIMENTS[w.exp]["methods"]),
    log:
        f"{R}/logs/{{exp}}/evaluate.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "tda --log {log} evaluate --exp-config {input.config} --metric {params.metrics}"
        " --method {params.methods} --scores {params.score_files} --groundtruth {input.groundtruth}"
        " --out {output}"
