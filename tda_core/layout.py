"""Where every artifact lives under results_dir: the one place the layout is written.

The rules (rules/*.smk, via rules/common.smk), the package (api.Experiment, the stages) and
results/README.md all take their paths from here; nothing parses a path back into a method,
seed or target. Pure string formatting, torch- and numpy-free (the Snakefile imports it while
building the DAG), so a wildcard such as "{seed}" passes through into a Snakemake pattern.

    {results_dir}/{exp}/config.json                        resolved experiment config + its hash
    {results_dir}/{exp}/groundtruth/masks.npy              [M, N] subset masks
    {results_dir}/{exp}/groundtruth/shard{k}.npz           measurements of shard k's subset models
    {results_dir}/{exp}/groundtruth/fixed_shard{k}.npz     the same, fixed-seed track
    {results_dir}/{exp}/groundtruth/measurements.npz       the gathered ground truth
    {results_dir}/{exp}/models/seed{r}.pt                  full-data model checkpoints
    {results_dir}/{exp}/scores/{method}/seed{r}.npy        scores (+ .json sidecar); seedall for
                                                           pooled / per_seed_samples methods;
                                                           {target}_seed{r} for targets but query
    {results_dir}/{exp}/metrics.json                       every metric of every method
    {results_dir}/{exp}/pruning/{method}/{variant}/p{p}.json   one pruning job's retrains
    {results_dir}/{exp}/pruning/_random/p{p}.json          random-removal baseline
    {results_dir}/{exp}/pruning/_full.json                 full-data baseline
    {results_dir}/{exp}/pruning/summary.json               pruning summary (+ pruning.png)
    {results_dir}/{exp}/loo/measurements.npz               leave-one-out retrains
    {results_dir}/{exp}/loo/results.json                   leave-one-out bundle (+ loo.png)
    {results_dir}/{exp}/removal/methods/{method}/k{k}.json   one top-k removal job's retrains
    {results_dir}/{exp}/removal/baselines/random_k{k}.json   random removal of k examples
    {results_dir}/{exp}/removal/baselines/full.json        full-data baseline on the removal seeds
    {results_dir}/{exp}/removal/results.json               top-k removal bundle (+ removal.png)
    {results_dir}/{exp}/pictures/                          diffusion pictures
    {results_dir}/{exp}/curvature/{fit}/                   a shared curvature fit, one .pt per seed and
                                                           checkpoint set (one fit_curvature job each; {fit}:
                                                           kind, checkpoints, curvature options, e.g.
                                                           ekfac_final.fisher-expected)
    {results_dir}/{exp}/scores/{method}/_cache/            curvature fits the method's own attribute job made
                                                           (none in the shared fit; randomized: _cache/randomized/)
    {results_dir}/{exp}/tuning.json                        tuning-sensitivity rows (+ tuning.png)
    {results_dir}/logs/{exp}/{job}.log                     job logs
    {results_dir}/leaderboard.{csv,md,html,png}            the board (+ leaderboard_metric_agreement.png)
    {results_dir}/.tracking.json                           W&B settings of the run (tda_core/tracking.py)
    {results_dir}/wandb/                                   W&B runs

A ground-truth bank (tda_core/gtbank.py, `tda groundtruth export`) holds an experiment's config.json,
groundtruth/masks.npy (+ masks.json), groundtruth/measurements.npz and models/seed{r}.pt under these same
paths relative to the experiment folder (BANK_* below), beside its manifest.json.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

TARGETS = ("query", "val", "train_self", "randomized")
SEED_USAGES = ("per_seed", "pooled", "per_seed_samples")
ALL_SEEDS = "all"  # the seed of a pooled / per_seed_samples method's one score file (seedall)


# A ground-truth bank's files, relative to its root (= to the experiment folder: ExperimentLayout's paths).
BANK_MANIFEST = "manifest.json"
BANK_CONFIG = "config.json"
BANK_MASKS = "groundtruth/masks.npy"
BANK_MASKS_SIDECAR = "groundtruth/masks.json"
BANK_MEASUREMENTS = "groundtruth/measurements.npz"


def model_member(seed) -> str:
    """A full-data checkpoint's path in a ground-truth bank."""
    return f"models/seed{seed}.pt"


SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # experiment and method names become folder names


def check_safe_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"{what} name {name!r} is not safe as a file name: use letters, digits, '_', '.', '-' "
                          "(not starting with '.', no '..')")


def score_stem(target: str, seed) -> str:
    """File stem of a score file: seed{r} for queries, {target}_seed{r} otherwise."""
    if target not in TARGETS:
        raise ConfigError(f"unknown attribution target '{target}'; known: {', '.join(TARGETS)}")
    return f"seed{seed}" if target == "query" else f"{target}_seed{seed}"


def score_seeds(usage: str, n_seeds: int) -> list:
    """The seeds a method's score files are named by: 0..R-1 for per_seed, ["all"] for the others
    (one file from all R models: [Q, N] pooled, [R, Q, N] per_seed_samples)."""
    if usage not in SEED_USAGES:
        raise ValueError(f"seed usage must be one of {', '.join(SEED_USAGES)}, not {usage!r}")
    return list(range(n_seeds)) if usage == "per_seed" else [ALL_SEEDS]


