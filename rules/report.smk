# Stage 6: the leaderboard (CSV, Markdown, HTML, bar plot), also in `snakemake --report`.


rule leaderboard:
    input:
        metrics=all_metric_files() + loo_all_results() + removal_bundles(),
        pruning=pruning_summaries(),
        images=pruning_plots() + loo_plots() + removal_plots() + diffusion_picture_dirs(),
    output:
        csv=report(f"{R}/leaderboard.csv", category="Leaderboard", labels={"table": "csv"}),
        md=f"{R}/leaderboard.md",
        png=report(f"{R}/leaderboard.png", category="Leaderboard", labels={"figure": "LDS by method"}),
        agreement=report(f"{R}/leaderboard_metric_agreement.png", category="Leaderboard",
                         labels={"figure": "do the metrics agree"}),
        html=report(f"{R}/leaderboard.html", category="Leaderboard", labels={"table": "html"}),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv) or ".",
    log:
        f"{R}/logs/leaderboard.log",
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} leaderboard --metrics {input.metrics} --pruning {input.pruning} --images {input.images}"
        " --out-dir {params.out_dir} > /dev/null"
