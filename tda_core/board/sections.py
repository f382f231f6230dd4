"""The board's page as a list of typed sections, in page order: legend, signal, claims, metric agreement,
overview, per metric and experiment, LDS by track, classic vs distributional, the studies' sections (in the
order of tda_core/studies.py: pruning, tuning, top-k removal, leave-one-out), cost. Markdown, HTML and the W&B
run are all rendered from this one list; a consumer finds a section by its `key`, never by its title."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..claims import claims_table
from ..meta_eval import agreement_tables
from ..meta_eval import display_table as meta_display_table
from ..meta_eval import summary_line as meta_summary_line
from ..studies import STUDIES, board_sections
from .cells import format_p_columns
from .collect import metric_order
from .tables import cost_table, distributional_table, experiment_table, overview_table, signal_table, track_table
from .text import (AGREEMENT_TEXT, CLAIMS_TEXT, COST_TEXT, LEGEND, OVERVIEW_TEXT, SIGNAL_TEXT, TRACKS_TEXT, metric_note,
                   noise_from_rows, noise_line, overview_scope, signal_line)


@dataclass(frozen=True, eq=False)  # eq=False: a DataFrame has no truth value to compare by
class Section:
    """One heading of the board and what stands under it.

    key: a stable identifier ("overview", "metric/lds/digits-mlp", "pruning/test_loss"), not the title;
    order: the position on the page (0 first); level: the heading level (2 or 3); bullets: a list shown
    before the text (the legend's lines, with **bold**); table: p-value cells already formatted
    (cells.format_p_columns: '< 0.001', never '0')."""
    key: str
    order: int
    level: int
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    bullets: tuple[str, ...] = ()


def section(page: list[Section], key: str) -> Section | None:
    """The section of `page` with this key, or None."""
    return next((s for s in page if s.key == key), None)


def sections(df: pd.DataFrame, bundles: list[dict], study_files: dict[str, list] | None = None) -> list[Section]:
    """The board's sections in page order (the module's docstring); `study_files`: {study: its board files}
    of the studies whose files are no result bundles (pruning summaries, tuning files)."""
    study_files = study_files or {}
    out: list[Section] = []

    def add(key: str, level: int, title: str, text: str = "", table=None, bullets: tuple[str, ...] = ()) -> None:
        # one rule for every p printed (Markdown, HTML, W&B tables): '< 0.001', never '0'
        out.append(Section(key, len(out), level, title, text, format_p_columns(table), bullets))

    add("legend", 2, "How to read this board", bullets=tuple(LEGEND))
    signal = signal_table(bundles)
    if signal is not None:
        add("signal", 2, "Signal of each experiment's ground truth", SIGNAL_TEXT, signal)
    claims = claims_table(df, bundles, study_files.get("pruning") or [])
    if claims is not None:
        add("claims", 2, "Claims of the papers, checked on this run", CLAIMS_TEXT, claims)
    agreement = agreement_tables(bundles)
    if agreement:
        add("agreement", 2, "Do the metrics agree?", AGREEMENT_TEXT)
        for exp, table in sorted(agreement.items()):
            add(f"agreement/{exp}", 3, f"metric agreement on {exp}", meta_summary_line(table),
                meta_display_table(table))
    overview = overview_table(df)
    if overview is not None:
        add("overview", 2, "Overview: LDS by experiment",
            OVERVIEW_TEXT + overview_scope(overview.attrs["shared"], overview.attrs["experiments"]), overview)
    ceilings = {b["experiment"]: b.get("noise", {}) for b in bundles}
    for metric in sorted(set(df.metric), key=metric_order):
        add(f"metric/{metric}", 2, metric, metric_note(metric))
        for exp, part in df[df.metric == metric].groupby("experiment", sort=True):
            noise = ceilings.get(exp, {}).get(metric, {}) or noise_from_rows(part)
            add(f"metric/{metric}/{exp}", 3, f"{metric} on {exp}",
                " ".join(filter(None, [noise_line(noise), signal_line(part)])), experiment_table(part, metric))
    tracks = track_table(df)
    if tracks is not None:
        add("tracks", 2, "LDS by track", TRACKS_TEXT, tracks)
    dist = distributional_table(df)
    if dist is not None:
        add("distributional", 2, "Classic vs distributional LDS", "", dist)
    for study in STUDIES.values():  # each study's sections (tda_core/studies.py: its `board` function)
        for key, level, title, text, table in board_sections(study, study_files.get(study.name) or [], bundles):
            add(key, level, title, text, table)
    cost = cost_table(df)
    if cost is not None:
        add("cost", 2, "Cost of attribution", COST_TEXT, cost)
    return out
