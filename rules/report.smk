# Stage 5: the leaderboard (CSV, Markdown, HTML, bar plot), also in `snakemake --report`.


rule leaderboard:
    input:
        metrics=all_metric_files() + loo_all_results() + removal_bundles(),
        pruning=pruning_summaries(),
        tuning=tuning_files(),
        images=pruning_plots() + loo_plots() + tuning_plots() + removal_plots() + diffusion_picture_dirs(),
    output:
        csv=report(BOARD.leaderboard("csv"), caption="../workflow/report/leaderboard_csv.rst", category="Leaderboard", labels={"table": "csv"}),
        md=BOARD.leaderboard("md"),
        png=report(BOARD.leaderboard("png"), caption="../workflow/report/leaderboard_png.rst", category="Leaderboard", labels={"figure": "LDS by method"}),
        agreement=report(BOARD.metric_agreement_plot, caption="../workflow/report/metric_agreement.rst", category="Leaderboard",
                         labels={"figure": "do the metrics agree"}),
        html=report(BOARD.leaderboard("html"), caption="../workflow/report/leaderboard_html.rst", category="Leaderboard", labels={"table": "html"}),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv) or ".",
    log:
        BOARD.log("leaderboard"),
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} leaderboard --metrics {input.metrics} --pruning {input.pruning} --tuning {input.tuning} --images {input.images}"
        " --out-dir {params.out_dir} > /dev/null"
