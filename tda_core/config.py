"""Config loading, schema validation (Snakemake's own `validate`), experiment resolution, hashing."""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .registry_rows import import_path
from .schema import SCHEMA_PATH, config_schema, config_schema_path  # noqa: F401 (SCHEMA_PATH: its public home before)
from .spec import GLOBAL_KEYS, ExperimentSpec, has_fixed_track, job_local_keys, unhashed_keys
from .layout import SAFE_NAME, check_safe_name  # noqa: F401 (names become folder names: the layout's rule)

# Keys that change no trained model or ground-truth number (excluded from the experiment hash, so adding a
# method or renaming the results folder never invalidates trained models), and keys that jobs receive on
# their own command line instead of through results/{exp}/config.json (changing them reruns only the jobs
# that use them): both read off ExperimentSpec's field metadata (tda_core/spec.py: unhashed_keys,
# job_local_keys).

_schema = config_schema  # the names this module's callers and tests use
schema_path = config_schema_path


def block_defaults(block: str) -> dict:
    """The schema's defaults of an optional experiment block (loo, pictures, diffusion, mislabel): the
    one place they are written. `validate` fills them only into a block the config has; jobs and
    library callers that get no block (or a partial one) read them here."""
    props = _schema()["$defs"]["experiment"]["properties"][block]["properties"]
    return {k: copy.deepcopy(v["default"]) for k, v in props.items() if "default" in v}


def experiment_block(cfg: dict, block: str) -> dict:
    """An experiment's optional block with the schema's defaults for what it leaves out."""
    return {**block_defaults(block), **(cfg.get(block) or {})}


