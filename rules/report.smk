# Stage 6: the leaderboard (CSV, Markdown, HTML, bar plot), also in `snakemake --report`.


def all_metric_files():
    return [
        f"{R}/{exp}/metrics/{metric}/{method}.json"
        for exp, cfg in EXPERIMENTS.items()
        for metric in cfg["metrics"]
        for method in cfg["methods"]
    ]


rule leaderboard:
    input:
        metrics=all_metric_files() + loo_all_results(),
        pruning=pruning_summaries(),
        images=pruning_plots() + loo_plots(),
    output:
        csv=report(f"{R}/leaderboard.csv", category="Leaderboard", labels={"table": "csv"}),
        md=f"{R}/leaderboard.md",
        png=report(f"{R}/leaderboard.png", category="Leaderboard", labels={"figure": "LDS by method"}),
        html=report(f"{R}/leaderboard.html", category="Leaderboard", labels={"table": "html"}),
    params:
        tracking=TRACKING,
    log:
        f"{R}/logs/leaderboard.log",
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} leaderboard --metrics {input.metrics} --pruning {input.pruning} --images {input.images}"
        " --out-dir {R} --tracking {params.tracking:q} > /dev/null"
