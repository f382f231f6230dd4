# Stage 1: resolved experiment config (+ hash) and ground-truth subset masks.


rule prepare:
    output:
        config=f"{R}/{{exp}}/config.json",
        masks=f"{R}/{{exp}}/groundtruth/masks.npy",
    params:
        experiment=lambda w: json.dumps(shared_experiment_config(EXPERIMENTS[w.exp])),
    log:
        f"{R}/logs/{{exp}}/prepare.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "tda --log {log} prepare --experiment-json {params.experiment:q}"
        " --out-config {output.config} --out-masks {output.masks}"
