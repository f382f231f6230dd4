"""The one registry of studies: a stage that runs after the attribution stage for an experiment whose config
has the study's block (pruning, tuning, top-k removal, leave-one-out). One `StudyEntry` row per study holds
everything the rest of the suite reads about it, so that a new study is its rule file, its stage module and
one row here:

    the Snakefile     includes `rule_file`; the leaderboard rule takes `board_file` of every experiment
                      with the block (rules/common.smk: study_board_files)
    the config        `experiments.<name>` is the study's block: job-local, outside the config hash
                      (tda_core/spec.py), validated by `schema` when the row gives one (the shipped studies'
                      blocks are in tda_core/schemas/config.schema.yaml) and by `check` at plan time
    the `tda` CLI     `commands` are its subcommands, added by `cli` ("module:function", called with the
                      CLI's `stage` helper; imported only when one of them runs, or for `tda --help`)
    the layout        `results`: its rows of results/README.md's path table (tda_core/layout.py)
    the seeds         `retrain_seeds` ("module:function", experiment -> its retrain seeds): a role of its own in
                      tda_core/seeds.py, checked disjoint from every other role
    the board         `board` ("module:function", (its board files, every bundle) -> sections); a
                      `bundle` study writes result rows like metrics.json (read with them, ranked like metrics)

A package can add a study without touching this file: an entry point of the group tda_bench.studies naming its
StudyEntry (tests/test_study_registry.py adds a toy study so and runs it end to end).

Torch-free and imports nothing of the suite but the row helpers: the Snakefile reads it while building the DAG.
"""
from __future__ import annotations

from dataclasses import dataclass

from .registry_rows import import_path, row_of

__all__ = ["StudyEntry", "STUDIES", "ENTRY_POINT_GROUP", "study_entry", "study_of_command", "board_sections",
           "study_seeds"]


@dataclass(frozen=True)
class StudyEntry:
    """Everything the suite reads about one study (the module's docstring)."""

    name: str                  # its config block (experiments.<name>) and the role of its seeds
    rule_file: str             # its Snakemake rules, relative to the workflow's folder (or absolute)
    commands: tuple[str, ...]  # its `tda` subcommands
    cli: str                   # "module:function" adding those subcommands: function(stage) (tda_core.cli)
    board_file: str            # the file the leaderboard reads, relative to the experiment's folder
    board: str                 # "module:function": (board files, bundles) -> [(key, level, title, text, table)]
    bundle: bool = False       # board_file is a result bundle (rows like metrics.json)
    images: tuple[str, ...] = ()  # its plots shown on the HTML board and in the report (relative paths)
    results: tuple[tuple[str, str], ...] = ()  # ("{experiment}/<path>", what it holds): results/README.md
    retrain_seeds: str | None = None  # "module:function": resolved experiment -> its retrain seeds (None: none)
    seed_role: str = ""        # the seeds' role name in tda_core/seeds.py ("": the study's name)
    schema: dict | None = None  # JSON schema of its block (None: the block is in config.schema.yaml)
    check: str | None = None   # "module:function"(experiment name, resolved experiment): its plan-time checks


