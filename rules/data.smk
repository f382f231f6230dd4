# Stage 1: resolved experiment config (+ hash) and ground-truth subset masks.


rule prepare:
    output:
        config=exp_paths("{exp}").config,
        masks=exp_paths("{exp}").masks,
    params:
        experiment=lambda w: json.dumps(shared_experiment_config(EXPERIMENTS[w.exp]), sort_keys=True),
    log:
        exp_paths("{exp}").log("prepare"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tda --log {log} prepare --experiment-json {params.experiment:q}"
        " --out-config {output.config} --out-masks {output.masks}"
