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


def label_prior(kind: str, train_y: np.ndarray, test_y: np.ndarray) -> dict:
    """What a model that learned nothing about x reaches on the test split, fitted to the training labels:
    classification: chance_accuracy = the test rate of the most frequent training class, prior_loss = the
    test cross-entropy of the training label frequencies (add-one smoothed); regression: prior_loss = the
    test loss 0.5 ||y - mean(y_train)||^2 of predicting the training mean."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if kind == "regression":
        mean = train_y.astype(float).mean(axis=0)
        diff = (test_y.astype(float) - mean).reshape(len(test_y), -1)
        return {"prior_loss": float(0.5 * (diff ** 2).sum(axis=1).mean())}
    k = int(max(train_y.max(), test_y.max())) + 1
    freq = (np.bincount(train_y, minlength=k) + 1.0) / (len(train_y) + k)
    return {"chance_accuracy": float(np.mean(test_y == int(np.argmax(freq)))),
            "prior_loss": float(-np.log(freq[test_y]).mean())}


def _number(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def did_not_learn(fit: dict) -> str | None:
    """Why the full-data models of `fit` (an evaluate bundle's model_fit) did not learn, or None.

    Classification: mean test accuracy below chance_accuracy + DID_NOT_LEARN_MARGIN. Regression (no
    accuracy): mean test loss not below prior_loss. The test loss of a classifier is shown, not judged:
    an overconfident classifier that overfits can exceed the prior's cross-entropy while it still learned."""
    acc, chance = _number(fit.get("test_accuracy")), _number(fit.get("chance_accuracy"))
    if acc is not None and chance is not None:
        if acc < chance + DID_NOT_LEARN_MARGIN:
            return f"test accuracy {acc:.3f} < chance {chance:.3f} + {DID_NOT_LEARN_MARGIN}"
        return None
    loss, prior = _number(fit.get("test_loss")), _number(fit.get("prior_loss"))
    if loss is not None and prior is not None and loss >= prior:
        return f"test loss {loss:.3g} >= label-prior loss {prior:.3g}"
    return None