# In board order: their sections follow the metrics' on the page in this order.
_ROWS = (
    StudyEntry(
        "pruning", "rules/prune.smk", ("prune", "prune-baseline", "prune-summary"), "tda_core.stages.prune:add_commands",
        "pruning/summary.json", "tda_core.board.studies:pruning_sections", images=("pruning/pruning.png",),
        results=(
            ("{experiment}/pruning/{method}/{variant}/p{p}.json",
             "one pruning job: the retrains without the p% a method's validation-loss scores pick"),
            ("{experiment}/pruning/_random/p{p}.json", "random-removal baseline for p"),
            ("{experiment}/pruning/_full.json", "full-data baseline on the pruning retrain seeds"),
            ("{experiment}/pruning/summary.json",
             "pruning summary: mean, std and 95% t-interval over the retrain seeds"),
            ("{experiment}/pruning/pruning.png", "pruning curves"),
        ),
        retrain_seeds="tda_core.seeds:pruning_retrain_seeds", seed_role="pruning_retrain", check="tda_core.config:_check_pruning"),
    StudyEntry(
        "tuning", "rules/tune.smk", ("tune",), "tda_core.stages.tune:add_commands", "tuning.json",
        "tda_core.board.studies:tuning_sections", images=("tuning.png",),
        results=(
            ("{experiment}/tuning.json", "tuning sensitivity: one row per (method, option) of the `tuning:` grid"),
            ("{experiment}/tuning.png", "LDS vs each option's value, with 95% CIs"),
        )),
    StudyEntry(
        "removal", "rules/removal.smk", ("removal", "removal-summary"), "tda_core.stages.removal:add_commands",
        "removal/results.json", "tda_core.board.studies:removal_sections", bundle=True, images=("removal/removal.png",),
        results=(
            ("{experiment}/removal/methods/{method}/k{k}.json",
             "one top-k removal job: each sampled query's top k of a method's scores removed, every retrain seed"),
            ("{experiment}/removal/baselines/random_k{k}.json", "random removal of k examples per query"),
            ("{experiment}/removal/baselines/full.json", "full-data baseline on the removal retrain seeds"),
            ("{experiment}/removal/results.json", "top-k removal bundle: topk_drop_k{k} and brittleness rows"),
            ("{experiment}/removal/removal.png", "top-k removal curves and brittleness"),
        ),
        retrain_seeds="tda_core.seeds:removal_retrain_seeds", seed_role="removal_retrain", check="tda_core.config:_check_removal"),
    StudyEntry(
        "loo", "rules/loo.smk", ("loo-train", "loo-evaluate"), "tda_core.stages.loo:add_commands", "loo/results.json",
        "tda_core.board.studies:loo_sections", bundle=True, images=("loo/loo.png",),
        results=(
            ("{experiment}/loo/measurements.npz", "leave-one-out retrains' query measurements"),
            ("{experiment}/loo/results.json", "leave-one-out bundle: predicted vs actual mean shifts"),
            ("{experiment}/loo/loo.png", "leave-one-out scatter plot"),
        ),
        retrain_seeds="tda_core.seeds:loo_seeds"),
)
ENTRY_POINT_GROUP = "tda_bench.studies"  # a package's studies: entry points naming a StudyEntry ("module:ROW")


def _plugin_rows() -> list[StudyEntry]:
    """The rows of installed packages' studies (entry point group tda_bench.studies); a plugin's rule_file is an
    absolute path (its package's). Loading one imports the module holding its row, not its stage module."""
    from importlib.metadata import entry_points

    from .errors import ConfigError

    rows = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            row = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin is one line, whatever it raised
            message = " ".join(str(e).split())
            raise ConfigError(f"study plugin '{ep.name}' ({ep.value}) cannot be loaded: {type(e).__name__}: "
                              f"{message}") from None
        if not isinstance(row, StudyEntry) or row.name != ep.name:
            raise ConfigError(f"study plugin '{ep.name}' ({ep.value}) must name a StudyEntry whose name is '{ep.name}'")
        if row.name in {r.name for r in (*_ROWS, *rows)}:
            raise ConfigError(f"study plugin '{ep.name}' ({ep.value}) has the name of another study; rename it")
        rows.append(row)
    return rows


STUDIES: dict[str, StudyEntry] = {row.name: row for row in (*_ROWS, *_plugin_rows())}


def study_entry(name: str) -> StudyEntry:
    return row_of(STUDIES, name, "study")


def study_of_command(command: str) -> StudyEntry | None:
    """The study whose `tda` subcommand this is, or None (a core command)."""
    return next((row for row in STUDIES.values() if command in row.commands), None)


def board_sections(row: StudyEntry, paths: list, bundles: list[dict]) -> list[tuple]:
    """The study's board sections: (key, level, title, text, table) each, keys prefixed by nothing (the
    function names them, e.g. "pruning/test_loss")."""
    return list(import_path(row.board)(paths, bundles))


def study_seeds(row: StudyEntry, cfg: dict) -> list[int]:
    """The study's retrain seeds for a resolved experiment's dict `cfg` ([] if it has no block or trains none)."""
    if row.retrain_seeds is None or not cfg.get(row.name):
        return []
    return list(import_path(row.retrain_seeds)(cfg))
