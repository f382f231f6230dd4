# Helper functions of the rules (attribute, evaluate, loo, prune, diffusion, report), kept
# apart from the rules as `snakemake --lint` asks. Everything imported here is torch-free (registry
# rows, not method classes): building the DAG must stay cheap (tests/test_workflow.py checks it).
from tda_core.metrics.registry import metric_target, metric_targets
from tda_core.pruning import percent_tag, retrain_seeds
from tda_core.targets import score_stem


def full_seeds(exp):
    return range(EXPERIMENTS[exp]["seeds"])


def score_seeds(exp, method):
    """Per-seed methods write seed{r} for every full-data seed; ensemble methods one 'seedall'."""
    return ["all"] if method_entry(method).ensemble else list(full_seeds(exp))


def score_dir(exp, method):
    """The attribute job's output folder: every seed and target of the method."""
    return f"{R}/{exp}/scores/{method}"


def score_dirs(exp):
    return [score_dir(exp, m) for m in EXPERIMENTS[exp]["methods"]]


def score_targets(exp, method):
    """query, plus val if the method picks pruned points, train_self if a metric needs self-influence,
    randomized if the randomization sanity check is listed."""
    cfg = EXPERIMENTS[exp]
    targets = ["query"]
    if method in ((cfg.get("pruning") or {}).get("methods") or []):
        targets.append("val")
    targets += [t for t in dict.fromkeys(t for m in cfg["metrics"] for t in metric_targets(m)) if t not in targets]
    return targets


def score_jsons(exp, method, target="query"):
    return [f"{score_dir(exp, method)}/{score_stem(target, s)}.json" for s in score_seeds(exp, method)]


def pruning_cfg(exp):
    return EXPERIMENTS[exp].get("pruning")


def pruning_variants(exp, method):
    """A pure ensemble ([n_val, N] scores for all seeds together) has no fixed-seed variant."""
    variants = pruning_cfg(exp)["variants"]
    if method_entry(method).seeds == "pooled":
        return [v for v in variants if v != "fixed"]
    return variants


def pruning_retrain_seeds(exp):
    """The fresh seeds every pruning job retrains with (pruning.retrain_seeds; disjoint from 0..R-1)."""
    return retrain_seeds(EXPERIMENTS[exp]["seeds"], pruning_cfg(exp)["retrain_seeds"])


def pruning_seed_args(w):
    return " ".join(map(str, pruning_retrain_seeds(w.exp)))


def pruning_runs(exp):
    """One job file per (method, variant, p), per p for random removal, one for the full-data baseline;
    each holds the runs of every retrain seed."""
    cfg, base = pruning_cfg(exp), f"{R}/{exp}/pruning"
    runs = [f"{base}/_full.json"]
    for p in map(percent_tag, cfg["percents"]):
        if cfg["random_baseline"]:
            runs.append(f"{base}/_random/p{p}.json")
        runs += [f"{base}/{m}/{v}/p{p}.json" for m in cfg["methods"] for v in pruning_variants(exp, m)]
    return runs


def pruning_val_scores(w):
    """Every scoring seed's validation scores (fixed: retrain seed k uses seed k mod R's; dtda: their mean)."""
    return score_jsons(w.exp, w.method, "val")


def pruning_summaries():
    return [f"{R}/{exp}/pruning/summary.json" for exp, cfg in EXPERIMENTS.items() if cfg.get("pruning")]


def pruning_plots():
    return [f"{R}/{exp}/pruning/pruning.png" for exp, cfg in EXPERIMENTS.items() if cfg.get("pruning")]


def loo_experiments():
    return [exp for exp, cfg in EXPERIMENTS.items() if cfg.get("loo")]


def loo_all_results():
    return [f"{R}/{exp}/loo/results.json" for exp in loo_experiments()]


def loo_plots():
    return [f"{R}/{exp}/loo/loo.png" for exp in loo_experiments()]


def diffusion_experiments():
    return [exp for exp, cfg in EXPERIMENTS.items() if cfg.get("kind") == "diffusion"]


def diffusion_picture_dirs():
    """results/{exp}/pictures of every diffusion experiment (influence grids per query, samples)."""
    return [f"{R}/{exp}/pictures" for exp in diffusion_experiments()]


def all_score_jsons(exp):
    return [p for m in EXPERIMENTS[exp]["methods"] for p in score_jsons(exp, m)]


def evaluation_score_jsons(exp):
    """Every method's score files of every target the experiment's metrics need."""
    targets = dict.fromkeys(t for m in EXPERIMENTS[exp]["metrics"] for t in metric_targets(m))
    return [p for m in EXPERIMENTS[exp]["methods"] for t in targets for p in score_jsons(exp, m, t)]


def all_metric_files():
    """One evaluation bundle (every metric of every method) per experiment."""
    return [f"{R}/{exp}/metrics.json" for exp in EXPERIMENTS]


def fixed_shards(exp):
    """The fixed-seed track's shards (groundtruth.track fixed_seed / both), else none."""
    from tda_core.config import n_shards

    gt = EXPERIMENTS[exp]["groundtruth"]
    if gt.get("track", "distributional") not in ("fixed_seed", "both"):
        return []
    return expand(f"{R}/{exp}/groundtruth/fixed_shard{{k}}.npz", k=range(n_shards(gt)))


def removal_cfg(exp):
    return EXPERIMENTS[exp].get("removal")


def removal_experiments():
    return [exp for exp, cfg in EXPERIMENTS.items() if cfg.get("removal")]


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
    cfg, base = removal_cfg(exp), f"{R}/{exp}/removal"
    tags = [f"{k:g}" for k in cfg["ks"]]
    runs = [f"{base}/methods/{m}/k{k}.json" for m in cfg["methods"] for k in tags]
    if cfg["random_baseline"]:
        runs += [f"{base}/baselines/random_k{k}.json" for k in tags]
    return runs


def removal_bundles():
    return [f"{R}/{exp}/removal/results.json" for exp in removal_experiments()]


def removal_plots():
    return [f"{R}/{exp}/removal/removal.png" for exp in removal_experiments()]
