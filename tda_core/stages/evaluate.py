"""Stage 4: score the methods' attributions with the metrics against the ground truth."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from .. import io
from ..api import Experiment
from ..bundle import provenance
from ..claims import score_agreement
from ..errors import ArtifactError
from ..metrics.groundtruth import GroundTruth
from ..metrics.registry import get_metric, metric_reference, metric_target
from ..metrics.rows import board_rows, result_rows, row_inputs
from ..metrics.compare import power
from ..metrics.lds import group_predictions
from ..metrics.stats import variance_components
from ..scores import method_scores
from ..seeds import allocate
from ..tracking import tracked_run
from .common import result_head, score_dir_of


def compute(exp: Experiment, metric: str, method: str, score_dir, groundtruth_path, with_inputs: bool = False,
            loaded: GroundTruth | None = None):
    """One metric for one method (no side effects); a failed attribution gives a failed result.

    `loaded`: the measurements at `groundtruth_path`, read already (evaluate_experiment reads them once
    for every method and metric); None: read here.

    `score_dir`: the method's score folder (None: the layout's). With `with_inputs`, also the
    canonical score arrays of each row (tda_core.metrics.rows.row_inputs), which the experiment-level
    evaluation uses to fold rows that read identical scores. A metric with a reference target
    (registry.metric_reference; randomization) also reads that target's files beside its own, as
    GroundTruth.reference; if they failed, so does the result.
    """
    target = metric_target(metric)
    scores = method_scores(exp, method, target, score_dir)
    result = result_head(exp, method, metric, scores)
    inputs = None
    reference, ref = metric_reference(metric), None  # randomization: the query scores it compares with
    ok = scores.ok
    if ok and reference is not None:
        ref = method_scores(exp, method, reference, score_dir)
        if not ref.ok:
            result.update(status="failed", reason=f"{reference} attribution: {ref.failed_reason}")
            ok = False
    if ok:
        if loaded is None:
            loaded = GroundTruth.load(groundtruth_path, exp.hash)
        groundtruth = replace(loaded, reference=ref, **target_groundtruth(exp, target, scores.sidecars))
        result.update(status="ok", **get_metric(metric)(scores, groundtruth))
        if target == "query" and groundtruth_path:  # metrics against the subset models
            result["groundtruth_steps"] = groundtruth.meta.get("groundtruth_steps", "same_epochs")
        notes = [s["note"] for s in scores.sidecars if s.get("note")]
        if notes:
            result["note"] = "; ".join(filter(None, [result.get("note"), notes[0]]))
        if with_inputs:
            inputs = row_inputs(metric, scores, n_models=exp.cfg["seeds"])
    return (result, inputs) if with_inputs else result


def evaluate_experiment(exp: Experiment, metrics: list[str], methods: list[str], score_dirs: dict | None,
                        groundtruth_path, out, tracking: dict) -> list[dict]:
    """Every metric of every method of one experiment in one job: the workflow's path.

    One process start and one W&B run per experiment instead of one per method (process start-up,
    mostly importing torch, is most of a small evaluation's cost). `score_dirs` maps a method to its
    score folder (default: the layout's scores/{method}); each metric reads the files of its own
    target there, named by tda_core.layout.
    """
    per_metric: dict[str, list] = {m: [] for m in metrics}
    loaded = GroundTruth.load(groundtruth_path, exp.hash)  # once for every method, metric and figure below
    for method in tqdm(methods, desc=f"{exp.name} evaluate", leave=False, disable=None):
        score_dir = score_dir_of(exp, method, score_dirs)
        for metric in metrics:
            per_metric[metric] += result_rows(*compute(exp, metric, method, score_dir, groundtruth_path,
                                                       with_inputs=True, loaded=loaded))
    rows, pairwise = board_rows(per_metric)
    bundle = {**provenance(exp, "evaluate"), "experiment": exp.name, **experiment_facts(exp),
              "seeds_used": seeds_used(exp, loaded if groundtruth_path else None), "noise": noise_figures(rows), "results": rows,
              "pairwise": pairwise}
    # the score vectors' correlation of the equivalence claims' method pairs (tda_core.claims)
    bundle["score_agreement"] = score_agreement(exp, methods, lambda m: score_dir_of(exp, m, score_dirs))
    fit = model_fit(exp)
    if fit:
        bundle["model_fit"] = fit
    if "lds" in metrics and groundtruth_path:
        bundle["power"] = lds_power(exp, rows, per_metric["lds"], bundle["noise"].get("lds", {}), loaded)
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "evaluate", f"{exp.name}/evaluate",
                     {"experiment": exp.name, "methods": methods, "metrics": metrics}) as run:
        run.summary_update({f"{r['method']}/{r['metric']}/{r['variant']}/{k}": v for r in rows for k, v in r.items()
                            if isinstance(v, (int, float, str)) and not isinstance(v, bool)})
        run.log_table("evaluation", results_table(rows))
    io.write_json(out, bundle)
    return rows


def experiment_facts(exp: Experiment) -> dict:
    """What the leaderboard needs to know about the experiment (its claims table picks experiments by these)."""
    spec = exp.spec
    return {"kind": spec.kind, "scenario": spec.scenario, "label_noise": spec.dataset["label_noise"],
            "seeds": spec.n_seeds, "n_subsets": spec.groundtruth.n_subsets,
            "seeds_per_subset": spec.groundtruth.seeds_per_subset, "groundtruth_steps": spec.groundtruth.steps}


def seeds_used(exp: Experiment, groundtruth: GroundTruth | None) -> dict:
    """The model seeds behind this bundle (tda_core.seeds): the scoring models', and the ground truth's
    subset models' as its file records them (pruning and removal record their retrain seeds in their
    own bundles). `groundtruth`: the evaluated measurements (None: the bundle has none)."""
    allocated = allocate(exp.cfg)
    out = {"scoring": allocated["scoring"]}
    if groundtruth is not None:
        meta = groundtruth.meta
        out["groundtruth"] = meta.get("subset_seeds", list(range(exp.cfg["groundtruth"]["seeds_per_subset"])))
        out["groundtruth_protocol"] = meta.get("groundtruth_protocol", 1)
        if "groundtruth_fixed" in allocated:
            out["groundtruth_fixed"] = allocated["groundtruth_fixed"]
    return out


def model_fit(exp: Experiment) -> dict:
    """The full-data models' test accuracy (classification; next-token accuracy of a language model) and test
    loss (a language model's per token, and its perplexity), mean over the seeds (from the model files' meta,
    written by train_full), beside what a model that learned nothing reaches (tda_core.model_fit.label_prior)
    and the did-not-learn verdict. Empty for diffusion experiments."""
    from ..model_fit import did_not_learn, label_prior

    kind = exp.spec.kind
    if kind not in ("classification", "regression", "language_model"):
        return {}
    metas = [exp.load_model_meta(seed) for seed in range(exp.cfg["seeds"])]
    fit = {}
    for key in ("test_accuracy", "test_loss", "test_perplexity"):
        values = [m.get(key) for m in metas]
        if values and all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
            fit[key] = float(np.mean(values))
            fit[f"{key}_per_seed"] = [float(v) for v in values]
    s = exp.splits
    fit.update(label_prior(kind, s.train_y.numpy(), s.test_y.numpy(),
                           n_classes=s.n_classes if kind == "language_model" else None))
    if kind == "language_model":
        fit["kind"] = kind  # did_not_learn judges a language model by its loss
    reason = did_not_learn(fit)
    return {**fit, "did_not_learn": reason is not None, "did_not_learn_reason": reason}


NOISE_KEYS = ("reliability", "reliability_ci_low", "reliability_ci_high", "ceiling", "ceiling_ci_low",
              "ceiling_ci_high", "target_seeds", "split_half_reliability", "target_note")


def noise_figures(rows: list[dict]) -> dict:
    """Per metric, the ground truth's own noise figures (the same for every method: taken from the first ok row)."""
    out = {}
    for r in rows:
        if r.get("status") == "ok" and r["metric"] not in out:
            out[r["metric"]] = {k: r[k] for k in NOISE_KEYS if r.get(k) is not None}
    return out


def lds_power(exp: Experiment, rows: list[dict], lds_rows: list, noise: dict, gt: GroundTruth,
              halfwidth: float = 0.03, ceiling: float = 0.7) -> dict:
    """Subsets x seeds per subset this experiment would need for a CI half-width of `halfwidth` and a
    ceiling of `ceiling` (tda_core.metrics.compare.power), from its own ground truth and its best LDS row."""
    best = next((r for r in rows if r["metric"] == "lds" and r.get("rank") == 1), None)
    arrays = next((a for r, a in lds_rows if best is not None and a is not None
                   and (r["method"], r["variant"]) == (best["method"], best["variant"])), None)
    if arrays is None:
        return {}
    preds = np.stack([group_predictions(a, gt.masks) for a in arrays])  # [S, M, Q]
    components = variance_components(preds, gt.subset.mean(axis=1), n_boot=300)
    plan = power(gt.subset, components, halfwidth, ceiling, reliability_result=noise or None)
    need = (f"{plan['subsets_needed'] if plan['subsets_needed'] is not None else '?'} subsets x "
            f"{plan['seeds_per_subset_needed'] if plan['seeds_per_subset_needed'] is not None else '?'} seeds "
            f"(now {exp.cfg['groundtruth']['n_subsets']} x {exp.cfg['groundtruth']['seeds_per_subset']}, "
            f"half-width {plan['halfwidth_now']:.3f} for {best['method']} ({best['variant']}))")
    return {**plan, "target_halfwidth": halfwidth, "target_ceiling": ceiling,
            "note": need + (f"; {plan['note']}" if plan.get("note") else "")}


def results_table(results: list[dict]):
    """The scalar fields of every result, one row each (for the W&B table)."""
    import pandas as pd

    cols = ["method", "metric", "variant", "models", "status", "value", "ci_low", "ci_high", "rank", "rank_ci_low",
            "rank_ci_high", "tied_with_best", "ceiling", "wall_time_s", "peak_memory_mb"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in results], columns=cols)


def target_groundtruth(exp: Experiment, target: str, sidecars: list[dict]) -> dict:
    """What a metric of another target needs besides the subset measurements (from the splits): the
    GroundTruth fields self_index and corrupted of train_self, none for the others."""
    if target != "train_self":
        return {}
    indices = [s.get("query_index") for s in sidecars]
    if any(i is None or i != indices[0] for i in indices):
        raise ArtifactError(f"{exp.name}: train_self score files disagree on (or lack) their query_index; rerun them")
    return {"self_index": np.asarray(indices[0]), "corrupted": exp.splits.corrupted}
