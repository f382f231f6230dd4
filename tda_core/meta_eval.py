"""Do the metrics agree? Rank correlation between the method orderings that the metrics produce.

For one experiment and two metrics, the rows both metrics rank (matched by (method, variant); a row
folded into another as an alias counts as that row) give two value vectors; their Spearman rho says
how far the metrics order the methods alike. Interval: where both metrics' bootstrap replicates come
from the same draws (the LDS family: lds, lds_kendall, dlds_*, lds_fixed_seed share the query x subset
draws of tda_core.metrics.stats.bootstrap_draws), rho is recomputed on every replicate ("paired
replicates"); otherwise (mislabel AUC, LOO: other resampling units) the common rows themselves are
resampled ("rows resampled"; fewer than MIN_RESAMPLED_ROWS rows: no interval, verdict "too few rows").
Sanity checks (lower is better, e.g. randomization) order nothing and
are left out.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

PAIRED_FAMILY = {"lds", "lds_kendall", "dlds_mean", "dlds_variance", "dlds_w2", "lds_fixed_seed"}
AGREE = 0.5  # a pair agrees when its interval lies above this; partly above 0; disagrees below 0
MIN_ROWS = 3
# Resampling rows gives no usable interval from a handful of them: with 4 or 5 rows most replicates repeat
# rows, and those with two distinct values have rho +-1 (measured: [1.00, 1.00] from 4 rows).
MIN_RESAMPLED_ROWS = 6


def _rows_by_key(bundle: dict) -> dict[str, dict]:
    """metric -> {(method, variant): row} of the ranked rows, aliases included."""
    from .metrics.registry import lower_is_better
    from .metrics.rows import carried_keys

    out: dict[str, dict] = {}
    for r in bundle.get("results", []):
        if r.get("status") != "ok" or r.get("value") is None or not np.isfinite(r["value"]):
            continue
        if lower_is_better(r["metric"]):
            continue
        for k in carried_keys(r):
            out.setdefault(r["metric"], {})[k] = r
    return out


def _rho(a, b) -> float:
    return float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")


def _rho_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`_rho` of every column pair of a, b [K, n] at once (average ranks, then Pearson of the ranks, as
    scipy's spearmanr): the bootstrap's thousands of small correlations without a call each."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=0), rankdata(b, axis=0)
    ra, rb = ra - ra.mean(axis=0), rb - rb.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(axis=0) / np.sqrt((ra * ra).sum(axis=0) * (rb * rb).sum(axis=0))
    ok = (np.ptp(a, axis=0) > 0) & (np.ptp(b, axis=0) > 0)
    return np.where(ok, np.clip(rho, -1.0, 1.0), np.nan)


def agreement(bundle: dict, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame | None:
    """One row per metric pair of the experiment: rho [CI], common rows, resampling, verdict."""
    by_metric = _rows_by_key(bundle)
    rows = []
    for m1, m2 in itertools.combinations(sorted(by_metric), 2):
        common = sorted(set(by_metric[m1]) & set(by_metric[m2]))
        # one entry per distinct row pair (aliases of one row would count it twice)
        seen, keys = set(), []
        for k in common:
            ids = (id(by_metric[m1][k]), id(by_metric[m2][k]))
            if ids not in seen:
                seen.add(ids)
                keys.append(k)
        if len(keys) < MIN_ROWS:
            continue
        a = np.array([by_metric[m1][k]["value"] for k in keys], dtype=float)
        b = np.array([by_metric[m2][k]["value"] for k in keys], dtype=float)
        rho = _rho(a, b)
        ra = [by_metric[m1][k].get("replicates") for k in keys]
        rb = [by_metric[m2][k].get("replicates") for k in keys]
        paired = ({m1, m2} <= PAIRED_FAMILY and all(ra) and all(rb)
                  and len({len(x) for x in ra + rb}) == 1)
        if paired:
            A, B = np.asarray(ra, dtype=float), np.asarray(rb, dtype=float)  # [K, B]
            boots = _rho_columns(A, B)
            how = "paired replicates"
        elif len(keys) < MIN_RESAMPLED_ROWS:
            rows.append({"metric A": m1, "metric B": m2, "rho": rho, "ci_low": np.nan, "ci_high": np.nan,
                         "rows": len(keys), "interval": "none", "verdict": "too few rows"})
            continue
        else:
            rng = np.random.default_rng([seed, 77])
            idx = rng.integers(0, len(keys), size=(n_boot, len(keys)))
            boots = _rho_columns(a[idx].T, b[idx].T)
            how = "rows resampled"
        boots = boots[np.isfinite(boots)]
        lo, hi = (np.quantile(boots, [0.025, 0.975]) if len(boots) else (np.nan, np.nan))
        verdict = ("agree" if lo > AGREE else "partly agree" if lo > 0
                   else "disagree" if hi < 0 else "no agreement shown")
        rows.append({"metric A": m1, "metric B": m2, "rho": rho, "ci_low": float(lo), "ci_high": float(hi),
                     "rows": len(keys), "interval": how, "verdict": verdict})
    return pd.DataFrame(rows) if rows else None


def agreement_tables(bundles: list[dict]) -> dict[str, pd.DataFrame]:
    """Per experiment (its evaluate and leave-one-out bundles together), the metric-pair table."""
    rows_by_exp: dict[str, list] = {}
    for b in bundles:
        if b.get("experiment"):
            rows_by_exp.setdefault(b["experiment"], []).extend(b.get("results", []))
    out = {}
    for exp, rows in rows_by_exp.items():
        table = agreement({"experiment": exp, "results": rows})
        if table is not None:
            out[exp] = table
    return out


def summary_line(table: pd.DataFrame) -> str:
    parts = []
    for verdict in ("agree", "partly agree", "no agreement shown", "disagree", "too few rows"):
        pairs = [f"{a} / {b}" for a, b, v in zip(table["metric A"], table["metric B"], table.verdict) if v == verdict]
        if pairs:
            parts.append(f"{verdict}: " + ", ".join(pairs))
    track = table[((table["metric A"] == "lds") & (table["metric B"] == "lds_fixed_seed"))
                  | ((table["metric A"] == "lds_fixed_seed") & (table["metric B"] == "lds"))]
    if len(track):
        t = track.iloc[0]
        parts.append(f"fixed-seed vs distributional track: rho {t.rho:.2f} [{t.ci_low:.2f}, {t.ci_high:.2f}]")
    return "; ".join(parts) + "."


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    cells = [f"{r:.2f}" if not np.isfinite(lo) else f"{r:.2f} [{lo:.2f}, {hi:.2f}]"  # too few rows: no interval
             for r, lo, hi in zip(table.rho, table.ci_low, table.ci_high)]
    return pd.DataFrame({"metric A": table["metric A"], "metric B": table["metric B"], "rho [95% CI]": cells,
                         "rows": table.rows.astype(str), "interval": table.interval, "verdict": table.verdict})


def heatmap(tables: dict[str, pd.DataFrame], path) -> None:
    """One panel per experiment: metrics x metrics, rho annotated."""
    from .plots import panel_grid, save_figure

    fig, axes = panel_grid(max(1, len(tables)), 3.6, 3.2, max_cols=3)
    if not tables:  # the file is a declared output of the leaderboard rule: say why it is empty
        axes[0].axis("off")
        axes[0].text(0.5, 0.5, "no experiment has two metrics\nthat rank 3 or more common rows",
                     ha="center", va="center", fontsize=8)
    for ax, (exp, t) in zip(axes, sorted(tables.items())):
        metrics = sorted(set(t["metric A"]) | set(t["metric B"]))
        mat = np.full((len(metrics), len(metrics)), np.nan)
        np.fill_diagonal(mat, 1.0)
        for a, b, r in zip(t["metric A"], t["metric B"], t.rho):
            i, j = metrics.index(a), metrics.index(b)
            mat[i, j] = mat[j, i] = r
        ax.imshow(mat, vmin=-1, vmax=1, cmap="RdBu")
        ax.set_xticks(range(len(metrics)), metrics, rotation=45, ha="right", fontsize=6)
        ax.set_yticks(range(len(metrics)), metrics, fontsize=6)
        for i in range(len(metrics)):
            for j in range(len(metrics)):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{exp}: do the metrics agree? (Spearman of orderings)", fontsize=7)
    save_figure(fig, path)
