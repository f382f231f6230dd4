"""`tda`: the command line the Snakemake rules call (one sub-command per stage).

User errors (bad config, missing or corrupted files, unknown names) print one line and exit 2; any other
exception prints one line (its class, message and where the traceback went: the --log file the
workflow's rules pass, else a temporary file) and exits 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .errors import ConfigError, TdaError

log = logging.getLogger("tda")


def experiment_of(args):
    """The experiment of every stage, from one of: --exp-config (results/{exp}/config.json, what the
    workflow passes), --experiment-json (prepare: the resolved config from the Snakefile), or
    --config and --experiment (a workflow YAML, for use by hand)."""
    from . import io
    from .api import Experiment, load_experiment
    from .config import config_hash, shared_experiment_config

    if getattr(args, "exp_config", None):
        cfg = io.read_json(args.exp_config)
        if config_hash(cfg) != cfg.get("config_hash"):
            raise ConfigError(f"{args.exp_config} was edited by hand (its hash does not match); rerun `tda prepare`")
        return Experiment(cfg)
    if getattr(args, "experiment_json", None):
        return Experiment(shared_experiment_config(json_arg(args.experiment_json, "--experiment-json")))
    if not (args.config and args.experiment):
        raise ConfigError("give --exp-config, or --config and --experiment")
    return load_experiment(args.config, args.experiment)


def json_arg(text: str | None, what: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object")
    return value


def tracking_of(args, exp=None, results_dir=None) -> dict:
    """W&B settings: --tracking if given; else the experiment's own `tracking` block (--config and
    --experiment); else what the workflow wrote to {results_dir}/.tracking.json (see tracking.py:
    tracking is no rule param, so changing it reruns nothing); else {} (mode auto)."""
    if args.tracking:
        return json_arg(args.tracking, "--tracking")
    if exp is not None and "tracking" in exp.cfg:
        return dict(exp.cfg["tracking"])
    from .tracking import read_settings

    return read_settings(exp.cfg["results_dir"] if results_dir is None else results_dir)


def cmd_prepare(args):
    from .api import Experiment
    from .config import shared_experiment_config
    from .stages.prepare import prepare

    exp = experiment_of(args)
    prepare(Experiment(shared_experiment_config(exp.cfg)), args.out_config, args.out_masks)


def cmd_train(args):
    from .stages.train import train_full

    exp = experiment_of(args)
    meta = train_full(exp, args.seed, args.out, tracking_of(args, exp))
    log.info("trained seed %s: final loss %.4f, %.1fs", args.seed, meta["final_train_loss"], meta["wall_time_s"])


def cmd_train_shard(args):
    from .stages.train import train_fixed_shard, train_shard

    exp = experiment_of(args)
    (train_fixed_shard if args.fixed else train_shard)(exp, args.shard, args.masks, args.out, tracking_of(args, exp))


def cmd_gather(args):
    from .stages.groundtruth import gather

    gather(experiment_of(args), args.masks, args.shards, args.models, args.out, fixed_paths=args.fixed_shards)


def cmd_attribute(args):
    from .stages.attribute import attribute_method

    exp, options = experiment_of(args), json_arg(args.options, "--options")
    attribute_method(exp, args.method, args.seed, args.target, options, tracking_of(args, exp),
                     max_self=args.self_examples)


def cmd_fit_curvature(args):
    from .stages.curvature import fit_shared_curvature

    fit_shared_curvature(experiment_of(args), json_arg(args.fit, "--fit"), args.out)


def score_dirs_of(args) -> dict | None:
    """--method M... with --scores-dir D... (one folder per method, in order), or None: the layout's."""
    if not args.scores_dir:
        return None
    if len(args.scores_dir) != len(args.method):
        raise ConfigError(f"--scores-dir gives {len(args.scores_dir)} folders for {len(args.method)} --method names "
                          "(one score folder per method, in the same order)")
    return dict(zip(args.method, args.scores_dir))


