"""Where every artifact lives under results_dir: the one place the layout is written.

The rules (rules/*.smk, via rules/common.smk), the package (api.Experiment, the stages) and
results/README.md all take their paths from here; nothing parses a path back into a method,
seed or target. Pure string formatting, torch- and numpy-free (the Snakefile imports it while
building the DAG), so a wildcard such as "{seed}" passes through into a Snakemake pattern.

Every path the workflow writes, with what it holds, is one row of RESULTS_FILES below; `python -m
tda_core.layout` renders them into the table of results/README.md, and tests/test_layout.py checks each
row against the method here that builds it (and that the README holds exactly that table).

A ground-truth bank (tda_core/gtbank.py, `tda groundtruth export`) holds an experiment's config.json,
groundtruth/masks.npy (+ masks.json), groundtruth/measurements.npz and models/seed{r}.pt under these same
paths relative to the experiment folder (BANK_* below), beside its manifest.json.
"""
from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .studies import STUDIES

__all__ = [
    "TARGETS", "SEED_USAGES", "ALL_SEEDS", "SAFE_NAME", "check_safe_name", "check_target", "score_stem", "score_seeds",
    "ResultsLayout", "ExperimentLayout", "ScoreFile", "score_files",
    "BANK_MANIFEST", "BANK_CONFIG", "BANK_MASKS", "BANK_MASKS_SIDECAR", "BANK_MEASUREMENTS", "model_member",
    "RESULTS_FILES", "README_BEGIN", "README_END", "results_table", "readme_with_table",
]

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


def check_target(target: str) -> None:
    """A ConfigError unless `target` is one of TARGETS."""
    if target not in TARGETS:
        raise ConfigError(f"unknown attribution target '{target}'; known: {', '.join(TARGETS)}")


def score_stem(target: str, seed) -> str:
    """File stem of a score file: seed{r} for queries, {target}_seed{r} otherwise."""
    check_target(target)
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

    def leaderboard(self, ext: str) -> str:
        """ext: csv, md, html or png."""
        return f"{self.results_dir}/leaderboard.{ext}"

    @property
    def metric_agreement_plot(self) -> str:
        return f"{self.results_dir}/leaderboard_metric_agreement.png"

    @property
    def tracking_settings(self) -> str:
        return f"{self.results_dir}/.tracking.json"

    def tracking_record(self, job_type: str, name: str) -> str:
        """tracking mode record: one run's JSON file (job_type and name already file-safe: tda_core.tracking)."""
        return f"{self.results_dir}/tracking/{job_type}/{name}.json"

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

    # -- stage 3: scores --------------------------------------------------------------------------
    def score_dir(self, method: str) -> str:
        """The attribute job's output folder: every seed and target of the method."""
        return f"{self.root}/scores/{method}"

    def score_file(self, method: str, target: str, seed, suffix: str = ".json") -> str:
        """A score file: suffix .npy (the array) or .json (its sidecar)."""
        return ScoreFile(self.score_dir(method), method, target, seed).path(suffix)

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

    # -- stage 4 and the studies ------------------------------------------------------------------
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

    def study_file(self, relative: str) -> str:
        """A study's file by its path relative to the experiment's folder (tda_core/studies.py: board_file,
        images; a new study's rules may name all their files so)."""
        return f"{self.root}/{relative}"

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


