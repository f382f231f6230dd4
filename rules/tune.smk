# Tuning sensitivity (an experiment's `tuning:` grid, tda_core/tuning.py): each grid value is a method
# variant "{method}.{option}-{value}" scored by the attribute rule like any method (query target only);
# one job per experiment scores every grid point by LDS, picks the best value on one half of the
# queries and reports it against the default on the other half: results/{exp}/tuning.json + .png.


rule tune:
    input:
        config=f"{R}/{{exp}}/config.json",
        groundtruth=f"{R}/{{exp}}/groundtruth/measurements.npz",
        scores=lambda w: [score_dir(w.exp, m) for m in tuning_score_folders(w.exp)],
    output:
        json=f"{R}/{{exp}}/tuning.json",
        png=f"{R}/{{exp}}/tuning.png",
    params:
        grid=lambda w: json.dumps(tuning_grid(w.exp)),
        score_files=lambda w: [p for m in tuning_score_folders(w.exp) for p in score_jsons(w.exp, m)],
    log:
        f"{R}/logs/{{exp}}/tune.log",
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "tda --log {log} tune --exp-config {input.config} --grid {params.grid:q} --scores {params.score_files}"
        " --groundtruth {input.groundtruth} --out {output.json} --plot {output.png}"
