"""The board's files: leaderboard.csv, .md, .png (and the metric-agreement heatmap beside it) and .html."""
from __future__ import annotations

import pandas as pd

from .. import io
from ..meta_eval import agreement_tables, heatmap
from .collect import collect, load_bundles
from .plots import agreement_plot_path, bar_plot
from .render import csv_safe, html_page, markdown
from .sections import sections


def write_all(metric_paths: list, out_csv, out_md, out_png, out_html, extra_images: list | None = None,
              study_files: dict[str, list] | None = None, merge: bool = False,
              sections_out: list | None = None) -> pd.DataFrame:
    """The board's files; `study_files`: {study: its board files} of the studies that are no result bundles
    (tda_core/studies.py: pruning summaries, tuning files); `sections_out` (a list) receives the page's sections
    (board.sections.Section), so a caller that logs them (the report stage's W&B run) neither loads the bundles
    nor builds the sections again."""
    study_files = study_files or {}
    bundles = load_bundles(metric_paths, study_files.get("pruning"), merge=merge)
    df = collect(metric_paths, bundles)
    io.write_bytes(out_csv, csv_safe(df).to_csv(index=False).encode())
    page = sections(df, bundles, study_files)
    if sections_out is not None:
        sections_out.extend(page)
    io.write_bytes(out_md, markdown(page).encode())
    bar_plot(df, out_png)
    agreement_png = agreement_plot_path(out_png)
    heatmap(agreement_tables(bundles), agreement_png)
    io.write_bytes(out_html, html_page(page, [out_png, agreement_png, *(extra_images or [])]).encode())
    return df
