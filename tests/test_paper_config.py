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
            "cifar10-vit"} <= set(exps)
    assert exps["cifar10-vit"]["groundtruth"]["n_subsets"] == 100
    assert exps["cifar10-vit"]["groundtruth"]["seeds_per_subset"] == 5
    assert 10 in exps["cifar10-vit"]["pruning"]["percents"]  # 5000 of 50000, as in d-TDA
    counts = _dry_run(repo, tmp_path, "workflow/config/paper.yaml")
    assert not (tmp_path / "no-data-here").exists()
    # cifar10-vit: (if_ekfac: fixed + dtda, trak (an ensemble): dtda only) x 4 p x 10 seeds
    assert counts["prune_retrain"] == 3 * 4 * 10
    assert counts["prune_random"] == 4 * 10 and counts["loo_train"] == 1
    assert counts["train_shard"] == 4 * 10 + 50 and counts["leaderboard"] == 1


def test_default_config_schedules_the_evaluation_jobs(repo, tmp_path):
    counts = _dry_run(repo, tmp_path, "workflow/config/config.yaml")
    # digits-mlp: if_ekfac x {fixed, dtda} x {10, 20} x 2 seeds; val scores of if_ekfac for 2 seeds;
    # digits-mlp-nonconverged: train_self scores of 4 methods x 2 seeds for mislabel_auc
    assert counts["prune_retrain"] == 8 and counts["prune_random"] == 4 and counts["prune_full"] == 2
    assert counts["attribute_target"] == 2 + 8
    assert counts["loo_train"] == 1 and counts["loo_evaluate"] == 4


@pytest.mark.parametrize("bad, match", [
    ({"pruning": {"methods": ["nope"]}}, "pruning.methods"),
    ({"metrics": ["lds", "mislabel_auc"]}, "label_noise"),
])
def test_evaluation_blocks_are_checked(bad, match):
    from tda_core.config import validate_config
    from tda_core.errors import ConfigError

    exp = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, **bad}
    with pytest.raises(ConfigError, match=match):
        validate_config({"experiments": {"x": exp}})
