"""Pruning by attribution (the d-TDA ViT experiment; docs/design.md, section Evaluation).

With validation-target scores tau[v, i] (predicted change of loss(z_v) from training on z_i; see
tda_core.targets), removing z_i changes the mean validation loss by -mean_v tau[v, i]. The p% of
training examples with the largest mean_v tau[v, i] are those whose removal is predicted to lower the
validation loss most; they are removed and the model retrained.

Out-of-sample protocol. The R scoring models (full-data seeds 0..R-1) produce the scores; every
retrain uses fresh seeds (`pruning.retrain_seeds`, disjoint from 0..R-1), so no retrained model
shares an initialisation or batch order with a model that picked its removals. The full-data
baseline is retrained on the same fresh seeds (not the scoring models), and every pruned model
trains for the full-data run's step count (step-matched: the same number of optimiser steps and the
same lr schedule over fewer examples, i.e. more epochs), so the comparison isolates which examples
were removed rather than how long the model trained.

Scoring groups: the unit of replication. The R scoring models are split into G = R // m disjoint
groups of m = `pruning.ensemble_size` consecutive seeds (group g: seeds g*m .. g*m+m-1; R mod m
models left over are not used by pruning), and the S retrain seeds into G disjoint groups (retrain
seed s_k belongs to group k mod G). Each group is one independent replicate of the whole pruning
experiment: its own scoring models, its own retrain seeds. A claim compares the group means
(tda_core.claims.pruning_claims), so its test generalises over the draw of the scoring models
instead of conditioning on one selected set.

Variants, within group g (retrain seeds of the group: s_g):
    fixed  every scoring model r of the group picks a set from its own scores; each set is retrained
           with every seed of s_g (m x |s_g| runs)
    dtda   the scores averaged over the group's m models pick one set, retrained with every seed of s_g
    random removal (baseline) the set of (s_k, p) drawn independently of every method, for each s_k

Selection (`pruning.selection`): `unbalanced` removes the k examples with the largest benefit (the
paper's rule); `balanced` gives each class (by its training label) a quota of the k removals
proportional to its size (largest remainders) and removes the top of each class, so no class is
emptied. A job's variant token is the variant, with "-balanced" appended for the balanced selection.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

VARIANTS = ("fixed", "dtda")
SELECTIONS = ("unbalanced", "balanced")
VARIANT_TOKENS = tuple(v if sel == "unbalanced" else f"{v}-{sel}" for sel in SELECTIONS for v in VARIANTS)


def variant_token(variant: str, selection: str) -> str:
    """The job name of (variant, selection): 'dtda', 'dtda-balanced', ..."""
    return variant if selection == "unbalanced" else f"{variant}-{selection}"


def parse_variant_token(token: str) -> tuple[str, str]:
    """'dtda-balanced' -> ('dtda', 'balanced'); 'fixed' -> ('fixed', 'unbalanced')."""
    variant, _, selection = token.partition("-")
    selection = selection or "unbalanced"
    if variant not in VARIANTS or selection not in SELECTIONS:
        raise ConfigError(f"unknown pruning variant '{token}'; known: {', '.join(VARIANT_TOKENS)}")
    return variant, selection


def removal_benefit(val_scores: np.ndarray) -> np.ndarray:
    """[N]: predicted decrease of the mean validation loss when each training example is removed."""
    return np.asarray(val_scores, dtype=np.float64).mean(axis=0)


def n_removed(percent: float, n_train: int) -> int:
    return int(round(percent / 100.0 * n_train))


def select_removals(benefit: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the k examples with the largest benefit (ties: lower index first)."""
    order = np.argsort(-benefit, kind="stable")
    return np.sort(order[:k])


