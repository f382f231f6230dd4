"""The leaderboard, kept as a name: the board is the package tda_core.board (one module a job, the page as
typed sections with stable keys). This module re-exports the names other code and older imports use; the
board's own parts are imported from their modules (tda_core.board.cells, .tables, .render, ...)."""
from __future__ import annotations

from .board import (LEGEND, Section, agreement_plot_path, bar_plot, collect, format_p_columns, load_bundles,
                    overview_table, section, sections, signal_table, write_all)

__all__ = [
    "write_all", "load_bundles", "collect", "signal_table", "overview_table", "bar_plot", "format_p_columns",
    "agreement_plot_path", "LEGEND", "Section", "section", "sections",
]
