# Stage 5: every metric of an experiment for one method, in one job (one process start), against the
# subset ground truth; writes the bundle results/{exp}/metrics/{method}.json (one result per metric).


rule evaluate:
    input:
        config=f"{R}/{{exp}}/config.json",
        groundtruth=f"{R}/{{exp}}/groundtruth/measurements.npz",
        # query scores, plus those of each metric's own target (mislabel_auc: train_self)
        scores=lambda w: evaluation_score_jsons(w.exp, w.method),
    output:
        f"{R}/{{exp}}/metrics/{{method}}.json",
    params:
        metrics=lambda w: " ".join(EXPERIMENTS[w.exp]["metrics"]),
        tracking=TRACKING,
    log:
        f"{R}/logs/{{exp}}/evaluate_{{method}}.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "tda --log {log} evaluate --exp-config {input.config} --metric {params.metrics}"
        " --method {wildcards.method} --scores {input.scores} --groundtruth {input.groundtruth}"
        " --tracking {params.tracking:q} --out {output}"
