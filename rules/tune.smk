# Tuning sensitivity (an experiment's `tuning:` grid, tda_core/tuning.py): each grid value is a method
# variant "{method}.{option}-{value}" scored by the attribute rule like any method (query target only);
# one job per experiment scores every grid point by LDS, picks the best value on one half of the
# queries and reports it against the default on the other half: results/{exp}/tuning.json + .png.


rule tune:
    input:
        config=exp_paths("{exp}").config,
        groundtruth=exp_paths("{exp}").groundtruth,
        scores=lambda w: [score_dir(w.exp, m) for m in tuning_score_folders(w.exp)],
    output:
        json=exp_paths("{exp}").tuning,
        png=exp_paths("{exp}").tuning_plot,
    params:
        grid=lambda w: json.dumps(tuning_grid(w.exp), sort_keys=True),
    log:
        exp_paths("{exp}").log("tune"),
    conda:
        "../envs/tda.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "tda --log {log} tune --exp-config {input.config} --grid {params.grid:q}"
        " --groundtruth {input.groundtruth} --out {output.json} --plot {output.png}"
