"""workflow/config/paper.yaml (and the default config) validate and dry-run without any data present."""

import re
import subprocess
import sys

import pytest

from tda_core.config import load_config


def _dry_run(repo, tmp_path, configfile):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "-s", str(repo / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(repo / configfile),
           "--config", f"results_dir={tmp_path / 'results'}", f"data_dir={tmp_path / 'no-data-here'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.M))
    return {k: int(v) for k, v in counts.items()}


def test_paper_config_validates_and_dry_runs_without_data(repo, tmp_path):
    cfg = load_config(repo / "workflow/config/paper.yaml")
    exps = cfg["experiments"]
    assert {"mnist-mlp", "fashionmnist-mlp", "fashionmnist-mlp-nonconverged", "fashionmnist-mlp-multistage",
            "cifar10-vit", "cifar10-ddpm"} <= set(exps)
    assert exps["cifar10-vit"]["groundtruth"]["n_subsets"] == 100
    assert exps["cifar10-vit"]["groundtruth"]["seeds_per_subset"] == 5
    assert 10 in exps["cifar10-vit"]["pruning"]["percents"]  # 5000 of 50000, as in d-TDA
    counts = _dry_run(repo, tmp_path, "workflow/config/paper.yaml")
    assert not (tmp_path / "no-data-here").exists()
    # cifar10-vit: (if_ekfac: fixed + dtda, trak (an ensemble): dtda only) x 4 p, one job each for all
    # 10 retrain seeds (10..19, disjoint from the scoring seeds 0..9)
    assert exps["cifar10-vit"]["pruning"]["retrain_seeds"] == 10
    assert counts["prune_retrain"] == 3 * 4 and counts["prune_full"] == 1
    assert counts["prune_random"] == 4 and counts["loo_train"] == 1
    # 4 MLP experiments x 10 shards, cifar10-vit and cifar10-ddpm 50 shards each (2 subsets x 5 seeds)
    assert counts["train_shard"] == 4 * 10 + 50 + 50 and counts["leaderboard"] == 1
    assert counts["diffusion_pictures"] == 1


def test_default_config_schedules_the_evaluation_jobs(repo, tmp_path):
    from tda_core.methods.registry import get_method

    cfg = load_config(repo / "workflow/config/config.yaml")
    counts = _dry_run(repo, tmp_path, "workflow/config/config.yaml")
    exps = cfg["experiments"]

    def score_files(exp, method):  # per-seed methods: one file per seed; ensembles: one "seedall"
        return 1 if get_method(method).all_seeds_at_once else exps[exp]["seeds"]

    # pruning: (fixed + dtda for per-seed methods, dtda for ensembles) x p x selection, baselines per p and one
    # full-data job per experiment; each job retrains every retrain seed
    prune = [(e, m) for e, x in exps.items() if "pruning" in x for m in x["pruning"]["methods"]]
    n_retrain = sum(len(exps[e]["pruning"]["percents"]) * len(exps[e]["pruning"]["selection"])
                    * (1 if get_method(m).all_seeds_at_once and not get_method(m).per_seed_samples else 2) for e, m in prune)
    assert n_retrain > 0 and counts["prune_retrain"] == n_retrain
    assert counts["prune_random"] == sum(len(x["pruning"]["percents"]) for x in exps.values() if "pruning" in x)
    assert counts["prune_full"] == sum("pruning" in x for x in exps.values())
    assert exps["digits-mlp-nonconverged"]["pruning"]["retrain_seeds"] == 6
    # one attribute job per (experiment, method) computes every seed and target (val, train_self)
    assert counts["attribute"] == sum(len(x["methods"]) for x in exps.values())
    assert "attribute_target" not in counts
    assert counts["loo_train"] == sum("loo" in x for x in exps.values()) >= 1
    assert counts["loo_evaluate"] == counts["loo_train"]  # one job scores every method


@pytest.mark.parametrize("bad, match", [
    ({"pruning": {"methods": ["nope"]}}, "pruning.methods"),
    ({"metrics": ["lds", "mislabel_auc"]}, "label_noise"),
    ({"seeds": 3, "pruning": {"methods": ["random"], "retrain_seeds": [2, 3]}}, "retrain_seeds .* overlap"),
])
def test_evaluation_blocks_are_checked(bad, match):
    from tda_core.config import validate_config
    from tda_core.errors import ConfigError

    exp = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, **bad}
    with pytest.raises(ConfigError, match=match):
        validate_config({"experiments": {"x": exp}})
