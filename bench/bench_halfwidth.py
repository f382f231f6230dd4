"""LDS CI half-width against ground-truth cost: the trade-off curve of a finished default run (issue 21, item 2).

    python bench/bench_halfwidth.py --results /tmp/hw_results [--experiments NAME ...] [--out halfwidth.png]
                                    [--snakemake-log PATH] [--draws 4] [--n-boot 500] [--target 0.04]

Reads a finished run's results folder (nothing is trained): per experiment its ground truth
(groundtruth/masks.npy, measurements.npz [M, R', Q]), the score files of every method and metrics.json.

1. Half-widths of sub-designs. Every LDS row of metrics.json (method x variant: per-seed,
   seed-averaged, ensemble; rows the board folded as aliases are not repeated) is re-scored with the
   package's own joint bootstrap (tda_core.metrics.stats.lds_bootstrap, on the predictions of
   tda_core.metrics.lds.group_predictions, as evaluate_lds does) on sub-designs of the existing
   ground truth: a fraction of the subsets (1/4, 1/2, 3/4: --draws random draws of which subsets,
   half-widths averaged over the draws; all: one) x the first k seeds per subset (target = mean over
   those k seeds' measurements), k = 1 .. R'. Half-width = (ci_high - ci_low) / 2. The full design
   with n_boot 1000 and seed 0 (the evaluate stage's) is checked against metrics.json first: both are
   printed and must agree to rounding (same draws).
2. Cost. Per (subset x seed) model: the shards' own training time (the `wall_time_s` that
   train_shard writes into groundtruth/shard{k}.npz, measured in the job under the run's real load)
   / (subsets x seeds). The job logs under results/logs/{exp}/ cannot give job durations: the shard,
   prepare and gather logs are empty and the others carry one timestamp per logged line, not the
   job's start. With --snakemake-log (snakemake's console output of the same run) every job's
   duration is taken from its start and "Finished" timestamps: per shard job, its start-up
   s0 = job seconds - wall_time_s (process start, imports, I/O), and the experiment's fixed cost =
   the seconds of all its other jobs (train_full, attribute, fit_curvature, evaluate, pruning, ...).
   Without it, the fixed cost is estimated as the sum of the in-process wall_time_s its artifacts
   record (models, scores, curvature fits, pruning, LOO) plus --startup-s per job log (an estimate:
   said in the output).
   Cost of a design (m subsets x k seeds) in job seconds: fixed + ceil(m / shard_size) * s0 +
   m * k * per-model seconds; minutes on 2 cores with 2 jobs at a time = job seconds / 2 / 60 (perfect
   packing: a lower bound). "run min" = the whole default run's measured wall time (from the snakemake
   log) + the change of this experiment's job seconds / 2, the other experiments unchanged.
   Not modelled: the evaluate job's bootstrap grows about linearly with m (held at its measured time).
3. Fits per row at k = R' (non-negative least squares): half-width ~ a + b / sqrt(m) (law A) and
   half-width^2 ~ c + d / m (law B: the
   variance-components law that tda_core.metrics.compare.power assumes), least squares over the
   design points; residuals printed for the worst and the median row; the law with the smaller RMS
   over all rows of the experiment extrapolates. Subsets needed for every row <= target: the max over
   rows of each row's solution (inf when the row's floor, a or sqrt(c), is above the target: the
   query part, which no number of subsets removes). The same for every k < R' gives the cheapest k.
   The query floor of the worst row is also printed from stats.variance_components.

Last run: README.md, "Benchmarks".
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

EXPERIMENTS = ["digits-mlp", "digits-vit", "digits-mlp-nonconverged", "digits-mlp-multistage",
               "digits-mlp-smallstep", "digits-ddpm", "text-gpt"]
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
Z = 1.959963984540054


# -- the helper: half-width of one row on a sub-design ------------------------------------------------
def halfwidth(preds: np.ndarray, target: np.ndarray, n_boot: int = 1000, seed: int = 0) -> float:
    """(ci_high - ci_low) / 2 of the package's LDS bootstrap: preds [S, M, Q], target [M, Q]."""
    from tda_core.metrics.stats import lds_bootstrap

    boot = lds_bootstrap(preds, target, n_boot=n_boot, seed=seed)
    return (boot["ci_high"] - boot["ci_low"]) / 2


