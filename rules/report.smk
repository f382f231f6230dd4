# Stage 5: the leaderboard (CSV, Markdown, HTML, bar plot), also in `snakemake --report`. It reads every
# experiment's metrics.json and each study's board file (tda_core/studies.py; helpers in rules/common.smk).


rule leaderboard:
    input:
        metrics=all_metric_files() + [f for files in study_board_files(True).values() for f in files],
        studies=[f for files in study_board_files(False).values() for f in files],
        images=study_images() + diffusion_picture_dirs(),
    output:
        csv=report(BOARD.leaderboard("csv"), caption="../workflow/report/leaderboard_csv.rst", category="Leaderboard", labels={"table": "csv"}),
        md=BOARD.leaderboard("md"),
        png=report(BOARD.leaderboard("png"), caption="../workflow/report/leaderboard_png.rst", category="Leaderboard", labels={"figure": "LDS by method"}),
        agreement=report(BOARD.metric_agreement_plot, caption="../workflow/report/metric_agreement.rst", category="Leaderboard",
                         labels={"figure": "do the metrics agree"}),
        html=report(BOARD.leaderboard("html"), caption="../workflow/report/leaderboard_html.rst", category="Leaderboard", labels={"table": "html"}),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv) or ".",
        studies=study_args,
    log:
        BOARD.log("leaderboard"),
    conda:
        "../envs/tda.yaml"
    localrule: True
    shell:
        "tda --log {log} leaderboard --metrics {input.metrics} {params.studies} --images {input.images}"
        " --out-dir {params.out_dir} > /dev/null"
