"""Did the full-data models learn? The rule the evaluate bundle and the leaderboard's signal table share.

A model that did not learn (an architecture that cannot fit the data, a head with a stray class) gives
attributions of nothing; the board flags its experiment instead of ranking methods on it silently.
Torch-free (the leaderboard reads bundles without torch).
"""
from __future__ import annotations

import math

import numpy as np

# Test accuracy must beat the majority-class rate by this much (absolute). 0.05 is about two standard
# errors of an accuracy near 0.5 on 400 test examples: a model below it is indistinguishable from, or
# barely above, always answering the most frequent class.
DID_NOT_LEARN_MARGIN = 0.05


IGNORE_INDEX = -100  # a padded token's target (tda_core.tasks.IGNORE_INDEX; this module stays torch-free)


def label_prior(kind: str, train_y: np.ndarray, test_y: np.ndarray, n_classes: int | None = None) -> dict:
    """What a model that learned nothing about x reaches on the test split, fitted to the training labels:
    classification: chance_accuracy = the test rate of the most frequent training class, prior_loss = the
    test cross-entropy of the training label frequencies (add-one smoothed); regression: prior_loss = the
    test loss 0.5 ||y - mean(y_train)||^2 of predicting the training mean; language_model: the same over
    real (not padded) target tokens with the training tokens' unigram frequencies (add-one smoothed over the
    n_classes-token vocabulary): prior_loss is the unigram cross-entropy per test token, prior_perplexity
    its exp, chance_accuracy the test rate of the most frequent training token."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if kind == "regression":
        mean = train_y.astype(float).mean(axis=0)
        diff = (test_y.astype(float) - mean).reshape(len(test_y), -1)
        return {"prior_loss": float(0.5 * (diff ** 2).sum(axis=1).mean())}
    if kind == "language_model":
        train_y, test_y = train_y[train_y != IGNORE_INDEX], test_y[test_y != IGNORE_INDEX]
    k = max(int(max(train_y.max(), test_y.max())) + 1, int(n_classes or 0))
    freq = (np.bincount(train_y, minlength=k) + 1.0) / (len(train_y) + k)
    prior = {"chance_accuracy": float(np.mean(test_y == int(np.argmax(freq)))),
             "prior_loss": float(-np.log(freq[test_y]).mean())}
    if kind == "language_model":
        prior["prior_perplexity"] = float(np.exp(prior["prior_loss"]))
    return prior


def _number(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def did_not_learn(fit: dict) -> str | None:
    """Why the full-data models of `fit` (an evaluate bundle's model_fit) did not learn, or None.

    Classification: mean test accuracy below chance_accuracy + DID_NOT_LEARN_MARGIN. Regression (no
    accuracy) and language models (kind language_model: next-token accuracy says little, a model can learn
    the text and still most often predict a space): mean test loss not below prior_loss, the label mean's
    loss or the unigram cross-entropy. The test loss of a classifier is shown, not judged: an overconfident
    classifier that overfits can exceed the prior's cross-entropy while it still learned."""
    acc, chance = _number(fit.get("test_accuracy")), _number(fit.get("chance_accuracy"))
    if acc is not None and chance is not None and fit.get("kind") != "language_model":
        if acc < chance + DID_NOT_LEARN_MARGIN:
            return f"test accuracy {acc:.3f} < chance {chance:.3f} + {DID_NOT_LEARN_MARGIN}"
        return None
    loss, prior = _number(fit.get("test_loss")), _number(fit.get("prior_loss"))
    if loss is not None and prior is not None and loss >= prior:
        what = "unigram" if fit.get("kind") == "language_model" else "label-prior"
        return f"test loss {loss:.3g} >= {what} loss {prior:.3g}"
    return None