def subdesign_halfwidths(preds_by_row: list[np.ndarray], subset: np.ndarray, n_subsets: int, n_seeds: int,
                         draws: int = 4, n_boot: int = 500, rng: np.random.Generator | None = None,
                         seed: int = 0) -> np.ndarray:
    """Mean half-width of each row on `draws` random choices of `n_subsets` of the M subsets, the target
    being the mean of the first `n_seeds` seeds' measurements (all subsets: one draw, no choice).

    preds_by_row: [S, M, Q] per row (the full design's predictions); subset: [M, R', Q]. Returns [rows].
    The same subset draws serve every row (paired across rows, as the board's rows are).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n_all = subset.shape[0]
    n_draws = 1 if n_subsets >= n_all else draws
    out = np.zeros(len(preds_by_row))
    for _ in range(n_draws):
        idx = np.arange(n_all) if n_subsets >= n_all else np.sort(rng.choice(n_all, n_subsets, replace=False))
        target = subset[idx, :n_seeds].mean(axis=1)
        out += [halfwidth(p[:, idx], target, n_boot, seed) for p in preds_by_row]
    return out / n_draws


def fit_laws(m: np.ndarray, hw: np.ndarray) -> dict:
    """Non-negative least-squares fits of law A (hw = a + b / sqrt(m)) and law B (hw^2 = c + d / m), residuals in
    hw units. Non-negative: a floor (a, c) or a slope (b, d) below 0 has no meaning, and an unconstrained fit
    of noisy points gives one (then any target is reached with enough subsets, which the data do not say)."""
    from scipy.optimize import nnls

    m, hw = np.asarray(m, dtype=np.float64), np.asarray(hw, dtype=np.float64)
    (a, b), _ = nnls(np.stack([np.ones_like(m), 1 / np.sqrt(m)], axis=1), hw)
    (c, d), _ = nnls(np.stack([np.ones_like(m), 1 / m], axis=1), hw ** 2)
    res_a = hw - (a + b / np.sqrt(m))
    res_b = hw - np.sqrt(np.maximum(c + d / m, 0.0))
    return {"A": (float(a), float(b)), "B": (float(c), float(d)), "res_A": res_a, "res_B": res_b}


def predict(law: str, params: tuple, m) -> np.ndarray:
    p, q = params
    m = np.asarray(m, dtype=np.float64)
    return p + q / np.sqrt(m) if law == "A" else np.sqrt(np.maximum(p + q / m, 0.0))


def subsets_needed(law: str, params: tuple, target: float) -> float:
    """Smallest m with predicted half-width <= target (inf if the law's floor is at or above it)."""
    p, q = params
    if law == "A":
        if p >= target:
            return math.inf
        return 1.0 if q <= 0 else (q / (target - p)) ** 2
    if p >= target ** 2:
        return math.inf
    return 1.0 if q <= 0 else q / (target ** 2 - p)


# -- the run's data ---------------------------------------------------------------------------------
def lds_rows(exp, metrics: dict) -> list[tuple[str, str, list]]:
    """(method, variant, canonical score arrays) of every ok LDS row of metrics.json."""
    from tda_core.metrics.rows import row_inputs
    from tda_core.scores import method_scores

    wanted = {(r["method"], r["variant"]) for r in metrics["results"] if r["metric"] == "lds" and r["status"] == "ok"}
    rows, seen = [], set()
    for method in dict.fromkeys(r["method"] for r in metrics["results"] if r["metric"] == "lds"):
        scores = method_scores(exp, method)
        if not scores.ok:
            continue
        inputs = row_inputs("lds", scores, n_models=exp.cfg["seeds"])
        for label, _, arrays in inputs.values():
            if (method, label) in wanted and (method, label) not in seen:
                seen.add((method, label))
                rows.append((method, label, arrays))
    return rows


def row_predictions(arrays: list, masks: np.ndarray) -> np.ndarray:
    """[S, M, Q] as evaluate_lds builds them from a row's canonical arrays (row_inputs: [Q, N] each)."""
    from tda_core.metrics.lds import group_predictions

    return np.stack([group_predictions(a, masks) for a in arrays])


def parse_snakemake_log(path) -> dict:
    """Per job: rule, wildcards, seconds from its start line to its "Finished" line; and the run's wall time."""
    ts, cur, jobs, first, last = None, None, {}, None, None
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]", line)
        if m:
            ts = datetime.strptime(re.sub(r"\s+", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
            first, last = first or ts, ts
            continue
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            cur = {"rule": m.group(1), "start": ts, "wildcards": {}}
            continue
        m = re.match(r"^\s+jobid: (\d+)", line)
        if m and cur is not None:
            jobs[m.group(1)] = cur
            continue
        m = re.match(r"^\s+wildcards: (.*)", line)
        if m and cur is not None:
            cur["wildcards"] = dict(kv.split("=", 1) for kv in m.group(1).split(", ") if "=" in kv)
            continue
        m = re.match(r"^Finished job(?:id:)? (\d+)", line)
        if m and m.group(1) in jobs:
            jobs[m.group(1)]["seconds"] = (ts - jobs[m.group(1)]["start"]).total_seconds()
    done = [j for j in jobs.values() if "seconds" in j]
    return {"jobs": done, "wall_s": (last - first).total_seconds() if first else None, "first": first, "last": last}


def _wall_times(obj) -> list[float]:
    if isinstance(obj, dict):
        return [float(v) for k, v in obj.items() if k == "wall_time_s" and isinstance(v, (int, float))] + \
               [x for k, v in obj.items() if k != "wall_time_s" for x in _wall_times(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _wall_times(v)]
    return []


def experiment_cost(results: Path, name: str, cfg: dict, smk: dict | None, startup_s: float) -> dict:
    """Per-model training seconds, shard start-up, fixed job seconds of one experiment (see the docstring)."""
    import torch
    from tda_core import io

    gt = cfg["groundtruth"]
    shards = sorted((results / name / "groundtruth").glob("shard*.npz"))
    walls, models = [], 0
    for p in shards:
        arrays, meta = io.load_npz(p)
        walls.append(float(meta["wall_time_s"]))
        models += arrays["query"].shape[0] * arrays["query"].shape[1]
    per_model = sum(walls) / models
    out = {"per_model_s": per_model, "shard_wall_s": sum(walls), "n_shards": len(shards),
           "shard_size": gt["shard_size"]}
    if smk is not None:
        mine = [j for j in smk["jobs"] if j["wildcards"].get("exp") == name]
        shard_jobs = [j for j in mine if j["rule"] == "train_shard"]
        out["shard_job_s"] = sum(j["seconds"] for j in shard_jobs)
        out["startup_s"] = max(0.0, (out["shard_job_s"] - sum(walls)) / max(len(shard_jobs), 1))
        out["fixed_s"] = sum(j["seconds"] for j in mine if j["rule"] != "train_shard")
        out["source"] = "snakemake log"
        return out
    # estimate: the in-process wall times the artifacts record + a start-up per job log
    inproc = 0.0
    for p in (results / name).rglob("*.json"):
        if "groundtruth" in p.parts:
            continue
        try:
            inproc += sum(_wall_times(json.loads(p.read_text())))
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    for p in (results / name / "models").glob("seed*.pt"):
        inproc += float(torch.load(p, weights_only=False, map_location="cpu").get("meta", {}).get("wall_time_s", 0.0))
    n_jobs = sum(1 for p in (results / "logs" / name).glob("*.log") if not p.name.startswith("shard"))
    out.update(startup_s=startup_s, shard_job_s=sum(walls) + len(shards) * startup_s,
               fixed_s=inproc + n_jobs * startup_s, source=f"estimate (artifact wall_time_s + {startup_s:g} s x {n_jobs} jobs)")
    return out


def design_seconds(cost: dict, m: float, k: int) -> float:
    """Job seconds of the experiment with m subsets x k seeds per subset."""
    return cost["fixed_s"] + math.ceil(m / cost["shard_size"]) * cost["startup_s"] + m * k * cost["per_model_s"]


# -- main -----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results", help="a finished default run's results folder")
    ap.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    ap.add_argument("--out", default="halfwidth.png", help="plot of half-width (median, max row) vs minutes")
    ap.add_argument("--snakemake-log", default=None, help="snakemake's console output of the same run (job times)")
    ap.add_argument("--startup-s", type=float, default=7.0, help="per-job start-up when there is no snakemake log")
    ap.add_argument("--draws", type=int, default=4, help="random subset draws per fraction below 1")
    ap.add_argument("--n-boot", type=int, default=500, help="bootstrap replicates per sub-design (the check uses 1000)")
    ap.add_argument("--target", type=float, default=0.04)
    ap.add_argument("--json", default=None, help="also write every number to this JSON file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from tda_core.api import Experiment
    from tda_core.metrics.stats import variance_components

    results = Path(args.results)
    smk = parse_snakemake_log(args.snakemake_log) if args.snakemake_log else None
    if smk:
        print(f"snakemake log: {len(smk['jobs'])} jobs, run {smk['first']} - {smk['last']} ({smk['wall_s'] / 60:.2f} min)")
    report, table = {}, []
    for name in args.experiments:
        t0 = time.time()
        cfg = json.loads((results / name / "config.json").read_text())
        cfg["results_dir"] = str(results)
        exp = Experiment(cfg)
        metrics = json.loads((results / name / "metrics.json").read_text())
        gt = np.load(results / name / "groundtruth" / "measurements.npz")
        masks, subset = gt["masks"], gt["subset"].astype(np.float64)
        n_all, n_seeds_all = subset.shape[0], subset.shape[1]
        rows = lds_rows(exp, metrics)
        preds = [row_predictions(a, masks) for _, _, a in rows]
        labels = [f"{m} ({v})" for m, v, _ in rows]

        # 1. check: the full design reproduces metrics.json
        board = {(r["method"], r["variant"]): (r["ci_high"] - r["ci_low"]) / 2
                 for r in metrics["results"] if r["metric"] == "lds" and r["status"] == "ok"}
        full = np.array([halfwidth(p, subset.mean(axis=1), 1000, 0) for p in preds])
        ref = np.array([board[(m, v)] for m, v, _ in rows])
        worst_diff = float(np.max(np.abs(full - ref)))
        print(f"\n== {name}: {n_all} subsets x {n_seeds_all} seeds, {subset.shape[2]} queries, {len(rows)} LDS rows")
        print("  check, full design (n_boot 1000, seed 0) vs metrics.json half-width:")
        for lab, x, y in zip(labels, full, ref):
            print(f"    {lab:36s} {x:.5f}  {y:.5f}")
        print(f"  max |difference| {worst_diff:.2e}")

        # sub-designs: fractions of subsets x first k seeds
        rng = np.random.default_rng(12345)
        sizes = sorted({max(4, round(f * n_all)) for f in FRACTIONS})
        grid = {}  # (m, k) -> [rows]
        for k in range(1, n_seeds_all + 1):
            for m in sizes:
                grid[(m, k)] = subdesign_halfwidths(preds, subset, m, k, args.draws, args.n_boot, rng)
        # the sub-design grid uses n_boot args.n_boot; at the full design the curve takes the 1000-replicate value
        grid[(n_all, n_seeds_all)] = full

        cost = experiment_cost(results, name, cfg, smk, args.startup_s)
        sec_now = design_seconds(cost, n_all, n_seeds_all)

        # 3. fits per row, each k
        worst, median = int(np.argmax(full)), int(np.argsort(full)[len(full) // 2])
        per_k = {}
        for k in range(1, n_seeds_all + 1):
            ms = np.array(sizes, dtype=np.float64)
            hw = np.stack([grid[(m, k)] for m in sizes])  # [points, rows]
            fits = [fit_laws(ms, hw[:, r]) for r in range(len(rows))]
            rms = {law: float(np.sqrt(np.mean([np.mean(f[f"res_{law}"] ** 2) for f in fits]))) for law in "AB"}
            law = min(rms, key=rms.get)
            need = max(subsets_needed(law, f[law], args.target) for f in fits)
            need_ab = {x: max(subsets_needed(x, f[x], args.target) for f in fits) for x in "AB"}
            need_med = float(np.median([subsets_needed(law, f[law], args.target) for f in fits]))
            per_k[k] = {"law": law, "rms": rms, "fits": fits, "need": need, "need_median_row": need_med, "need_ab": need_ab,
                        "hw": hw, "seconds": design_seconds(cost, math.ceil(need), k) if np.isfinite(need) else math.inf}
        cur = per_k[n_seeds_all]
        best_k = min(per_k, key=lambda k: per_k[k]["seconds"])
        print(f"  fits at {n_seeds_all} seeds (points m = {sizes}); law A: hw = a + b/sqrt(m), law B: hw^2 = c + d/m;"
              f" RMS over rows A {cur['rms']['A']:.4f}, B {cur['rms']['B']:.4f} -> law {cur['law']}")
        for tag, r in (("worst", worst), ("median", median)):
            f = cur["fits"][r]
            print(f"    {tag:6s} row {labels[r]:34s} hw {np.round(cur['hw'][:, r], 4).tolist()}"
                  f"  A a={f['A'][0]:+.4f} b={f['A'][1]:.4f} res {np.round(f['res_A'], 4).tolist()}"
                  f"  B floor={math.sqrt(max(f['B'][0], 0)):.4f} d={f['B'][1]:.4f} res {np.round(f['res_B'], 4).tolist()}")
        print(f"    subsets for every row <= {args.target}: law A {cur['need_ab']['A']:.0f}, law B {cur['need_ab']['B']:.0f}"
              f" (median row: {cur['need_median_row']:.0f})")
        stuck = [f"{labels[r]} (A floor {f['A'][0]:.3f}, B floor {math.sqrt(f['B'][0]):.3f})"
                 for r, f in enumerate(cur["fits"]) if not np.isfinite(subsets_needed(cur["law"], f[cur["law"]], args.target))]
        if stuck:
            print(f"    rows whose fitted floor is >= {args.target} (law {cur['law']}): {'; '.join(stuck)}")
        for k in range(1, n_seeds_all):
            print(f"    {k} seed(s): median / max hw at m={n_all}: {np.median(grid[(n_all, k)]):.4f} / "
                  f"{np.max(grid[(n_all, k)]):.4f}; subsets needed {per_k[k]['need']:.0f} "
                  f"({per_k[k]['seconds'] / 120:.1f} min)")
        comp = variance_components(preds[worst], subset.mean(axis=1), n_boot=300)
        q_floor = Z * math.sqrt(comp["var_between_queries"])
        s_part = Z * math.sqrt(comp["var_subsets"])
        print(f"  worst row's variance components: query part (floor) hw {q_floor:.4f}, subset part hw {s_part:.4f}"
              f" (at m={n_all}), joint hw {Z * math.sqrt(comp['var_joint']):.4f}")
        print(f"  cost ({cost['source']}): {cost['per_model_s']:.3f} s per (subset x seed) model, start-up "
              f"{cost['startup_s']:.1f} s per shard job, fixed {cost['fixed_s']:.0f} job-s; now {sec_now:.0f} job-s"
              f" = {sec_now / 120:.2f} min on 2 cores   [{time.time() - t0:.0f} s]")

        curve = []
        for (m, k), hw in sorted(grid.items()):
            curve.append({"subsets": m, "seeds": k, "median": float(np.median(hw)), "max": float(np.max(hw)),
                          "minutes": design_seconds(cost, m, k) / 120})
        report[name] = {"rows": labels, "full_halfwidth": full.tolist(), "metrics_json_halfwidth": ref.tolist(),
                        "check_max_abs_diff": worst_diff, "cost": cost, "curve": curve,
                        "query_floor_worst_row": q_floor, "subset_part_worst_row": s_part,
                        "fits": {k: {"law": v["law"], "rms": v["rms"], "subsets_needed": v["need"],
                                     "subsets_needed_A_B": v["need_ab"],
                                     "minutes_needed": v["seconds"] / 120,
                                     "worst": {"A": v["fits"][worst]["A"], "B": v["fits"][worst]["B"]},
                                     "median": {"A": v["fits"][median]["A"], "B": v["fits"][median]["B"]}}
                                 for k, v in per_k.items()}}
        table.append({"name": name, "design": f"{n_all} x {n_seeds_all}", "med": float(np.median(full)),
                      "max": float(np.max(full)), "min_now": sec_now / 120, "need": cur["need"],
                      "min_need": cur["seconds"] / 120, "sec_now": sec_now, "sec_need": cur["seconds"],
                      "need_ab": cur["need_ab"], "sec_ab": {x: design_seconds(cost, math.ceil(v), n_seeds_all)
                                                            if np.isfinite(v) else math.inf
                                                            for x, v in cur["need_ab"].items()},
                      "best": (best_k, per_k[best_k]["need"], per_k[best_k]["seconds"] / 120,
                               per_k[best_k]["seconds"]), "floor": q_floor, "law": cur["law"]})

    run_s = smk["wall_s"] if smk else sum(t["sec_now"] for t in table) / 2
    print(f"\nLDS CI half-width vs ground-truth cost (target {args.target}; minutes = job seconds / 2 cores;"
          f" run min = the whole default run, {run_s / 60:.1f} min now"
          f"{' measured' if smk else ' estimated'}, with only this experiment changed)")
    head = ("| experiment | subsets x seeds now | median / max hw now | min now (run min) | subsets for max <= "
            f"{args.target}, same seeds: law A / B | min needed A / B (run min A / B) | cheapest seeds, subsets, min "
            "(run min), best-fitting law | worst row's query floor |")
    print(head)
    print("|" + "---|" * 8)
    fmt = lambda x: "inf" if not np.isfinite(x) else f"{math.ceil(x):.0f}"  # noqa: E731
    fmt_min = lambda s: "inf" if not np.isfinite(s) else f"{s / 120:.1f}"  # noqa: E731
    run = lambda t, s: run_s * 2 + s - t["sec_now"]  # noqa: E731  (job seconds -> whole run, in "2-core seconds")
    for t in table:
        bk, bn, _, bs = t["best"]
        na, nb = t["need_ab"]["A"], t["need_ab"]["B"]
        sa, sb = t["sec_ab"]["A"], t["sec_ab"]["B"]
        print(f"| {t['name']} | {t['design']} | {t['med']:.3f} / {t['max']:.3f} | {t['min_now']:.1f} "
              f"({run_s / 60:.1f}) | {fmt(na)} / {fmt(nb)} | {fmt_min(sa)} / {fmt_min(sb)} "
              f"({fmt_min(run(t, sa))} / {fmt_min(run(t, sb))}) | {bk}, {fmt(bn)}, {fmt_min(bs)} "
              f"({fmt_min(run(t, bs))}), {t['law']} | {t['floor']:.3f} |")
    finite = [t for t in table if np.isfinite(t["best"][3])]
    total = run_s + sum(t["best"][3] - t["sec_now"] for t in finite) / 2
    print(f"whole default run with every reachable experiment at its cheapest design: {total / 60:.1f} min "
          f"(unreachable at this query count: {', '.join(t['name'] for t in table if t not in finite) or 'none'})")

    _plot(report, args.target, args.out)
    print(f"plot: {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "experiments": report}, indent=1, default=float))
    return 0


def _plot(report: dict, target: float, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for i, (name, rep) in enumerate(report.items()):
        color = f"C{i}"
        k_all = max(c["seeds"] for c in rep["curve"])
        for ax, key in zip(axes, ("max", "median")):
            pts = sorted((c["minutes"], c[key]) for c in rep["curve"] if c["seeds"] == k_all)
            ax.plot(*zip(*pts), "o-", color=color, label=f"{name} ({k_all} seeds)")
            if k_all > 1:
                one = sorted((c["minutes"], c[key]) for c in rep["curve"] if c["seeds"] == 1)
                ax.plot(*zip(*one), "x:", color=color, alpha=0.6)
    for ax, key in zip(axes, ("max", "median")):
        ax.axhline(target, ls="--", color="k", lw=1)
        ax.set_xlabel("minutes of the experiment's jobs on 2 cores (job seconds / 2 / 60)")
        ax.set_title(f"{key} LDS row: CI half-width (o- all seeds, x: 1 seed per subset)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("95% CI half-width")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