def cmd_evaluate(args):
    from .stages.evaluate import evaluate_experiment

    exp = experiment_of(args)
    results = evaluate_experiment(exp, args.metric, args.method, score_dirs_of(args), args.groundtruth, args.out,
                                  tracking_of(args, exp))
    for res in results:
        if res["status"] == "ok" and res.get("value") is not None:
            log.info("%s %s: %.3f [%.3f, %.3f]", res["method"], res["metric"], res["value"], res["ci_low"],
                     res["ci_high"])


def cmd_diffusion_pictures(args):
    from .stages.diffusion_pictures import diffusion_pictures

    exp = experiment_of(args)
    args.method = args.method or exp.cfg["methods"]
    paths = diffusion_pictures(exp, args.method, score_dirs_of(args), json_arg(args.pictures, "--pictures"),
                               args.out_dir, tracking_of(args, exp))
    log.info("wrote %d pictures to %s", len(paths), args.out_dir)


def cmd_leaderboard(args):
    from .stages.report import leaderboard

    if args.merge and not args.tracking:
        tracking = {"mode": "none"}  # a merge of others' results starts no W&B run unless --tracking asks
    else:
        tracking = tracking_of(args, results_dir=args.out_dir)  # the leaderboard's folder is the results_dir
    written = leaderboard(args.metrics, _study_files(args.study), args.images, args.merge, args.out_dir, tracking)
    print("\n".join(f"wrote {p}" for p in written))


def _study_files(given: list[list[str]]) -> dict[str, list[str]]:
    """--study NAME FILE... (repeated) as {study: files}; an unknown study or a bundle study is one line."""
    out: dict[str, list[str]] = {}
    for name, *files in given:
        from .studies import STUDIES

        row = STUDIES.get(name)
        if row is None or row.bundle:
            names = [n for n, r in STUDIES.items() if not r.bundle]
            raise ConfigError(f"--study {name}: " + ("its files are result bundles: give them to --metrics" if row
                              else f"unknown study; known: {', '.join(names)}"))
        out.setdefault(name, []).extend(files)
    return out


def cmd_export(args):
    from .bundle import export_results

    manifest = export_results(args.results, args.out, args.experiment or None)
    print(f"wrote {args.out} ({len(manifest['experiments'])} experiments, {len(manifest['files'])} files)")


def cmd_groundtruth_export(args):
    from .gtbank import export_bank

    manifest = export_bank(args.results, args.experiment, args.to)
    print(f"wrote the ground-truth bank of {args.experiment} (config hash {manifest['config_hash']}, "
          f"{len(manifest['files'])} files) to {args.to}")


def cmd_groundtruth_import(args):
    from . import gtbank

    if args.member or args.out:
        if not (args.member and args.out and args.exp_config):
            raise ConfigError("--member and --out go together, with --exp-config")
        gtbank.import_member(args.source, args.exp_config, args.member, args.out, masks=args.masks)
        log.info("imported %s from %s", args.member, args.source)
        return
    manifest = gtbank.import_bank(args.source, args.results)
    print(f"imported the ground truth of {manifest['experiment']} (config hash {manifest['config_hash']}, "
          f"{len(manifest['files'])} files, sha256 checked) into {Path(args.results) / manifest['experiment']}")


def cmd_methods(args):
    """Every method (built-in, plugin, and the "module:Class" entries of --config's experiments) with its
    seeds usage and options as a plain-text table; imports no torch unless a plugin does."""
    from .methods import options as O
    from .methods.registry import known_methods, method_entry

    if args.config:
        from .config import load_config

        load_config(args.config)  # registers the config's "module:Class" methods
    names = args.name or known_methods()
    rows = []
    for name in names:
        try:
            row = method_entry(name)
        except TdaError as e:
            if args.name:
                raise
            rows.append((name, "?", "-", "", "", f"cannot load: {e}"))
            continue
        head = (name, row.seed_usage, row.source)
        opts = O.describe(row.options) or [("-", "", "", "")]
        for i, (key, type_, default, help_) in enumerate(opts):
            rows.append((*(head if i == 0 else ("", "", "")), key, f"{type_} = {default}" if type_ else "", help_))
    rows += [("(every method)", "", "", key, f"{type_} = {default}", help_) for key, type_, default, help_ in O.describe(O.COMMON)]
    widths = [max(len(str(r[i])) for r in [_METHODS_HEADER, *rows]) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) + "  " + r[5] for r in [_METHODS_HEADER, *rows]]
    print("\n".join(line.rstrip() for line in lines))


