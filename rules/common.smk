# Helper functions of the rules (attribute, evaluate, loo, prune, diffusion, report), kept
# apart from the rules as `snakemake --lint` asks. Everything imported here is torch-free (registry
# rows, not method classes): building the DAG must stay cheap (tests/test_workflow.py checks it).
from tda_core.metrics.registry import metric_targets
from tda_core.methods.registry import curvature_fit
from tda_core.pruning import percent_tag, retrain_seeds, variant_token
from tda_core import layout
from tda_core.spec import has_fixed_track
from tda_core.studies import STUDIES


BOARD = layout.ResultsLayout(RESULTS_DIR)  # the leaderboard's files


def exp_paths(exp):
    """Experiment `exp`'s artifact paths (tda_core/layout.py; exp may be the "{exp}" wildcard)."""
    return layout.ExperimentLayout(RESULTS_DIR, exp)


def bank_url(exp):
    """The ground-truth bank the experiment imports (groundtruth.from), or None: it trains."""
    return EXPERIMENTS[exp]["groundtruth"].get("from") or None


def experiments_pattern(names):
    """An {exp} wildcard constraint matching exactly these experiments ("(?!)" matches none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


# rules/train.smk: the experiments that train their ground truth, and those that import it from a bank.
TRAINED = experiments_pattern([e for e in EXPERIMENTS if not bank_url(e)])
IMPORTED = experiments_pattern([e for e in EXPERIMENTS if bank_url(e)])


def full_seeds(exp):
    return range(EXPERIMENTS[exp]["seeds"])


def model_files(exp):
    return [exp_paths(exp).model(s) for s in full_seeds(exp)]


def score_seeds(exp, method):
    """Per-seed methods write seed{r} for every full-data seed; ensemble methods one 'seedall'."""
    return layout.score_seeds(method_entry(method).seed_usage, EXPERIMENTS[exp]["seeds"])


def score_dir(exp, method):
    """The attribute job's output folder: every seed and target of the method."""
    return exp_paths(exp).score_dir(method)


def score_dirs(exp):
    return [score_dir(exp, m) for m in EXPERIMENTS[exp]["methods"]]


def attributed_methods(exp):
    """Every method with an attribute job: the experiment's methods, pruning methods and tuning variants."""
    pruning = (pruning_cfg(exp) or {}).get("methods") or []
    return list(dict.fromkeys([*EXPERIMENTS[exp]["methods"], *pruning, *tuning_score_folders(exp)]))


def method_curvature_fit(exp, method):
    """The shared curvature fit the method reads with its options (registry.curvature_fit), or None."""
    return curvature_fit(method, method_options(EXPERIMENTS[exp], method))


def curvature_fits(exp):
    """key -> {kind, checkpoints, options} of every shared curvature fit the experiment's methods read:
    methods with equal curvature options (damping and other score-time options aside) share one. A key
    that one method alone reads gets no fit_curvature job: that method's attribute job fits it (once,
    into its own cache), which saves a process start (torch, W&B, the model library) per such key."""
    fits, readers = {}, {}
    for method in attributed_methods(exp):
        fit = method_curvature_fit(exp, method)
        if fit is not None:
            fits[fit["key"]] = {k: fit[k] for k in ("kind", "checkpoints", "options")}
            readers[fit["key"]] = readers.get(fit["key"], 0) + 1
    return {key: fit for key, fit in fits.items() if readers[key] > 1}


def curvature_fit_spec(w):
    """The fit_curvature job's --fit: what its key stands for (never parsed from the key itself)."""
    fits = curvature_fits(w.exp)
    if w.curvature not in fits:
        raise WorkflowError(f"tda-bench: no method of {w.exp} reads the curvature fit '{w.curvature}'; "
                            f"its fits: {', '.join(sorted(fits)) or 'none'}")
    return json.dumps(fits[w.curvature], sort_keys=True)


def curvature_inputs(w):
    """The shared curvature fit the attribute job of (exp, method) reads: one folder, or none (it fits no
    curvature, or no other method reads its key: it fits its own)."""
    fit = method_curvature_fit(w.exp, w.method)
    return [] if fit is None or fit["key"] not in curvature_fits(w.exp) else [exp_paths(w.exp).curvature_dir(fit["key"])]


def score_targets(exp, method):
    """query, plus val if the method picks pruned points, train_self if a metric needs self-influence,
    randomized if the randomization sanity check is listed."""
    cfg = EXPERIMENTS[exp]
    targets = ["query"]
    if method not in cfg["methods"]:  # a tuning variant (rules/tune.smk): scored by LDS only
        return targets
    if method in ((cfg.get("pruning") or {}).get("methods") or []):
        targets.append("val")
    targets += [t for t in dict.fromkeys(t for m in cfg["metrics"] for t in metric_targets(m)) if t not in targets]
    return targets


def pruning_cfg(exp):
    return EXPERIMENTS[exp].get("pruning")


def pruning_variants(exp, method):
    """The job tokens of (variant, selection) (tda_core.pruning.variant_token). A pure ensemble ([n_val, N]
    scores for all seeds together) has no fixed-seed variant."""
    variants = pruning_cfg(exp)["variants"]
    if method_entry(method).seed_usage == "pooled":
        variants = [v for v in variants if v != "fixed"]
    return [variant_token(v, sel) for sel in pruning_cfg(exp)["selection"] for v in variants]


