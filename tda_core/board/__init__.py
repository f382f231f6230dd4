"""The leaderboard: evaluation bundles -> CSV, Markdown, a bar plot and a self-contained HTML page.

Inputs: the evaluate stage's bundles (results/{exp}/metrics.json: labelled, de-duplicated and ranked
rows, see tda_core.metrics.rows, plus the experiment's noise figures and power), the leave-one-out
bundles (same format, metric loo_shift) and the pruning summaries. Failed jobs appear as `failed`
rows, never as missing ones. Bundles are read as untrusted input (tda_core.bundle: JSON only, the
schema, safe names, one ground truth per experiment); every string reaches the HTML page escaped.

One module a job: collect (bundles -> the board's rows, in order), cells (a number, interval, rank or p as
text), tables (the table builders), text (the legend and the words under each title), sections (the page as
typed `Section`s, each with a stable key), render (Markdown, HTML, CSV and their escaping), plots (the bar
plot) and write (the files). Markdown and HTML are rendered from one list of sections, so they say the same
thing.
"""
from __future__ import annotations

from .cells import format_p_columns
from .collect import collect, load_bundles
from .plots import agreement_plot_path, bar_plot
from .sections import Section, section, sections
from .tables import overview_table, signal_table
from .text import LEGEND
from .write import write_all

# the names other modules call (the rest are the board's own parts, imported from their modules)
__all__ = [
    "write_all", "load_bundles", "collect", "signal_table", "overview_table", "bar_plot", "format_p_columns",
    "agreement_plot_path", "LEGEND", "Section", "section", "sections",
]