_METHODS_HEADER = ("method", "seeds", "source", "option", "type = default", "help")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `tda` parser; with `command` (a subcommand's name), only that study's subcommands are added, so a
    core command imports no study's stage module (None: every study's, e.g. for --help)."""
    # imported here, not at the top: they read installed plugins, and main turns a broken one into one line
    from .config import block_defaults
    from .layout import TARGETS
    from .registry_rows import import_path
    from .studies import STUDIES, study_of_command

    p = argparse.ArgumentParser(prog="tda", description=__doc__.splitlines()[0])
    p.add_argument("--log", help="also write log messages to this file")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name, fn, help_):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--exp-config", help="results/{exp}/config.json written by `tda prepare`")
        sp.add_argument("--config", help="a workflow config YAML (with --experiment)")
        sp.add_argument("--experiment")
        sp.add_argument("--experiment-json", help="the resolved experiment config as JSON (the Snakefile's prepare)")
        sp.add_argument("--tracking", help="W&B settings as JSON, e.g. '{\"mode\": \"offline\"}' (default: the "
                        "experiment's tracking block, else {results_dir}/.tracking.json as the workflow wrote it)")
        sp.set_defaults(fn=fn)
        return sp

    sp = stage("prepare", cmd_prepare, "write the resolved experiment config and subset masks")
    sp.add_argument("--out-config", required=True)
    sp.add_argument("--out-masks", required=True)

    sp = stage("train", cmd_train, "train one full-data model (all checkpoints)")
    sp.add_argument("--seed", type=int, required=True)
    sp.add_argument("--out", required=True)

    sp = stage("train-shard", cmd_train_shard, "train one shard of subset models, keep measurements")
    sp.add_argument("--shard", type=int, required=True)
    sp.add_argument("--masks", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--fixed", action="store_true", help="fixed-seed track shard (groundtruth.track)")

    sp = stage("gather", cmd_gather, "merge shards + full-data measurements into the ground truth")
    sp.add_argument("--masks", required=True)
    sp.add_argument("--shards", nargs="+", required=True)
    sp.add_argument("--models", nargs="+", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--fixed-shards", nargs="*", default=None, help="fixed-seed track shards (groundtruth.track)")

    sp = stage("fit-curvature", cmd_fit_curvature, "fit one shared curvature (kind, checkpoints, curvature options) "
               "at every full-data seed, for the attribute jobs of the methods that use it")
    sp.add_argument("--fit", required=True, help="the fit as JSON: {\"kind\": \"kfac\"|\"ekfac\", \"checkpoints\": "
                    "\"final\"|\"segments\"|\"segments_wavg\", \"options\": {curvature options}} "
                    "(tda_core.methods.registry.curvature_fit)")
    sp.add_argument("--out", required=True, help="the fit's folder, results/{exp}/curvature/{key} (tda_core/layout.py)")

    sp = stage("attribute", cmd_attribute, "compute one method's scores for some seeds (or 'all') and targets")
    sp.add_argument("--method", required=True)
    sp.add_argument("--seed", nargs="+", required=True, help="full-data seeds, or 'all' for ensemble methods")
    sp.add_argument("--options", help="method options as JSON")
    sp.add_argument("--target", nargs="+", default=["query"], choices=TARGETS,
                    help="examples to explain: query (default), val (validation loss), train_self (self-influence)")
    sp.add_argument("--self-examples", type=int, default=block_defaults("mislabel")["max_examples"],
                    help="train_self: at most this many training examples attribute themselves")

    sp = stage("evaluate", cmd_evaluate, "score the methods' attributions with the metrics (one bundle)")
    sp.add_argument("--metric", nargs="+", required=True)
    sp.add_argument("--method", nargs="+", required=True)
    sp.add_argument("--scores-dir", nargs="+", help="each --method's score folder, in order (default: "
                    "results/{exp}/scores/{method}, tda_core/layout.py)")
    sp.add_argument("--groundtruth", help="groundtruth/measurements.npz (metrics of the query target need it)")
    sp.add_argument("--out", required=True)

    sp = stage("diffusion-pictures", cmd_diffusion_pictures,
               "diffusion: influential training images per query, samples of every seed")
    sp.add_argument("--method", nargs="*", default=[], help="the methods shown (default: the experiment's)")
    sp.add_argument("--scores-dir", nargs="*", default=[], help="each --method's score folder, in order "
                    "(default: results/{exp}/scores/{method})")
    sp.add_argument("--pictures", help="the experiment's pictures block as JSON")
    sp.add_argument("--out-dir", required=True)

    sp = sub.add_parser("methods", help="list the attribution methods (built-in and plugins): seeds usage, options")
    sp.add_argument("name", nargs="*", help="only these methods (default: all)")
    sp.add_argument("--config", help="also the \"module:Class\" methods of this workflow config")
    sp.set_defaults(fn=cmd_methods, torch_free=True)

    sp = sub.add_parser("leaderboard", help="render leaderboard CSV / Markdown / HTML / PNG")
    sp.add_argument("--metrics", nargs="+", default=[], help="result bundles (results/{exp}/metrics.json, "
                    "results/{exp}/loo/results.json, results/{exp}/removal/results.json)")
    sp.add_argument("--merge", nargs="+", metavar="DIR_OR_ARCHIVE", default=[],
                    help="results folders or archives of `tda export` (.tar.gz / .zip; e.g. made on different "
                         "machines): one board from their */metrics.json, */loo/results.json, */removal/results.json, "
                         "*/pruning/summary.json and */tuning.json; one experiment's bundles must share their ground "
                         "truth (config_hash) and may not repeat a method. Merged inputs are untrusted: no links, "
                         "regular files of at most 64 MiB, archives checked against their manifest. W&B stays off "
                         "unless --tracking asks for it")
    sp.add_argument("--images", nargs="*", default=[], help="plots embedded in the HTML page")
    sp.add_argument("--study", nargs="+", action="append", default=[], metavar=("STUDY", "FILE"),
                    help="a study's board files (tda_core/studies.py), e.g. --study pruning "
                         "results/{exp}/pruning/summary.json; repeat per study (bundle studies' files go to --metrics)")
    sp.add_argument("--out-dir", required=True)
    sp.add_argument("--tracking", help="W&B settings as JSON (default: {out-dir}/.tracking.json; with --merge: "
                    "no W&B)")
    sp.set_defaults(fn=cmd_leaderboard)

    sp = sub.add_parser("export", help="one archive (.tar.gz or .zip) of a results folder's bundles, configs and "
                        "ground truth, with a manifest of sha256 hashes (for `tda leaderboard --merge`)")
    sp.add_argument("--results", default="results", help="the results folder (default: results)")
    sp.add_argument("--experiment", nargs="*", default=[], help="only these experiments (default: every folder "
                    "with a config.json)")
    sp.add_argument("--out", required=True, help="the archive: NAME.tar.gz, NAME.tgz or NAME.zip")
    sp.set_defaults(fn=cmd_export, torch_free=True)

    gt = sub.add_parser("groundtruth", help="share ground truth without retraining: a bank (masks, measurements, "
                        "full-data checkpoints, config hash, sha256 manifest) at a local path, http(s):// or s3:// URL")
    gt_sub = gt.add_subparsers(dest="action", required=True)
    sp = gt_sub.add_parser("export", help="write an experiment's ground-truth bank to a folder or s3:// URL")
    sp.add_argument("--results", default="results", help="the results folder (default: results)")
    sp.add_argument("--experiment", required=True)
    sp.add_argument("--to", required=True, metavar="URL", help="a new folder (path, file://, s3://)")
    sp.set_defaults(fn=cmd_groundtruth_export, torch_free=True)
    sp = gt_sub.add_parser("import", help="fetch a bank, checking every file's sha256 (and the config hash)")
    sp.add_argument("--from", dest="source", required=True, metavar="URL", help="the bank (path, http(s)://, s3://)")
    sp.add_argument("--results", default="results", help="the whole bank goes to RESULTS/{experiment} "
                    "(default: results); files already there must equal the bank's")
    sp.add_argument("--exp-config", help="with --member: this experiment's config.json, whose hash the bank must have")
    sp.add_argument("--member", help="only this file of the bank (e.g. models/seed0.pt), to --out (the workflow's jobs)")
    sp.add_argument("--out", help="where --member goes")
    sp.add_argument("--masks", help="with --member: this experiment's masks.npy, which the bank's must equal")
    sp.set_defaults(fn=cmd_groundtruth_import, torch_free=True)

    # each study's subcommands (tda_core/studies.py): only the named one's module is imported; every study's
    # for no command, --help or a name the parser does not know yet (its error then lists them all)
    every = command is None or (command not in sub.choices and study_of_command(command) is None)
    for study in STUDIES.values():
        if every or command in study.commands:
            import_path(study.cli)(stage)
    return p


class _OneLine(logging.Formatter):
    """The console's format: the message only, never a traceback (that goes to the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        return "tda: " + record.getMessage()