def validate_config(config: dict) -> dict:
    """Validate `config` in place against the schema (filling defaults); raise ConfigError in one line."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, schema_path())
    except WorkflowError as e:
        # Snakemake wraps the jsonschema error (raised while handling it, so it is the context).
        cause = e.__context__ if isinstance(e.__context__, jsonschema.ValidationError) else None
        raise ConfigError(_describe(cause) if cause is not None else f"config fails the schema: {e}") from None
    # Schema defaults are shared dict objects; detach them so experiments never alias each other.
    fresh = copy.deepcopy(config)
    config.clear()
    config.update(fresh)
    _check_names(config)
    return config


def _describe(err) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    return f"config error at {where}: {err.message}"


def _check_names(config: dict) -> None:
    from .data.registry import check_dataset_block
    from .models.registry import model_entry
    from .metrics.registry import known_metrics
    from .tuning import check_tuning

    for name, exp in config["experiments"].items():
        check_safe_name(name, "experiment")
        for m in [*exp["methods"], *exp.get("method_options", {}), *exp.get("pruning", {}).get("methods", []),
                  *exp.get("removal", {}).get("methods", [])]:
            if ":" not in m or m not in exp["methods"]:  # "module:Class" entries: their class's name is checked
                check_safe_name(m, f"experiment '{name}': method")
    run = config.get("run_experiments")
    for name in run or []:
        if name not in config["experiments"]:
            raise ConfigError(
                f"unknown experiment '{name}' in run_experiments; known: {', '.join(sorted(config['experiments']))}"
            )
    for name, exp in config["experiments"].items():
        check_dataset_block(f"experiment '{name}'", exp["dataset"])
        try:
            model_entry(exp["model"]["name"])
        except ConfigError as e:
            raise ConfigError(f"experiment '{name}': {e}") from None
        _check_methods(name, exp)
        for m in exp["metrics"]:
            if m not in known_metrics():
                raise ConfigError(
                    f"unknown metric '{m}' in experiment '{name}'; known: {', '.join(sorted(known_metrics()))}"
                )
        _check_evaluation(name, exp)
        check_tuning(name, exp)


def _check_methods(name: str, cfg: dict) -> None:
    """Resolve the experiment's `methods:` (built-in, plugin, "module:Class" -> its name, in place) and
    check `method_options` against the options each method declares (methods/options.py): an unknown
    key, a bad type, options of a method the experiment does not list are one-line ConfigErrors."""
    from .methods import options as O
    from .methods.registry import known_methods, method_entry, resolve_method

    resolved = []
    for m in cfg["methods"]:
        if ":" not in m and m not in known_methods():
            raise ConfigError(f"unknown method '{m}' in experiment '{name}'; known: {', '.join(known_methods())}")
        try:
            resolved.append(resolve_method(m))
        except ConfigError as e:
            raise ConfigError(f"experiment '{name}': {e}") from None
    paths = dict(zip(cfg["methods"], resolved))
    cfg["methods"] = resolved
    if cfg.get("pruning"):
        cfg["pruning"]["methods"] = [paths.get(m, m) for m in cfg["pruning"]["methods"]]
    if cfg.get("removal"):
        cfg["removal"]["methods"] = [paths.get(m, m) for m in cfg["removal"]["methods"]]
    for m, given in cfg.get("method_options", {}).items():
        if m not in resolved:
            known = f"known options of {m}: {O.known_list(method_entry(m).options)}" if _is_method(m) else \
                f"'{m}' is no known method"
            raise ConfigError(f"experiment '{name}': method_options.{m} is given, but method '{m}' is not in its "
                              f"methods [{', '.join(resolved)}] ({known})")
        declared = method_entry(m).options
        bad = O.problem(declared, given)
        if bad:
            raise ConfigError(f"experiment '{name}': {O.message(m, *bad, declared)}")


def _is_method(m: str) -> bool:
    from .methods.registry import method_entry

    try:
        method_entry(m)
        return True
    except ConfigError:
        return False


def _check_evaluation(name: str, cfg: dict) -> None:
    """The evaluation blocks (the metrics, each study's block) ask for things the experiment must have."""
    if cfg.get("kind") == "regression":
        ds = cfg["dataset"]
        for bad, why in (("pruning" in cfg, "pruning"), ("mislabel_auc" in cfg["metrics"], "the mislabel_auc metric"),
                         (ds.get("label_noise", 0) > 0, "dataset.label_noise"), (bool(ds.get("classes")), "dataset.classes"),
                         (cfg.get("measurement") not in ("loss", "prediction"), f"measurement {cfg.get('measurement')}")):
            if bad:
                raise ConfigError(f"experiment '{name}': {why} is for classification; kind: regression supports "
                                  "measurement loss or prediction, no pruning, mislabel_auc, label_noise or classes")
    _check_language_model(name, cfg)
    from .metrics.registry import METRICS
    from .studies import STUDIES

    for metric in cfg["metrics"]:  # each metric's needs (tda_core/metrics/registry.py: `check`)
        row = METRICS[metric]
        if row.check is not None:
            import_path(row.check)(name, cfg)

    for row in STUDIES.values():  # each study's own checks of its block (tda_core/studies.py: `check`)
        if row.check is not None and cfg.get(row.name):
            import_path(row.check)(name, cfg)
    from .seeds import check_disjoint

    check_disjoint(name, cfg)


def _check_language_model(name: str, cfg: dict) -> None:
    """kind: language_model goes with a text dataset and the gpt2 model, and they with it; what only makes
    sense for class labels or real features (pruning, mislabel_auc, label_noise, classes, standardize) is refused."""
    from .data.registry import DATASETS, is_text
    from .models.registry import MODELS

    lm = cfg.get("kind") == "language_model"
    ds = cfg["dataset"]
    text_datasets = [n for n, row in DATASETS.items() if row.text]
    if lm != is_text(ds):
        raise ConfigError(f"experiment '{name}': " + (
            f"kind: language_model needs a text dataset ({' or '.join(text_datasets)}), not '{ds['name']}'" if lm else
            f"dataset {ds['name']} (token sequences) needs kind: language_model (has {cfg.get('kind', 'classification')})"))
    lm_models = [n for n, row in MODELS.items() if row.kind == "language_model"]
    if lm != (cfg["model"]["name"] in lm_models):
        raise ConfigError(f"experiment '{name}': " + (
            f"kind: language_model needs model {' or '.join(lm_models)} (token ids in, logits per position out), "
            f"not '{cfg['model']['name']}'"
            if lm else f"model {cfg['model']['name']} is for kind: language_model (has {cfg.get('kind', 'classification')})"))
    if not lm:
        return
    for bad, why in (("pruning" in cfg, "pruning"), ("mislabel_auc" in cfg["metrics"], "the mislabel_auc metric"),
                     (ds.get("label_noise", 0) > 0, "dataset.label_noise"), (bool(ds.get("classes")), "dataset.classes"),
                     (bool(ds.get("standardize")), "dataset.standardize"),
                     (cfg.get("measurement") not in ("loss", "last_token_loss"), f"measurement {cfg.get('measurement')}")):
        if bad:
            raise ConfigError(f"experiment '{name}': {why} does not apply to kind: language_model (measurement loss or "
                              "last_token_loss; no pruning, mislabel_auc, label_noise, classes or standardize)")


# dlds_variance / dlds_w2 compare the subset models' distribution with the full-data models': under
# same_epochs the subset models train alpha of the full-data steps, a step offset as large as 0.95-3.4x
# the between-subset spread of the mean shift (issue 17), so W2 ranks subsets like the mean shift; a
# variance target from fewer than 4 seeds per subset has no measurable split-half reliability.
SPREAD_METRICS = ("dlds_variance", "dlds_w2")
SPREAD_MIN_SEEDS = 4


def _check_fixed_track(name: str, cfg: dict) -> None:
    """lds_fixed_seed (its row's `check`) reads the fixed-seed track's ground truth."""
    if not has_fixed_track(cfg):
        raise ConfigError(f"experiment '{name}' lists lds_fixed_seed but groundtruth.track is not fixed_seed or both")


def _check_mislabel(name: str, cfg: dict) -> None:
    """mislabel_auc (its row's `check`) needs flipped labels."""
    if not 0 < ExperimentSpec.of(cfg).dataset["label_noise"] < 1:
        raise ConfigError(f"experiment '{name}' lists mislabel_auc but dataset.label_noise is not in (0, 1)")


def _check_distributional(name: str, cfg: dict) -> None:
    """dlds_variance / dlds_w2 (their rows' `check`): see SPREAD_METRICS."""
    asked = [m for m in SPREAD_METRICS if m in cfg["metrics"]]
    gt = ExperimentSpec.of(cfg).groundtruth
    if asked and (gt.steps != "same_steps" or gt.seeds_per_subset < SPREAD_MIN_SEEDS):
        raise ConfigError(f"experiment '{name}' lists {', '.join(asked)}: these need groundtruth.steps: same_steps "
                          f"and groundtruth.seeds_per_subset >= {SPREAD_MIN_SEEDS} (has steps: "
                          f"{gt.steps}, seeds_per_subset: {gt.seeds_per_subset})")


def _check_pruning(name: str, cfg: dict) -> None:
    """pruning (its row's `check`): a classification experiment, known methods, fresh retrain seeds enough for
    every scoring group."""
    from .methods.registry import known_methods
    from .pruning import retrain_seeds as pruning_seeds

    spec = ExperimentSpec.of(cfg)
    if spec.kind != "classification":
        raise ConfigError(f"experiment '{name}': pruning is for classification experiments only")
    methods = known_methods()
    for m in cfg["pruning"]["methods"]:
        if m not in methods:
            raise ConfigError(f"unknown method '{m}' in experiments.{name}.pruning.methods; known: {', '.join(methods)}")
    seeds = cfg["pruning"]["retrain_seeds"]  # validated: the schema's default filled in
    overlap = sorted(set(seeds) & set(range(cfg["seeds"]))) if isinstance(seeds, list) else []
    if overlap:
        raise ConfigError(f"experiments.{name}.pruning.retrain_seeds {overlap} overlap the scoring seeds "
                          f"0..{cfg['seeds'] - 1}; retrain on other seeds (e.g. {cfg['seeds']} and up)")
    n_groups = max(1, spec.n_seeds // spec.study("pruning")["ensemble_size"])
    if len(pruning_seeds(cfg["seeds"], seeds)) < n_groups:
        raise ConfigError(f"experiments.{name}.pruning: {n_groups} scoring groups (seeds // ensemble_size) "
                          "need at least one retrain seed each")


def _check_removal(name: str, cfg: dict) -> None:
    """removal (its row's `check`): removal.methods must be the experiment's methods; its seeds fresh
    (tda_core.removal.retrain_seeds)."""
    from .seeds import removal_retrain_seeds

    for m in cfg["removal"]["methods"]:
        if m not in cfg["methods"]:
            raise ConfigError(f"method '{m}' in experiments.{name}.removal.methods is not in its methods "
                              f"[{', '.join(cfg['methods'])}]")
    try:  # pruning's seeds, which it avoids, were checked by pruning's own row before (registry order)
        removal_retrain_seeds(cfg)
    except ConfigError as e:
        raise ConfigError(f"experiments.{name}: {e}") from None


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must be a mapping")
    return validate_config(config)


def resolve_experiment(config: dict, name: str) -> dict:
    """One experiment's settings merged with the global ones, as the jobs see it."""
    if name not in config["experiments"]:
        raise ConfigError(f"unknown experiment '{name}'; known: {', '.join(sorted(config['experiments']))}")
    exp = copy.deepcopy(config["experiments"][name])
    for key in GLOBAL_KEYS:
        exp[key] = copy.deepcopy(config[key])
    exp["name"] = name
    from .data.sources import FILE_SOURCES, data_fingerprint  # numpy only (tda_core.data loads torch lazily)

    if exp["dataset"]["name"] in FILE_SOURCES:
        exp["data_sha256"] = data_fingerprint(exp["dataset"], exp["data_dir"])  # the content enters the hash
    exp["config_hash"] = config_hash(exp)
    return exp


def check_plan(cfg: dict, build_model: bool = True) -> dict | None:
    """Plan-time checks of one resolved experiment (the Snakefile runs them at `snakemake -n`), so that what
    `prepare` or the first training job would reject fails before any job runs, in one line: the data's
    sizes, labels and values (tda_core.data.sources.plan_summary) and, with `build_model`, the model built
    on one example of the data's shape (check_models). Returns the model check it asks for (None: none
    needed: mlp takes any input shape; unet / diffusion and sources without a cheap summary are skipped)."""
    from .data.sources import check_split_sizes, plan_summary
    from .models.registry import model_entry

    spec = ExperimentSpec.of(cfg)
    name, kind = cfg["name"], spec.kind
    try:
        summary = plan_summary(cfg["dataset"], spec.data_dir, kind == "regression")
        if summary is None:
            return None
        check_split_sizes(cfg["dataset"], summary)
    except ConfigError as e:
        raise ConfigError(f"experiment '{name}': {e}") from None
    if kind == "diffusion" or model_entry(cfg["model"]["name"]).any_shape or not summary["n_out"]:
        return None
    spec = {"experiment": name, "model": cfg["model"], "in_shape": list(summary["in_shape"]),
            "n_out": int(summary["n_out"])}
    if build_model:
        check_models([spec])
    return spec


def check_models(specs: list[dict | None]) -> None:
    """Build each model of `specs` (check_plan's) on one dummy example on the CPU, in one child process:
    the Snakemake process stays torch-free (importing torch and timm takes seconds). A check that passed
    is remembered in the user's cache (tda-bench/model_checks.json, keyed by the model config, input shape,
    outputs, and the versions of torch / timm / torchvision / transformers / tda-bench and its model code), so later plans
    skip it; the verdict changes no result. The first failure is a ConfigError in one line."""
    import os
    import subprocess
    import sys

    specs = [s for s in specs if s]
    keys = [_model_check_key(s) for s in specs]
    cache_path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tda-bench" / "model_checks.json"
    try:
        passed = set(json.loads(cache_path.read_text()))
    except (OSError, ValueError, TypeError):
        passed = set()
    todo = [(k, s) for k, s in zip(keys, specs) if k not in passed]
    if not todo:
        return
    package_root = str(Path(__file__).resolve().parent.parent)  # the child imports this very tda_core
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
           "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-c", "from tda_core.config import _model_check_child; _model_check_child()"],
                       input=json.dumps([s for _, s in todo]), capture_output=True, text=True, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if r.returncode != 0 or lines:
        msg = lines[0] if lines else (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(msg if lines else f"the plan-time model check failed: {msg}")
    import tempfile

    tmp = None
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        # Plans running at once (parallel test workers, two snakemake -n) share this file: each writes a
        # temporary file of its own and renames it into place, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix=f".{cache_path.name}.", suffix=".tmp", dir=cache_path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(sorted(passed | {k for k, _ in todo})))
        os.replace(tmp, cache_path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        # a read-only home: the check simply runs again next time


def _model_check_key(spec: dict) -> str:
    from importlib import metadata

    versions = {}
    for dist in ("torch", "timm", "torchvision", "transformers", "tda-bench"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    code = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                  for f in (Path(__file__).resolve().parent / "models").glob("*.py"))
    payload = {k: spec[k] for k in ("model", "in_shape", "n_out")}
    return hashlib.sha256(json.dumps([payload, versions, code], sort_keys=True).encode()).hexdigest()


def _model_check_child() -> None:
    """check_models' child: reads the specs as JSON on stdin, prints one line per failing model."""
    import sys

    from .models import build_model

    for spec in json.loads(sys.stdin.read()):
        try:
            build_model({"model": spec["model"]}, tuple(spec["in_shape"]), spec["n_out"], seed=0)
        except ConfigError as e:
            print(f"experiment '{spec['experiment']}': {e}".replace("\n", " "))
            return


def config_hash(cfg: dict) -> str:
    unhashed = unhashed_keys()
    payload = {k: v for k, v in cfg.items() if k not in unhashed}
    if "data_sha256" in payload:  # the content identifies the data; where it lies does not matter
        where = {"path", "heldout_path"} | ({"tokenizer"} if payload["dataset"].get("tokenizer", "char") != "char" else set())
        payload["dataset"] = {k: v for k, v in payload["dataset"].items() if k not in where}
    gt = payload.get("groundtruth")
    if isinstance(gt, dict) and "from" in gt:
        # Where a ground-truth bank is imported from changes no number (its files are checked against this hash).
        payload["groundtruth"] = gt = {k: v for k, v in gt.items() if k != "from"}
    if isinstance(gt, dict) and gt.get("steps") == "same_epochs":
        # The default reproduces the ground truth from before the key existed: keep those hashes.
        payload["groundtruth"] = {k: v for k, v in gt.items() if k != "steps"}
    gt = payload.get("groundtruth")
    if isinstance(gt, dict) and gt.get("track") == "distributional":
        # Likewise the default track: only fixed_seed / both change the hash.
        payload["groundtruth"] = {k: v for k, v in gt.items() if k != "track"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def shared_experiment_config(cfg: dict) -> dict:
    """The part of a resolved experiment written to results/{exp}/config.json (groundtruth.from, the bank
    the import jobs read, stays job-local: switching between training and importing reruns no prepare)."""
    job_local = job_local_keys()
    shared = {k: v for k, v in cfg.items() if k not in job_local}
    if isinstance(shared.get("groundtruth"), dict) and "from" in shared["groundtruth"]:
        shared["groundtruth"] = {k: v for k, v in shared["groundtruth"].items() if k != "from"}
    return shared


def n_shards(groundtruth_cfg: dict) -> int:
    """How many train_shard jobs the ground truth of `groundtruth_cfg` takes (shard_size subsets each)."""
    return -(-groundtruth_cfg["n_subsets"] // groundtruth_cfg["shard_size"])


def experiments_to_run(config: dict) -> list[str]:
    return list(config.get("run_experiments") or config["experiments"])


def method_options(cfg: dict, method: str) -> dict[str, Any]:
    """The options of a method of `methods:`, or of a tuning variant (its base's with the grid value)."""
    if cfg.get("tuning"):
        from .tuning import variants

        variant = variants(cfg).get(method)
        if variant is not None:
            return dict(variant["options"])
    return dict(cfg.get("method_options", {}).get(method, {}))
