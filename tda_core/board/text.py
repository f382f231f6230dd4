"""The board's words: the legend, the text under each section's title and the per-table lines on the ground
truth's noise and signal."""
from __future__ import annotations

import pandas as pd

from ..meta_eval import MIN_RESAMPLED_ROWS
from ..metrics.compare import RANK_NOTE, SEED_NOTE
from ..metrics.registry import METRICS
from ..model_fit import DID_NOT_LEARN_MARGIN
from .cells import LOW_SIGNAL_CEILING, ceiling_cell, ceiling_state
from .collect import removal_k

LEGEND = [
    "**Value [95% CI]**: the metric, with a bootstrap interval that resamples queries and training subsets "
    "jointly (and the scoring seeds of per-seed rows): the uncertainty of everything that was sampled.",
    "**reliability** (r1): how well one seed's retrained models agree with another seed's: mean over seed "
    "pairs and queries of the Spearman across subsets (clipped at 0).",
    "**ceiling**: about the LDS a perfect predictor of the true (infinite-seed) mean reaches against this "
    "target, sqrt(R' r1 / (1 + (R'-1) r1)) with R' seeds per subset (Spearman-Brown, then attenuation); "
    "*not resolved* (no number, no line in the plot) when the 95% CI of r1 includes 0: the ground truth cannot "
    "say how high an LDS it allows, which is not a ceiling of 0. Experiments with a ceiling under 0.5 are "
    "flagged *low signal*.",
    "**low signal** (any metric): its target's own reliability is too low to order methods (lds, dlds_mean, "
    "lds_kendall: ceiling under 0.5 or r1 not distinguishable from 0; dlds_variance, dlds_w2, LOO: split-half "
    "reliability under 0.25 or not computable). Its rows show values and CIs only: no rank interval, no ★.",
    "**split-half reliability** (variance, W2, LOO): the same metric between two halves of the seeds; "
    "Spearman-Brown does not apply to those.",
    "**rank [interval]** and **tied** (★): " + RANK_NOTE + " (5% level).",
    "**paired tests** between rows: the difference's own variance for the crossed queries x subsets design, "
    "and " + SEED_NOTE + ".",
    "**not tested** (rank 'by value'): a per-seed row with 2 scoring seeds takes part in no paired test (its "
    "seed effect would have 1 degree of freedom); it keeps its value and CI, and the tested rows' upper rank "
    "bounds count it. Seed-averaged, ensemble and fixed-seed rows are tested conditional on the scoring models.",
    "**variant**: per-seed = each seed's own model scores itself; seed-averaged = the R seeds' scores "
    "averaged; ensemble = one estimator built from all R models; fixed-seed = seed 0's scores stand in for "
    "every seed. **models**: trained models the scores used (1 or R).",
    "**aliases**: other methods whose scores are identical for this metric (one row for all of them).",
    "**test accuracy (chance)**, **test loss (label prior)**: the full-data models on the test split, mean over "
    "seeds, beside a model that learned nothing (always the most frequent training class; the training label "
    "frequencies as prediction, or the training mean for regression; a language model: next-token accuracy and "
    "the loss per token, beside the training tokens' unigram frequencies, and the perplexities, exp of the losses). "
    f"**model**: *did not learn* when the accuracy is below chance + {DID_NOT_LEARN_MARGIN} (regression and "
    "language models: the loss is not below the prior's); the attributions of such an experiment explain a model "
    "that did not learn.",
    "**p**: a p-value; '< 0.001' when below 0.001 (a bootstrap p of 0 only says 'below 1/B', never 'exactly 0').",
    "Overview: **overview rank** and **mean rank percentile** (1 = best in every shared experiment, 0 = worst) over "
    "the *shared experiments*, the ones every ranked row ran on; **ran on**: k of n = the row has a ranked value in "
    "k of the n experiments; **not ranked because**: why a row (values shown) is left out of the ranking.",
    "**note**: e.g. a method that cannot follow the training stages of a multi-stage run and uses all N examples.",
    "Attribution wall time is the attribute job's, per seed file, the same in every table of an experiment; a "
    "curvature fit that the method shares with others (one fit_curvature job) is counted in full, as if the "
    "method ran alone.",
]


OVERVIEW_TEXT = (
    "Cells: LDS #rank in that experiment's table (★ tied with the best). Rows are ranked only over the shared "
    "experiments, which every ranked row ran on (the set that uses the most values, experiments x rows): mean over "
    "them of the row's rank percentile among the ranked rows (1 = best, 0 = worst), so no row gains from the "
    "experiments it skipped. ran on: experiments where the row has a ranked value. Rows missing a shared experiment "
    "are listed with their values, unranked, with the reason.")