def _command_of(argv: list[str]) -> str | None:
    """The subcommand `argv` names (its first word after the global options), or None."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in ("--log", "--threads") else 1  # the global options that take a value
    return argv[i] if i < len(argv) else None


def _traceback_file(args) -> str:
    """Where the traceback of an unexpected error goes: --log (the job's log file the rules pass), else a
    new file in the temporary folder."""
    import tempfile

    if args.log:
        return args.log
    fd, path = tempfile.mkstemp(prefix=f"tda-{getattr(args, 'command', 'error')}-", suffix=".log")
    os.close(fd)
    return path


def main(argv=None) -> int:
    """Every sub-command: a user error (TdaError) is one line on stderr (and in --log); any other
    exception is one line on stderr (its class, message and where the traceback is) and the full
    traceback in the --log file (the per-job log Snakemake points to; without --log, a temporary file)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_command_of(argv))
    except TdaError as e:  # e.g. a broken study plugin (tda_core/studies.py)
        print(f"tda: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_OneLine())
    handlers: list[logging.Handler] = [console]
    if args.log:
        try:
            Path(args.log).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(args.log))
        except OSError as e:
            print(f"tda: error: cannot write the log file {args.log}: {e.strerror or e}", file=sys.stderr)
            return 2
        handlers[-1].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    try:
        if not getattr(args, "torch_free", False):
            import torch

            torch.set_num_threads(args.threads or 1)
            # numpy / scipy BLAS too: a job given 1 core that lets OpenBLAS start a thread per core
            # oversubscribes the cores `snakemake --cores N` shares out (spinning threads, no speed-up)
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads or 1)
        args.fn(args)
    except TdaError as e:
        log.error("error: %s", " ".join(str(e).split()))
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # a bug (in tda-bench or a plugin): one line here, the traceback in the log file
        where = _traceback_file(args)
        message = " ".join(str(e).split())
        message = message if len(message) <= 300 else message[:300] + "..."
        try:
            if where == args.log:
                logging.getLogger().removeHandler(console)  # the traceback goes to the file only
                log.exception("error: %s: %s", type(e).__name__, message)
            else:
                import traceback

                Path(where).write_text(traceback.format_exc())
        except OSError:
            where = "(the traceback could not be written)"
        console.handle(logging.makeLogRecord({"msg": f"error: {type(e).__name__}: {message} (traceback in {where})",
                                              "levelno": logging.ERROR, "levelname": "ERROR"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
