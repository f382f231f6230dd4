"""The board's pages: Markdown and a self-contained HTML page from one list of sections (so they say the same
thing), and the escaping that keeps text from bundles made elsewhere data, never markup or a formula (CSV
cells, Markdown cells, HTML)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from .sections import Section


def flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A table with MultiIndex columns or index as one level, joined with ' / '."""
    table = table.copy()
    if isinstance(table.columns, pd.MultiIndex):
        table.columns = [" / ".join(map(str, c)) for c in table.columns]
    if isinstance(table.index, pd.MultiIndex):
        table.index = [" / ".join(map(str, c)) for c in table.index]
    return table


# -- escaping: text from bundles made elsewhere is data, never markup or a formula --------------------
# A spreadsheet evaluates a CSV cell that starts with one of these (OWASP, "CSV injection").
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A text cell that a spreadsheet would evaluate gets a leading single quote; numbers stay numbers.
    A carriage return becomes a line feed: the CSV writer quotes a cell with a line feed, but not one with
    a lone CR, which a reader takes for the end of the row (and the rest for a new, unescaped cell)."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + value if value.startswith(CSV_FORMULA_PREFIXES + ("\n",)) else value


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """The board for leaderboard.csv: every text cell through `csv_cell`, numeric columns untouched."""
    out = df.copy()
    for column in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column])):
            out[column] = pd.Series([csv_cell(v) for v in out[column]], index=out.index, dtype=object)
    return out


# What Markdown would read as markup in a line of text (GFM, CommonMark): a row or code delimiter, a
# backslash escape, an HTML tag / comment / autolink start, an entity, a link or image (`](`, `][`,
# `]:`, `![`) and a script-like link scheme.
_MD_ESCAPES = [
    (re.compile(r"([\\|`])"), r"\\\1"),
    (re.compile(r"&(?=#?\w+;)"), "&amp;"),
    (re.compile(r"<(?=[A-Za-z/!?])"), "&lt;"),
    (re.compile(r"\](?=[(\[:])"), r"\\]"),
    (re.compile(r"!\["), r"!\\["),
    (re.compile(r"(?i)\b(javascript|vbscript|data|file)(\s*):"), r"\1\2&#58;"),
]


def md_cell(value) -> str:
    """Text as literal Markdown in a table cell or a line: line breaks and tabs become spaces, and what
    would be markup is escaped (`_MD_ESCAPES`), so text from a bundle can neither end a table row nor
    become HTML, a link or an image. Text without markup (the board's own numbers, '0.42 [0.30, 0.50]',
    '< 0.001', '>5') is left as it is."""
    text = "" if value is None else str(value)
    text = " ".join(text.replace("\r", "\n").replace("\t", " ").split("\n"))
    for pattern, replacement in _MD_ESCAPES:
        text = pattern.sub(replacement, text)
    return text


def _md_table(t: pd.DataFrame) -> str:
    show_index = not isinstance(t.index, pd.RangeIndex)
    cells = pd.DataFrame([[md_cell(v) for v in row] for row in t.itertuples(index=False, name=None)],
                         index=[md_cell(i) for i in t.index] if show_index else t.index,
                         columns=[md_cell(c) for c in t.columns])
    return cells.to_markdown(index=show_index, disable_numparse=True)


def markdown(page: list[Section]) -> str:
    """leaderboard.md: per section its heading, bullets (the legend's, as written), text and table."""
    md = ["# tda-bench leaderboard", ""]
    for s in page:
        md += ["#" * s.level + " " + md_cell(s.title), ""]
        if s.bullets:
            md += [f"- {line}" for line in s.bullets] + [""]
        if s.text:
            md += [md_cell(s.text), ""]
        if s.table is not None:
            md += [_md_table(flat_columns(s.table)), ""]
    return "\n".join(md)


def html_page(page: list[Section], images) -> str:
    """leaderboard.html: the same sections as `markdown`, every string escaped, then the images inline."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tda-bench leaderboard</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:110em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
             "li{margin:.2em 0}</style></head><body><h1>tda-bench leaderboard</h1>"]
    for s in page:
        parts.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        if s.bullets:
            parts.append("<ul>" + "".join(f"<li>{_md_bold(line)}</li>" for line in s.bullets) + "</ul>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.table is not None:
            t = flat_columns(s.table)
            parts.append(t.to_html(escape=True, index=not isinstance(t.index, pd.RangeIndex)))
    for img in images:
        if Path(img).exists():
            data = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(Path(img).name)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_bold(line: str) -> str:
    """A bullet's **bold** as <b> (everything else escaped)."""
    pieces = html.escape(line).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))
