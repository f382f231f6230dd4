"""Issue 18 item 2: a model that did not learn is visible (evaluate bundle's model_fit, the signal table)."""
import numpy as np
import pytest

from tda_core.api import load_experiment
from tda_core.leaderboard import LEGEND, signal_table
from tda_core.model_fit import DID_NOT_LEARN_MARGIN, did_not_learn, label_prior
from tda_core.stages.evaluate import model_fit
from tda_core.stages.train import train_full


def _experiment(tmp_path, learnable: bool, kind="classification"):
    """Planted truth: y depends on x (learnable) or is drawn independently of x (nothing to learn: no model
    beats the majority class on the 1000 test examples but by chance, 3 standard errors below the margin)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1300, 8)).astype(np.float32)
    if kind == "regression":
        y = (2 * x[:, 0] + x[:, 1] if learnable else rng.normal(size=1300)).astype(np.float32)
    else:
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) if learnable else rng.integers(0, 2, 1300)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    exp = {"kind": kind, "dataset": {"name": "npz", "path": str(tmp_path / "d.npz"), "n_train": 200, "n_val": 50,
                                     "n_query": 50, "n_test": 1000},
           "model": {"name": "mlp", "hidden": [16]}, "seeds": 2, "methods": ["random"],
           "train": {"lr": 0.05, "epochs": 10, "batch_size": 32, "n_checkpoints": 2}}
    if kind == "regression":
        exp["measurement"] = "loss"
    e = load_experiment({"tracking": {"mode": "none"}, "results_dir": str(tmp_path / "results"),
                         "experiments": {"e": exp}}, "e")
    for seed in range(2):
        train_full(e, seed, e.model_path(seed), {"mode": "none"})
    return e


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_a_model_that_did_not_learn_is_flagged_and_one_that_learned_is_not(tmp_path, kind):
    flat = model_fit(_experiment(tmp_path / "flat", learnable=False, kind=kind))
    good = model_fit(_experiment(tmp_path / "good", learnable=True, kind=kind))
    assert flat["did_not_learn"] and not good["did_not_learn"], (flat, good)
    if kind == "classification":
        assert abs(flat["test_accuracy"] - 0.5) < 0.06 and good["test_accuracy"] > 0.85
        assert 0.45 < flat["chance_accuracy"] < 0.55 and len(flat["test_accuracy_per_seed"]) == 2
        assert good["test_loss"] < good["prior_loss"] - 0.2  # cross-entropy well below the prior's ln 2
    else:
        assert good["test_loss"] < 0.3 * good["prior_loss"]


def test_label_prior_is_the_majority_rate_and_the_prior_cross_entropy():
    train, test = np.array([0] * 6 + [1] * 3 + [2] * 1), np.array([0, 1, 1, 2])
    prior = label_prior("classification", train, test)
    freq = np.array([7, 4, 2]) / 13  # add-one smoothed training frequencies
    assert prior["chance_accuracy"] == 0.25
    assert prior["prior_loss"] == pytest.approx(-np.mean(np.log(freq[test])))
    reg = label_prior("regression", np.array([1.0, 3.0]), np.array([0.0, 4.0]))
    assert reg["prior_loss"] == pytest.approx(0.5 * (4 + 4) / 2)


def test_the_rule_and_its_margin():
    assert did_not_learn({"test_accuracy": 0.13, "chance_accuracy": 0.33})  # the SqueezeNet of the issue
    assert did_not_learn({"test_accuracy": 0.33 + DID_NOT_LEARN_MARGIN - 0.001, "chance_accuracy": 0.33})
    assert did_not_learn({"test_accuracy": 0.33 + DID_NOT_LEARN_MARGIN, "chance_accuracy": 0.33}) is None
    assert did_not_learn({"test_loss": 1.0, "prior_loss": 0.9})  # regression: no accuracy
    assert did_not_learn({"test_loss": 0.2, "prior_loss": 0.9}) is None
    assert did_not_learn({"test_accuracy": float("nan"), "chance_accuracy": 0.3}) is None  # unknown: not judged


def test_signal_table_shows_accuracy_and_flags_the_experiment():
    bundles = [
        {"experiment": "squeeze", "model_fit": {"test_accuracy": 0.13, "chance_accuracy": 0.33, "test_loss": 1.2,
                                                "prior_loss": 1.1, "did_not_learn": False}},  # verdict recomputed
        {"experiment": "mlp", "noise": {"lds": {"reliability": 0.5, "ceiling": 0.8}},
         "model_fit": {"test_accuracy": 0.91, "chance_accuracy": 0.11, "test_loss": 0.3, "prior_loss": 2.3}},
    ]
    table = signal_table(bundles)
    assert table.loc["squeeze", "model"].startswith("did not learn: test accuracy 0.130 < chance 0.330")
    assert table.loc["mlp", "model"] == "learned"
    assert table.loc["mlp", "test accuracy (chance)"] == "0.910 (0.110)"
    assert table.loc["squeeze", "test loss (label prior)"] == "1.2 (1.1)"
    assert any(f"chance + {DID_NOT_LEARN_MARGIN}" in line for line in LEGEND)
