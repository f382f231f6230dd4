# Diffusion pictures (kind: diffusion): for the first few queries, the query and its top-k positive /
# negative training images under every method, and samples of each full-data seed's model from the
# same noise. One job per experiment; the folder goes into `snakemake --report` and the leaderboard.


rule diffusion_pictures:
    input:
        config=f"{R}/{{exp}}/config.json",
        models=lambda w: expand(f"{R}/{w.exp}/models/seed{{s}}.pt", s=full_seeds(w.exp)),
        scores=lambda w: score_dirs(w.exp),
    output:
        report(directory(f"{R}/{{exp}}/pictures"), patterns=["{name}.png"], category="Diffusion",
               labels={"experiment": "{exp}", "figure": "{name}"}),
    params:
        score_files=lambda w: all_score_jsons(w.exp),
        pictures=lambda w: json.dumps(EXPERIMENTS[w.exp].get("pictures") or {}),
    log:
        f"{R}/logs/{{exp}}/diffusion_pictures.log",
    conda:
        "../envs/tda.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "tda --log {log} --threads {threads} diffusion-pictures --exp-config {input.config} --scores {params.score_files}"
        " --pictures {params.pictures:q} --out-dir {output}"
