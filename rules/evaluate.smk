# Stage 5: every (experiment, metric, method) against the subset ground truth.
from tda_core.metrics.registry import metric_target


rule evaluate:
    input:
        config=f"{R}/{{exp}}/config.json",
        groundtruth=f"{R}/{{exp}}/groundtruth/measurements.npz",
        # query scores, or those of the metric's own target (mislabel_auc: train_self)
        scores=lambda w: score_jsons(w.exp, w.method, metric_target(w.metric)),
    output:
        f"{R}/{{exp}}/metrics/{{metric}}/{{method}}.json",
    params:
        tracking=TRACKING,
    log:
        f"{R}/logs/{{exp}}/evaluate_{{metric}}_{{method}}.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "tda --log {log} evaluate --exp-config {input.config} --metric {wildcards.metric}"
        " --method {wildcards.method} --scores {input.scores} --groundtruth {input.groundtruth}"
        " --tracking {params.tracking:q} --out {output}"