@dataclass(frozen=True)
class ResultsLayout:
    """The files of one results folder that belong to no single experiment."""

    results_dir: str = "results"

    def experiment(self, name: str) -> "ExperimentLayout":
        return ExperimentLayout(self.results_dir, name)

    def leaderboard(self, ext: str) -> str:
        """ext: csv, md, html or png."""
        return f"{self.results_dir}/leaderboard.{ext}"

    @property
    def metric_agreement_plot(self) -> str:
        return f"{self.results_dir}/leaderboard_metric_agreement.png"

    @property
    def tracking_settings(self) -> str:
        return f"{self.results_dir}/.tracking.json"

    def log(self, job: str, exp: str | None = None) -> str:
        return f"{self.results_dir}/logs/{job}.log" if exp is None else f"{self.results_dir}/logs/{exp}/{job}.log"


@dataclass(frozen=True)
class ExperimentLayout:
    """Every artifact of one experiment. Arguments may be Snakemake wildcards ("{seed}")."""

    results_dir: str
    name: str

    @property
    def root(self) -> str:
        return f"{self.results_dir}/{self.name}"

    # -- stage 1-2: config, masks, models, ground truth -------------------------------------------
    @property
    def config(self) -> str:
        return f"{self.root}/config.json"

    @property
    def masks(self) -> str:
        return f"{self.root}/groundtruth/masks.npy"

    def model(self, seed) -> str:
        return f"{self.root}/models/seed{seed}.pt"

    def shard(self, k) -> str:
        return f"{self.root}/groundtruth/shard{k}.npz"

    def fixed_shard(self, k) -> str:
        return f"{self.root}/groundtruth/fixed_shard{k}.npz"

    @property
    def groundtruth(self) -> str:
        return f"{self.root}/groundtruth/measurements.npz"

    # -- stage 4: scores --------------------------------------------------------------------------
    def score_dir(self, method: str) -> str:
        """The attribute job's output folder: every seed and target of the method."""
        return f"{self.root}/scores/{method}"

    def score_file(self, method: str, target: str, seed, suffix: str = ".json") -> str:
        """A score file: suffix .npy (the array) or .json (its sidecar)."""
        return ScoreFile(self.score_dir(method), method, target, seed).path(suffix)

    # -- stage 5 and the studies ------------------------------------------------------------------
    @property
    def metrics(self) -> str:
        return f"{self.root}/metrics.json"

    def pruning_run(self, method: str, variant: str, p) -> str:
        return f"{self.root}/pruning/{method}/{variant}/p{p}.json"

    def pruning_random(self, p) -> str:
        return f"{self.root}/pruning/_random/p{p}.json"

    @property
    def pruning_full(self) -> str:
        return f"{self.root}/pruning/_full.json"

    @property
    def pruning_summary(self) -> str:
        return f"{self.root}/pruning/summary.json"

    @property
    def pruning_plot(self) -> str:
        return f"{self.root}/pruning/pruning.png"

    @property
    def loo_measurements(self) -> str:
        return f"{self.root}/loo/measurements.npz"

    @property
    def loo_results(self) -> str:
        return f"{self.root}/loo/results.json"

    @property
    def loo_plot(self) -> str:
        return f"{self.root}/loo/loo.png"

    def curvature_dir(self, fit: str) -> str:
        """A shared curvature fit (tda_core.methods.registry.curvature_fit's key): the output of one
        fit_curvature job, read by the attribute jobs of every method whose curvature options give that key."""
        return f"{self.root}/curvature/{fit}"

    def curvature_cache(self, method: str, target: str = "query") -> str:
        """A method's own curvature cache (tda_core/curvature/store.py) for fits not in the shared one:
        inside its score folder, the attribute job's declared output, so no two jobs share it. The randomized target's checkpoints
        hold other parameters: its fits are kept apart."""
        root = f"{self.score_dir(method)}/_cache"
        return f"{root}/randomized" if target == "randomized" else root

    @property
    def tuning(self) -> str:
        return f"{self.root}/tuning.json"

    @property
    def tuning_plot(self) -> str:
        return f"{self.root}/tuning.png"

    def removal_run(self, method: str, k) -> str:
        return f"{self.root}/removal/methods/{method}/k{k}.json"

    def removal_random(self, k) -> str:
        return f"{self.root}/removal/baselines/random_k{k}.json"

    @property
    def removal_full(self) -> str:
        return f"{self.root}/removal/baselines/full.json"

    @property
    def removal_results(self) -> str:
        return f"{self.root}/removal/results.json"

    @property
    def removal_plot(self) -> str:
        return f"{self.root}/removal/removal.png"

    @property
    def pictures(self) -> str:
        return f"{self.root}/pictures"

    def log(self, job: str) -> str:
        return ResultsLayout(self.results_dir).log(job, self.name)


@dataclass(frozen=True)
class ScoreFile:
    """One score file by what it holds (not parsed from its path): the method, target and seed
    ("all": the one file of a pooled / per_seed_samples method) in the method's score folder."""

    directory: str
    method: str
    target: str
    seed: int | str

    def path(self, suffix: str = ".json") -> str:
        """suffix .json: the sidecar; .npy: the array."""
        return f"{self.directory}/{score_stem(self.target, self.seed)}{suffix}"


def score_files(directory: str, method: str, target: str, usage: str, n_seeds: int) -> list[ScoreFile]:
    """Every score file of a method for one target in its score folder, in seed order."""
    return [ScoreFile(str(directory), method, target, s) for s in score_seeds(usage, n_seeds)]
