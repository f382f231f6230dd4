# Diffusion pictures (kind: diffusion): for the first few queries, the query and its top-k positive /
# negative training images under every method, and samples of each full-data seed's model from the
# same noise. One job per experiment; the folder goes into `snakemake --report` and the leaderboard.


rule diffusion_pictures:
    input:
        config=exp_paths("{exp}").config,
        models=lambda w: model_files(w.exp),
        scores=lambda w: score_dirs(w.exp),
    output:
        report(directory(exp_paths("{exp}").pictures), patterns=["{name}.png"], caption="../workflow/report/pictures.rst", category="Diffusion",
               labels={"experiment": "{exp}", "figure": "{name}"}),
    params:
        methods=lambda w: " ".join(EXPERIMENTS[w.exp]["methods"]),
        pictures=lambda w: json.dumps(EXPERIMENTS[w.exp].get("pictures") or {}, sort_keys=True),
    log:
        exp_paths("{exp}").log("diffusion_pictures"),
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "tda --log {log} --threads {threads} diffusion-pictures --exp-config {input.config} --method {params.methods}"
        " --scores-dir {input.scores}"
        " --pictures {params.pictures:q} --out-dir {output}"
