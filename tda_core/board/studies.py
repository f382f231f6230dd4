"""The board sections of the shipped studies (tda_core/studies.py rows name these as their `board`): each
takes (the study's board files, every result bundle) and returns (key, level, title, text, table) tuples."""
from __future__ import annotations

from ..tuning_board import TEXT as TUNING_TEXT, TITLE as TUNING_TITLE, tuning_table
from .tables import loo_table, pruning_tables, removal_table
from .text import PRUNING_COVERAGE_TEXT, PRUNING_TEXT, PRUNING_TITLES, REMOVAL_TEXT

__all__ = ["pruning_sections", "tuning_sections", "removal_sections", "loo_sections"]


def pruning_sections(paths: list, bundles: list[dict]) -> list[tuple]:
    return [(f"pruning/{key}", 2, PRUNING_TITLES[key], PRUNING_COVERAGE_TEXT if key == "class_coverage" else PRUNING_TEXT,
             table) for key, table in pruning_tables(paths).items()]


def tuning_sections(paths: list, bundles: list[dict]) -> list[tuple]:
    table = tuning_table(paths)
    return [] if table is None else [("tuning", 2, TUNING_TITLE, TUNING_TEXT, table)]


def removal_sections(paths: list, bundles: list[dict]) -> list[tuple]:
    table = removal_table(bundles)
    return [] if table is None else [("removal", 2, "Top-k removal and brittleness", REMOVAL_TEXT, table)]


def loo_sections(paths: list, bundles: list[dict]) -> list[tuple]:
    table = loo_table(bundles)
    return [] if table is None else [("loo", 2, "Leave-one-out: how many seeds resolve a LOO mean shift", "", table)]