def select_balanced(benefit: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of k examples, class c contributing its quota k_c (k * n_c / N rounded by largest
    remainders, ties to the lower class; at most n_c) of its largest-benefit examples."""
    labels = np.asarray(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = k * sizes / sizes.sum()
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[:k - quota.sum()]] += 1
    picked = []
    for c, q in zip(classes, quota):
        members = np.flatnonzero(labels == c)
        picked.append(members[np.argsort(-benefit[members], kind="stable")[:q]])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def select(benefit: np.ndarray, k: int, selection: str, labels: np.ndarray | None = None) -> np.ndarray:
    if selection == "unbalanced":
        return select_removals(benefit, k)
    if selection == "balanced":
        return select_balanced(benefit, labels, k)
    raise ConfigError(f"unknown pruning selection '{selection}'; known: {', '.join(SELECTIONS)}")


def class_coverage(removed: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Per-class removed counts and the smallest fraction of a class kept (class collapse shows as ~0)."""
    labels = np.asarray(labels)
    sizes = np.bincount(labels, minlength=n_classes)
    removed_per_class = np.bincount(labels[np.asarray(removed, dtype=int)], minlength=n_classes)
    kept = np.where(sizes > 0, 1.0 - removed_per_class / np.maximum(sizes, 1), 1.0)
    return {"removed_per_class": removed_per_class.tolist(), "min_class_fraction_kept": float(kept.min()),
            "least_kept_class": int(np.argmin(kept))}


def scoring_groups(n_scoring: int, ensemble_size: int) -> list[list[int]]:
    """Disjoint groups of `ensemble_size` consecutive scoring seeds (the leftover R mod m seeds unused);
    fewer seeds than `ensemble_size`: one group of all of them (the claims then mark it not testable)."""
    if ensemble_size < 1:
        raise ConfigError("pruning.ensemble_size must be >= 1")
    n_groups = n_scoring // ensemble_size
    if n_groups < 1:
        return [list(range(n_scoring))]
    return [list(range(g * ensemble_size, (g + 1) * ensemble_size)) for g in range(n_groups)]


def retrain_groups(seeds: list[int], n_groups: int) -> list[list[int]]:
    """Retrain seed k goes to group k mod G (disjoint groups; each needs one seed at least)."""
    if len(seeds) < n_groups:
        raise ConfigError(f"{len(seeds)} pruning retrain seeds for {n_groups} scoring groups: each group needs one")
    return [list(seeds[g::n_groups]) for g in range(n_groups)]


def variant_scores(per_seed: list[np.ndarray], variant: str, seed: int, group: list[int] | None = None) -> np.ndarray:
    """The [V, N] scores a variant ranks with: seed r's own, or the mean over the group's seeds (d-TDA;
    all seeds when `group` is None). A pooled method (one array for every seed) gives that array."""
    if variant == "fixed":
        return per_seed[seed] if len(per_seed) > 1 else per_seed[0]
    if variant == "dtda":
        if len(per_seed) == 1:
            return per_seed[0]
        return np.mean([per_seed[r] for r in group] if group is not None else per_seed, axis=0)
    raise ConfigError(f"unknown pruning variant '{variant}'; known: {', '.join(VARIANTS)}")


def random_removals(n_train: int, k: int, seed: int, percent: float) -> np.ndarray:
    """The random-removal baseline's set for (seed, p): seeded, independent of every method."""
    rng = np.random.default_rng([seed, int(round(percent * 1000)), 4242])
    return np.sort(rng.choice(n_train, size=k, replace=False))


def retrain_seeds(n_scoring: int, spec) -> list[int]:
    """The retrain seeds of `pruning.retrain_seeds`: a count S means R..R+S-1, a list is taken as is."""
    if isinstance(spec, int):
        return list(range(n_scoring, n_scoring + spec))
    seeds = [int(s) for s in spec]
    if set(seeds) & set(range(n_scoring)):
        raise ConfigError(f"retrain seeds {seeds} overlap the scoring seeds 0..{n_scoring - 1}")
    return seeds


def percent_tag(percent: float) -> str:
    """p as it appears in file names: 10 -> '10', 12.5 -> '12.5'."""
    return f"{percent:g}"
