"""The leaderboard's "Tuning sensitivity" section: one row per (experiment, method, option) from
results/{exp}/tuning.json (tda_core/stages/tune.py). Variants never enter the main LDS tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import io

TITLE = "Tuning sensitivity"
TEXT = ("Per method and option (knob): 'default' is the value of the method's own row and 'default LDS' its LDS "
        "on all queries [95% CI] (per-seed methods: the per-seed LDS of the main table); 'grid' lists every "
        "value's LDS on all queries, (d) the default (plot: tuning.png); 'selected' is "
        "the value with the best LDS on all data (the default wins ties). Cross-fitted gain: queries and subsets are "
        "split into seeded halves A and B; the best value is chosen on (A, A) and compared with the default on (B, B), "
        "and the other way round; 'held-out LDS' gives chosen / default averaged over the two folds, 'gain' their "
        "difference [95% CI: the folds' paired bootstraps, combined conservatively] - what tuning buys, free of the "
        "optimism of choosing and reporting on the same queries or subsets; 'in-sample best (optimistic)' is chosen "
        "and reported on all data, for reference only.")


def _num(x, digits: int = 3) -> str:
    return "" if x is None or not np.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _ci(p: dict) -> str:
    return f"{_num(p['value'])} [{_num(p['ci_low'])}, {_num(p['ci_high'])}]"


def _grid(r: dict) -> str:
    """value: LDS for every grid point, by value where the values are numbers; the default marked (d)."""
    order = list(range(len(r["values"])))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r["values"]):
        order.sort(key=lambda i: r["values"][i])
    return ", ".join(f"{r['labels'][i]}{' (d)' if i == r['default_index'] else ''}: {_num(r['points'][i]['value'])}"
                     for i in order)


def tuning_table(paths: list) -> pd.DataFrame | None:
    rows = []
    for path in paths or []:
        doc = io.read_json(path)
        for r in doc["tuning"]:
            head = {"experiment": doc["experiment"], "method": r["method"], "knob": r["option"],
                    "default": r["labels"][r["default_index"]]}
            if r["status"] != "ok":
                rows.append({**head, "default LDS": "failed", "grid": r.get("reason", "")})
                continue
            pts, d, s, b = r["points"], r["default_index"], r["selected"], r["in_sample_best"]
            rows.append({**head,
                         "default LDS": _ci(pts[d]),
                         "grid": _grid(r),
                         "selected": r["labels"][s],
                         "held-out LDS (selected / default)":
                             f"{_num(r['selected_value'])} / {_num(r['default_value'])}",
                         "gain [95% CI]": f"{r['gain']:+.3f} [{r['gain_ci_low']:+.3f}, {r['gain_ci_high']:+.3f}]",
                         "in-sample best (optimistic)": f"{r['labels'][b]} ({r['in_sample_gain']:+.3f})",
                         "queries A / B": f"{r['n_select']} / {r['n_report']}"
                         + (f", subsets {r['n_subsets_select']} / {r['n_subsets_report']}" if "n_subsets_select" in r
                            else "")})
    return pd.DataFrame(rows) if rows else None
