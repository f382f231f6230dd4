"""Top-k removal and brittleness (dattri's brittleness, kronfluence / OpenDataVal removal curves).

For a query z_q and a method's query scores tau[q, i] (the predicted change of f(z_q) from training on
z_i; tda_core.targets), the k training examples with the largest tau[q, i] are those whose inclusion
raised f(z_q) most, so removing them should lower it most. Each (method, query, k) set is removed and
the model retrained on fresh seeds (`removal.retrain_seeds`: disjoint from the scoring seeds 0..R-1
and from pruning's), for the full-data run's step count by default (`removal.steps`), as pruning does.
The full-data models are retrained on the same seeds, so every drop is a paired difference:

    drop_k(q, s) = f(z_q; full, seed s) - f(z_q; without the top k of q, seed s)

A method scores the mean drop over the sampled queries and seeds at each k (higher is better: its
top-k matter more), with a 95% bootstrap interval resampling queries and seeds jointly; every method is
retrained on the same queries and seeds and the draws are shared, so the comparison is paired.
Random removal (k examples drawn per query, independent of every method) is the baseline.

Brittleness (classification): among the sampled queries the retrained full-data models classify
correctly (margin averaged over seeds > 0), the smallest k of the grid for which the margin averaged
over the retrained seeds turns negative (the prediction flips); queries that never flip within the
grid are censored at the largest k (counted as k_max + 1). Reported: the fraction flipped by each k
and the median smallest k (lower is better: fewer removals suffice), with a 95% bootstrap interval that
resamples queries and retrain seeds jointly (eligibility and flips recomputed from each replicate's
seed-mean margins; a retrain seed shifts every query's margin, so it is a unit of the design).

This module is torch-free: the Snakefile imports it to build the DAG.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

LEVEL = 0.95
N_BOOT = 1000
RANDOM_BASELINE = "random-removal"  # the board row of the random-removal baseline (a safe name)


def k_values(ks, n_train: int) -> list[int]:
    """The removal sizes: an integer >= 1 is a count, a number in (0, 1) a fraction of n_train."""
    out = []
    for k in ks:
        n = int(round(k * n_train)) if 0 < k < 1 else int(k)
        if k <= 0 or (k >= 1 and k != int(k)):
            raise ConfigError(f"removal.ks: {k} is neither a count (integer >= 1) nor a fraction in (0, 1)")
        if not 1 <= n < n_train:
            raise ConfigError(f"removal.ks: {k} removes {n} of the {n_train} training examples; use 1..{n_train - 1}")
        out.append(n)
    return sorted(set(out))


def retrain_seeds(n_scoring: int, spec, pruning_seeds=()) -> list[int]:
    """`removal.retrain_seeds`: a count m takes the first m seeds >= R that pruning does not use; a list is
    taken as is (an overlap with 0..R-1 or with pruning's seeds is a config error)."""
    taken = set(range(n_scoring)) | {int(s) for s in pruning_seeds}
    if isinstance(spec, int):
        seeds, s = [], n_scoring
        while len(seeds) < spec:
            if s not in taken:
                seeds.append(s)
            s += 1
        return seeds
    seeds = [int(s) for s in spec]
    overlap = sorted(set(seeds) & taken)
    if overlap:
        raise ConfigError(f"removal.retrain_seeds {overlap} overlap the scoring seeds 0..{n_scoring - 1} or "
                          "pruning's retrain seeds; removal retrains on fresh seeds")
    return seeds


def sample_queries(n_query: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of the n query examples (of n_query) that removal explains (all if n >= n_query)."""
    if n >= n_query:
        return np.arange(n_query)
    return np.sort(np.random.default_rng([seed, 2718]).choice(n_query, size=n, replace=False))


def top_k(scores_row: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the k largest scores (the most positive: removing them should lower f most;
    ties: lower index first)."""
    order = np.argsort(-np.asarray(scores_row, dtype=np.float64), kind="stable")
    return np.sort(order[:k])


def random_set(n_train: int, k: int, query: int, seed: int = 0) -> np.ndarray:
    """The random baseline's k examples for one query: seeded by (query, k), independent of every method."""
    return np.sort(np.random.default_rng([seed, int(query), int(k), 5151]).choice(n_train, size=k, replace=False))


def removal_scores(per_seed: list[np.ndarray]) -> np.ndarray:
    """[Q, N]: the scores that rank the removals, averaged over the scoring seeds (one file: itself)."""
    return np.mean(np.asarray(per_seed, dtype=np.float64), axis=0)


def bootstrap_indices(n_queries: int, n_seeds: int, n_boot: int = N_BOOT,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shared draws ([B, Q] query and [B, S] seed indices): a pure function of the shape, so every method's
    replicates resample the same queries and seeds (paired comparison)."""
    rng = np.random.default_rng([seed, n_queries, n_seeds, 777])
    return rng.integers(0, n_queries, (n_boot, n_queries)), rng.integers(0, n_seeds, (n_boot, n_seeds))


def mean_drop(full: np.ndarray, removed: np.ndarray, n_boot: int = N_BOOT) -> dict:
    """full, removed [S, Q] (f of the sampled queries per retrain seed): the mean paired drop, its 95%
    bootstrap interval (queries and seeds resampled jointly) and replicates, and the 95% Student-t
    interval over seeds of the query-mean drop."""
    from scipy import stats

    diff = np.asarray(full, dtype=np.float64) - np.asarray(removed, dtype=np.float64)  # [S, Q]
    n_s, n_q = diff.shape
    qi, si = bootstrap_indices(n_q, n_s, n_boot)
    reps = np.array([diff[np.ix_(s, q)].mean() for q, s in zip(qi, si)])
    per_seed = diff.mean(axis=1)
    if n_s > 1:
        half = stats.t.ppf(0.5 + LEVEL / 2, n_s - 1) * per_seed.std(ddof=1) / np.sqrt(n_s)
    else:
        half = float("nan")
    lo, hi = np.quantile(reps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return {"value": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "replicates": [float(x) for x in reps], "seed_t_ci": [float(per_seed.mean() - half),
                                                                   float(per_seed.mean() + half)],
            "per_query": [float(x) for x in diff.mean(axis=0)]}


def smallest_flip(full_margin: np.ndarray, margins_by_k: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """full_margin [S, Q], margins_by_k {k: [S, Q]}: (eligible [Q] bool: the seed-mean full margin > 0,
    smallest k [Q]: the smallest k whose seed-mean margin is < 0, k_max + 1 where none is (censored))."""
    ks = sorted(margins_by_k)
    eligible = np.asarray(full_margin).mean(axis=0) > 0
    smallest = np.full(eligible.shape, ks[-1] + 1, dtype=np.int64)
    for k in reversed(ks):  # the smallest flipping k wins
        smallest[np.asarray(margins_by_k[k]).mean(axis=0) < 0] = k
    return eligible, smallest


def brittleness(full_margin: np.ndarray, margins_by_k: dict[int, np.ndarray], n_boot: int = N_BOOT) -> dict:
    """The median smallest flipping k over the eligible queries (censored at k_max + 1), its bootstrap
    interval, and the fraction of eligible queries flipped by each k.

    Each replicate resamples the sampled queries and the retrain seeds jointly (the shared draws of
    `bootstrap_indices`, so every method's replicates are paired): the seed-mean margins are recomputed
    over the resampled seeds, and with them which queries are eligible and where each flips, then the
    median is taken over the resampled queries. A retrain seed shifts every query's margin (one model),
    so resampling queries alone missed most of the seed noise."""
    ks = sorted(margins_by_k)
    eligible, smallest = smallest_flip(full_margin, margins_by_k)
    s = smallest[eligible]
    out = {"ks": ks, "n_eligible": int(eligible.sum()), "smallest_k": [int(x) if e else None
                                                                        for x, e in zip(smallest, eligible)]}
    if not len(s):
        return {**out, "value": None, "ci_low": None, "ci_high": None, "replicates": None,
                "flipped_fraction": [None] * len(ks), "censored": None}
    full = np.asarray(full_margin, dtype=np.float64)
    n_s, n_q = full.shape
    qi, si = bootstrap_indices(n_q, n_s, n_boot)
    seed_w = np.stack([np.bincount(x, minlength=n_s) for x in si]) / n_s  # [B, S]
    boot_full = seed_w @ full  # [B, Q] seed-mean margins over the resampled seeds
    boot_smallest = np.full(boot_full.shape, ks[-1] + 1, dtype=np.int64)
    for k in reversed(ks):
        boot_smallest[seed_w @ np.asarray(margins_by_k[k], dtype=np.float64) < 0] = k
    reps = []
    for b in range(n_boot):
        q = qi[b][boot_full[b, qi[b]] > 0]
        reps.append(float(np.median(boot_smallest[b, q])) if len(q) else np.nan)
    reps = np.asarray(reps)
    lo, hi = np.nanquantile(reps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    median = float(np.median(s))
    return {**out, "value": median, "ci_low": float(lo), "ci_high": float(hi),
            "replicates": [float(x) for x in reps],
            "flipped_fraction": [float(np.mean(s <= k)) for k in ks], "censored": bool(median > ks[-1])}
