"""The board's cells: numbers, intervals, ranks, ceilings and p-values as the text the tables show."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..formatting import format_p

LOW_SIGNAL_CEILING = 0.5  # an experiment with an LDS ceiling under this is flagged low signal


def num(x, digits: int = 3) -> str:
    return "" if x is None or not np.isfinite(float(x)) else f"{float(x):.{digits}f}"


def finite(x) -> bool:
    try:
        return x is not None and bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


def ceiling_state(noise) -> tuple[float | None, str | None]:
    """(ceiling, None) when the ground truth resolves its noise ceiling; (None, why) when it does not;
    (None, None) for a metric without one (no ceiling and no reliability: Kendall, fixed-seed, W2, ...).

    Not resolved: the ceiling is missing / not finite / 0, or the 95% CI of the single-seed reliability
    includes 0 (stats reports that as ceiling 0.0 with a "no reliable signal" note): a line at 0 or
    "ceiling 0.000" would read as a measured ceiling of 0. `noise`: a noise dict or a board row."""
    get = noise.get
    ceiling, r1_low, note = get("ceiling"), get("reliability_ci_low"), get("target_note")
    note = note if isinstance(note, str) else ""
    if not finite(ceiling) and not finite(get("reliability")):
        return None, None
    if finite(ceiling) and float(ceiling) > 0 and not (finite(r1_low) and float(r1_low) <= 0):
        return float(ceiling), None
    if not note or note.startswith("no reliable signal"):
        note = "the 95% CI of the reliability r1 includes 0"
    return None, note


def ceiling_cell(noise: dict, with_ci: bool = True) -> str:
    """The ceiling as board text: '0.899 [0.770, 0.964]', or 'not resolved (why; at most x)'."""
    ceiling, why = ceiling_state(noise)
    if ceiling is not None:
        return ci_text(noise, "ceiling") if with_ci else f"{ceiling:.3f}"
    if why is None:
        return "n/a"
    high = noise.get("ceiling_ci_high")
    return f"not resolved ({why}" + (f"; at most {float(high):.2f})" if finite(high) and float(high) > 0 else ")")


def is_p_column(name) -> bool:
    """A table column that holds p-values ('p', 'p (Holm)', 'p_vs_best', 'p-value', ...)."""
    name = " ".join(map(str, name)) if isinstance(name, tuple) else str(name)
    name = name.strip().lower()
    return name == "p" or name.startswith(("p ", "p (", "p_", "p-value", "p value", "adjusted p"))


def format_p_columns(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """Every p-value cell of a displayed table through formatting.format_p ('< 0.001', never '0'): numbers and
    number-like text ('0', '1.2e-05'); cells already formatted ('< 0.001', 'n/a', '') are left as they are."""
    if table is None:
        return None
    columns = [c for c in table.columns if is_p_column(c)]
    if not columns:
        return table
    table = table.copy()
    for c in columns:
        table[c] = [_p_text(x) for x in table[c]]
    return table


def _p_text(x):
    if isinstance(x, str):
        try:
            return format_p(float(x)) if x.strip() else x
        except ValueError:
            return x
    return format_p(x) if isinstance(x, (int, float, np.number)) and not isinstance(x, bool) else x


def value_cell(row) -> str:
    if row["status"] != "ok":
        return "failed"
    if row["value"] is None or not np.isfinite(row["value"]):
        return "n/a"
    return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def rank_cell(row) -> str:
    if row["rank"] is None or not np.isfinite(float(row["rank"])):
        return ""
    if row.get("untested_reason"):  # tda_core.metrics.compare.untested_reason: in no paired test
        return f"{int(row['rank'])} (by value; not tested)"
    if row.get("low_signal") is True or row["rank_ci_low"] is None or not np.isfinite(float(row["rank_ci_low"])):
        return f"{int(row['rank'])} (by value; low signal)"  # tda_core.metrics.signal: no interval
    return f"{int(row['rank'])} [{int(row['rank_ci_low'])}-{int(row['rank_ci_high'])}]"


def row_label(method: str, variant: str) -> str:
    return f"{method} ({variant})" if variant else method


def ci_text(d: dict, key: str) -> str:
    v = d.get(key)
    if v is None:
        return "n/a"
    lo, hi = d.get(f"{key}_ci_low"), d.get(f"{key}_ci_high")
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")