# -- results/README.md's path table -----------------------------------------------------------------
# Every path the workflow writes under results_dir, "{experiment}" standing for an experiment's folder name,
# with what it holds. `python -m tda_core.layout` renders these rows between README_BEGIN and README_END of
# results/README.md; tests/test_layout.py checks each pattern against the method above that builds it, that
# every path method above has a row, and that the README holds exactly this table.
_UP_TO_METRICS: tuple[tuple[str, str], ...] = (
    ("{experiment}/config.json", "resolved experiment config + its hash"),
    ("{experiment}/groundtruth/masks.npy", "[M, N] subset masks (+ masks.json)"),
    ("{experiment}/groundtruth/shard{k}.npz", "measurements of the subset models of shard k"),
    ("{experiment}/groundtruth/fixed_shard{k}.npz",
     "the same on the fixed-seed track (`groundtruth.track: fixed_seed` or `both`): each subset retrained from "
     "every full-data seed's initialisation and batch order"),
    ("{experiment}/groundtruth/measurements.npz",
     "[M, R, Q] subset + [R, Q] full-data measurements (+ the fixed-seed track's [M, R, Q] `fixed`)"),
    ("{experiment}/models/seed{r}.pt",
     "full-data model checkpoints (+ lr/step metadata; meta pools: per training stage, its example indices; "
     "segments[c].pool: interval c's stage)"),
    ("{experiment}/scores/{method}/seed{r}.npy",
     "float32 [n_query, n_train] + .json sidecar (seedall: ensemble methods; val_ / train_self_ / randomized_ "
     "prefixes: pruning, self-influence and randomization targets; sidecar `note`: a caveat for the method's "
     "row, e.g. \"not stage-aware: ...\" on multi_stage)"),
    ("{experiment}/scores/{method}/_cache/",
     "curvature fits the method's own attribute job made: a curvature key no other method of the experiment "
     "reads (it has no curvature/{fit}/ folder), or a fit missing there; the randomized target's in "
     "_cache/randomized/"),
    ("{experiment}/curvature/{fit}/",
     "a shared (E)K-FAC fit, one .pt per seed and checkpoint set + fit.json; {fit} names the kind, checkpoints "
     "and curvature options (e.g. ekfac_final.fisher-expected): one fit_curvature job, read by every method "
     "with those options. Only for a key that two or more methods read: a key one method alone reads has no "
     "folder here (that method's attribute job fits it into its scores/{method}/_cache/)"),
    ("{experiment}/metrics.json", "every metric of every method (one result each)"),
)
_AFTER_STUDIES: tuple[tuple[str, str], ...] = (
    ("{experiment}/pictures/", "diffusion: influence grids per query and samples by seed"),
    ("logs/{experiment}/{job}.log", "an experiment's job logs ({job}: the rule and its wildcards, e.g. train_seed0)"),
    ("logs/{job}.log", "logs of jobs of no one experiment (the leaderboard)"),
    ("leaderboard.{csv,md,html,png}", "the board"),
    ("leaderboard_metric_agreement.png", "do the metrics rank the methods alike"),
    (".tracking.json",
     "the run's `tracking` block (W&B settings), written before the first job; jobs read it "
     "(tda_core/tracking.py); changing it reruns nothing"),
    ("tracking/{job_type}/{name}.json",
     "tracking mode record (no W&B): one JSON file per run, written at its end (tda_core/tracking.py)"),
    ("wandb/", "W&B runs (offline when no API key), written there by the wandb library: no layout path"),
)

# between them, every study's rows (tda_core/studies.py: `results`), in the registry's order
RESULTS_FILES: tuple[tuple[str, str], ...] = (
    *_UP_TO_METRICS, *(row for study in STUDIES.values() for row in study.results), *_AFTER_STUDIES)

README_BEGIN = "<!-- path table: rendered from tda_core/layout.py (RESULTS_FILES) by `python -m tda_core.layout` -->"
README_END = "<!-- end of path table -->"


def results_table(results_dir: str = "results", width: int = 112) -> str:
    """RESULTS_FILES as results/README.md shows them: an indented block, one path per row, its
    description wrapped beside it."""
    paths = [f"{results_dir}/{pattern}" for pattern, _ in RESULTS_FILES]
    column = 4 + max(map(len, paths)) + 2
    lines = []
    for path, (_, text) in zip(paths, RESULTS_FILES):
        lines += textwrap.wrap(text, width, initial_indent=f"    {path}".ljust(column), subsequent_indent=" " * column,
                               break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    """`text` (results/README.md) with the block between README_BEGIN and README_END replaced by
    results_table()."""
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1 or text.index(README_BEGIN) > text.index(README_END):
        raise ValueError(f"the README needs one line {README_BEGIN!r} and, below it, one line {README_END!r}")
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    return f"{head}{README_BEGIN}\n\n{results_table()}\n\n{README_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """python -m tda_core.layout [--check] [README]: rewrite the path table of README (default
    results/README.md); with --check, only say whether it is up to date (exit status 1 if not)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if len(paths) > 1 or any(a.startswith("-") for a in paths):
        print("usage: python -m tda_core.layout [--check] [results/README.md]", file=sys.stderr)
        return 2
    readme = Path(paths[0] if paths else "results/README.md")
    text = readme.read_text()
    try:
        new = readme_with_table(text)
    except ValueError as e:
        print(f"{readme}: {e}", file=sys.stderr)
        return 1
    if new == text:
        return 0
    if check:
        print(f"{readme}: the path table differs from tda_core/layout.py's; run python -m tda_core.layout",
              file=sys.stderr)
        return 1
    readme.write_text(new)
    print(f"{readme}: path table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