def pruning_retrain_seeds(exp):
    """The fresh seeds every pruning job retrains with (pruning.retrain_seeds; disjoint from 0..R-1)."""
    return retrain_seeds(EXPERIMENTS[exp]["seeds"], pruning_cfg(exp)["retrain_seeds"])


def pruning_seed_args(w):
    return " ".join(map(str, pruning_retrain_seeds(w.exp)))


def pruning_ensemble_size(w):
    return pruning_cfg(w.exp)["ensemble_size"]


def pruning_runs(exp):
    """One job file per (method, variant, p), per p for random removal, one for the full-data baseline;
    each holds the runs of every retrain seed."""
    cfg = pruning_cfg(exp)
    runs = [exp_paths(exp).pruning_full]
    for p in map(percent_tag, cfg["percents"]):
        if cfg["random_baseline"]:
            runs.append(exp_paths(exp).pruning_random(p))
        runs += [exp_paths(exp).pruning_run(m, v, p) for m in cfg["methods"] for v in pruning_variants(exp, m)]
    return runs


def study_experiments(study):
    """The experiments whose config has the study's block (tda_core/studies.py)."""
    return [exp for exp, cfg in EXPERIMENTS.items() if cfg.get(study)]


def study_board_files(bundle):
    """{study: the board file of each of its experiments} of the bundle studies (bundle=True: read with the
    metrics) or of the others (their own --study files), in the registry's order."""
    return {name: [exp_paths(exp).study_file(row.board_file) for exp in study_experiments(name)]
            for name, row in STUDIES.items() if row.bundle == bundle}


def study_args(w, input):
    """The leaderboard's --study NAME FILE... of every study with files (not the bundle studies')."""
    return " ".join(f"--study {name} {' '.join(files)}" for name, files in study_board_files(False).items() if files)


def study_images():
    """Every study's plots of every experiment with its block, in the registry's order."""
    return [exp_paths(exp).study_file(image) for name, row in STUDIES.items() for exp in study_experiments(name)
            for image in row.images]


def diffusion_experiments():
    return [exp for exp, cfg in EXPERIMENTS.items() if cfg.get("kind") == "diffusion"]


def diffusion_picture_dirs():
    """results/{exp}/pictures of every diffusion experiment (influence grids per query, samples)."""
    return [exp_paths(exp).pictures for exp in diffusion_experiments()]


def all_metric_files():
    """One evaluation bundle (every metric of every method) per experiment."""
    return [exp_paths(exp).metrics for exp in EXPERIMENTS]


def shards(exp):
    """The ground truth's shards (shard_size subsets each)."""
    from tda_core.config import n_shards

    return [exp_paths(exp).shard(k) for k in range(n_shards(EXPERIMENTS[exp]["groundtruth"]))]


def loo_seed_args(exp):
    """The leave-one-out study's retrain seeds and seed protocol (tda_core/seeds.py), as its rerun trigger."""
    from tda_core.seeds import LOO_PROTOCOL, loo_seeds

    return f"protocol {LOO_PROTOCOL} seeds {' '.join(map(str, loo_seeds(EXPERIMENTS[exp])))}"


def groundtruth_seed_args(exp):
    """The ground truth's subset seeds and seed protocol (tda_core/seeds.py), as a shard's rerun trigger."""
    from tda_core.seeds import GROUNDTRUTH_PROTOCOL, groundtruth_seeds

    return f"protocol {GROUNDTRUTH_PROTOCOL} seeds {' '.join(map(str, groundtruth_seeds(EXPERIMENTS[exp])))}"


def fixed_shards(exp):
    """The fixed-seed track's shards (groundtruth.track fixed_seed / both), else none."""
    from tda_core.config import n_shards

    gt = EXPERIMENTS[exp]["groundtruth"]
    if not has_fixed_track(EXPERIMENTS[exp]):
        return []
    return [exp_paths(exp).fixed_shard(k) for k in range(n_shards(gt))]


def tuning_grid(exp):
    """The experiment's tuning grid points, the default point of each (method, option) included."""
    from tda_core.tuning import grid_points

    return grid_points(EXPERIMENTS[exp])


def tuning_score_folders(exp):
    """The methods and variants whose query scores the tune job reads."""
    return list(dict.fromkeys(p["scores"] for p in tuning_grid(exp)))


def removal_cfg(exp):
    return EXPERIMENTS[exp].get("removal")


def removal_seed_args(w):
    """The fresh seeds of every removal job (removal.retrain_seeds; disjoint from 0..R-1 and pruning's)."""
    from tda_core.removal import retrain_seeds as removal_seeds

    cfg = EXPERIMENTS[w.exp]
    pruning = pruning_retrain_seeds(w.exp) if cfg.get("pruning") else []
    return " ".join(map(str, removal_seeds(cfg["seeds"], removal_cfg(w.exp)["retrain_seeds"], pruning)))


def removal_options(w):
    """The removal settings that change the jobs' numbers (not methods nor ks: one job per method and k)."""
    cfg = removal_cfg(w.exp)
    return json.dumps({k: cfg[k] for k in ("queries", "query_seed", "steps")})


def removal_runs(exp):
    """One job file per (method, k), per k for random removal (removal.random_baseline); the full-data
    baseline is the summary's own input."""
    cfg = removal_cfg(exp)
    tags = [f"{k:g}" for k in cfg["ks"]]
    runs = [exp_paths(exp).removal_run(m, k) for m in cfg["methods"] for k in tags]
    if cfg["random_baseline"]:
        runs += [exp_paths(exp).removal_random(k) for k in tags]
    return runs