REMOVAL_TEXT = (
    "Per sampled query, the k training examples with the largest scores of the method (averaged over its scoring "
    "seeds) are removed and the model retrained on fresh seeds (disjoint from the scoring and pruning seeds; the "
    "full-data step count unless removal.steps says otherwise). drop k=...: f(z_q) of the full-data models retrained "
    "on the same seeds minus f(z_q) without those k, mean over queries and seeds [95% bootstrap CI resampling both]; "
    "higher = the method's top examples matter more; ★ = tied with the best at that k (paired bootstrap, Holm). "
    "random-removal: k random examples per query (the baseline; a useful method beats it). brittleness: median over "
    "the queries the retrained full-data models classify correctly of the smallest k whose removal flips the "
    "prediction (margin averaged over seeds < 0) [95% CI]; '>k' when most queries never flip within the grid; lower = "
    "fewer removals suffice = better. flipped by k: share of those queries flipped. Curve: removal.png per experiment.")


SIGNAL_TEXT = (
    "Reliability and ceiling of the LDS target; 'low signal': ceiling under "
    f"{LOW_SIGNAL_CEILING} (method differences there are hard to resolve). Power: subsets x seeds "
    "per subset this ground truth would need, extrapolated from its own noise.")

CLAIMS_TEXT = (
    "Each row: a paired test on this run's numbers. 'A beats B' claims: holds / reversed / not "
    "significant; equivalence claims (TOST, margin in the CI column): equivalent / not equivalent "
    "(which side is better) / inconclusive; pruning claims: a t-test over scoring groups. Verdicts at "
    "5% after Holm over every test of this table (raw and adjusted p shown). Nothing was tuned to "
    "make a claim hold.")

AGREEMENT_TEXT = (
    "Spearman rho between the method orderings of two metrics over the rows both rank "
    "(aliases count as their row), with a 95% bootstrap interval; agree: interval above 0.5, partly: "
    "above 0, no agreement shown: the interval covers 0, disagree: below 0; too few rows: fewer than "
    f"{MIN_RESAMPLED_ROWS} common rows where rows must be resampled (no interval). Heatmap: "
    "leaderboard_metric_agreement.png.")

TRACKS_TEXT = ("distributional: subset models on fresh seeds (lds); fixed_seed: each scoring "
               "seed's model retrained with the removed examples zero-weighted, same init "
               "and batches (lds_fixed_seed).")

# the pruning sections, keyed as tables.pruning_tables keys its tables
PRUNING_TITLES = {"test_accuracy": "pruning: test accuracy", "test_loss": "pruning: test loss",
                  "class_coverage": "pruning: class coverage (smallest fraction of a class kept)"}
PRUNING_TEXT = ("Mean [95% t-interval] over the retrain seeds (fresh seeds, disjoint from the scoring seeds; "
                "scoring models and retrain seeds in disjoint groups, tda_core/pruning.py).")
PRUNING_COVERAGE_TEXT = ("Per pruned set, the smallest fraction of one class (training label) left in the "
                         "training set over the job's runs; near 0: the selection emptied that class.")

COST_TEXT = "Wall time per seed file and peak memory of the attribute job."


def overview_scope(shared: list, experiments: list) -> str:
    """The overview's last sentence: which experiments it ranks over."""
    return (f" Ranked over {len(shared)} of {len(experiments)} experiments: {', '.join(shared)}."
            if shared else " No experiment is shared by two ranked rows: nothing is ranked.")


def metric_note(metric: str) -> str:
    """What a metric's cell means (its registry row's note), shown above its tables."""
    k = removal_k(metric)
    if k is not None:
        return METRICS["topk_drop"].note.replace("the k ", f"the k = {k:g} ")
    return METRICS[metric].note if metric in METRICS else ""


def noise_from_rows(part: pd.DataFrame) -> dict:
    ok = part[part.status == "ok"]
    if ok.empty:
        return {}
    first = ok.iloc[0]
    return {k: first[k] for k in ("reliability", "ceiling", "split_half_reliability") if pd.notna(first[k])}


def signal_line(part: pd.DataFrame) -> str:
    """The per-metric low-signal marker (tda_core.metrics.signal), from the rows' gate."""
    low = part[part.low_signal == True]  # noqa: E712 (object column: True, False or None)
    if low.empty:
        return ""
    return (f"**Low signal** ({low.signal_reason.iloc[0]}): values only, no rank intervals or ties "
            "(ranks order the values).")


def noise_line(noise: dict) -> str:
    parts = []
    if noise.get("reliability") is not None:
        parts.append(f"reliability r1 {noise['reliability']:.3f}")
    ceiling, why = ceiling_state(noise)
    if ceiling is not None:
        flag = " (low signal)" if ceiling < LOW_SIGNAL_CEILING else ""
        parts.append(f"ceiling {ceiling:.3f}{flag}")
    elif why is not None:
        parts.append(f"ceiling {ceiling_cell(noise)} (low signal)")
    if noise.get("split_half_reliability") is not None:
        parts.append(f"split-half reliability {noise['split_half_reliability']:.3f}")
    if noise.get("target_note") and why is None:  # an unresolved ceiling's note is in its cell
        parts.append(noise["target_note"])
    return "Ground truth: " + ", ".join(parts) + "." if parts else ""

