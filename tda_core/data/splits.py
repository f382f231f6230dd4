"""Deterministic train / validation / query / test splits, label noise, and subset masks.

Text sources (tda_core/data/text.py) split whole token sequences: each sequence is one example, x and
y int64 [n, seq_len] through every split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .sources import check_class_labels, integer_labels, data_fingerprint, load_source, source_origin
from .registry import is_text
from .text import load_text


@dataclass
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    corrupted: np.ndarray  # bool [n_train]: labels replaced by label_noise
    n_classes: int  # model outputs: classes (classification), target dimension (regression), vocabulary (text)

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    def to(self, device) -> "Splits":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Splits(**moved)


def load_splits(cfg: dict) -> Splits:
    from ..spec import ExperimentSpec

    spec = ExperimentSpec.of(cfg)
    ds = cfg["dataset"]
    data_dir = spec.data_dir
    if spec.data_sha256 and data_fingerprint(ds, data_dir) != spec.data_sha256:
        raise ConfigError(f"{source_origin(ds, data_dir)} changed since the experiment was resolved "
                          "(its sha256 differs); rerun the workflow (prepare) on the new data")
    regression = spec.kind == "regression"
    text = is_text(ds)
    unit = "sequences" if text else "examples"
    if text:  # token windows (int64 x and y [n, seq_len]); the model's outputs are the vocabulary
        pools = load_text(ds, data_dir)
        train_pool, heldout_pool, vocab_size = pools.train, pools.heldout, pools.vocab_size
    else:
        train_pool, heldout_pool = load_source(ds, data_dir, spec.download)
        train_pool = _cast_labels(train_pool, regression, source_origin(ds, data_dir))
        heldout_pool = _cast_labels(heldout_pool, regression, source_origin(ds, data_dir)) if heldout_pool else None
    if ds.get("classes"):
        train_pool = _keep_classes(train_pool, ds["classes"])
        heldout_pool = _keep_classes(heldout_pool, ds["classes"]) if heldout_pool else None
    rng = np.random.default_rng(ds["split_seed"])
    n_tr, n_val, n_q, n_test = ds["n_train"], ds["n_val"], ds["n_query"], ds.get("n_test")

    if heldout_pool is None:  # one pool (digits): carve all four splits out of it
        x, y = train_pool
        need = n_tr + n_val + n_q + (n_test or 1)
        if need > len(y):
            raise ConfigError(f"dataset {ds['name']} has {len(y)} {unit}, splits need {need} "
                              f"(n_train {n_tr} + n_val {n_val} + n_query {n_q} + n_test {n_test or 1})")
        perm = rng.permutation(len(y))
        cuts = np.cumsum([n_tr, n_val, n_q])
        tr, va, qu, te = np.split(perm, cuts)
        te = te[:n_test] if n_test else te
        parts = [(x[i], y[i]) for i in (tr, va, qu, te)]
    else:
        (x, y), (hx, hy) = train_pool, heldout_pool
        if n_tr > len(y) or n_val + n_q + (n_test or 1) > len(hy):
            raise ConfigError(f"dataset {ds['name']} is too small for the configured split sizes ({len(y)} training "
                              f"and {len(hy)} held-out {unit} for n_train {n_tr}, n_val + n_query + n_test "
                              f"{n_val + n_q + (n_test or 1)})")
        tr = rng.permutation(len(y))[:n_tr]
        perm = rng.permutation(len(hy))
        va, qu, te = np.split(perm, np.cumsum([n_val, n_q]))
        te = te[:n_test] if n_test else te
        parts = [(x[tr], y[tr])] + [(hx[i], hy[i]) for i in (va, qu, te)]

    if ds.get("standardize") and not text:  # token ids are never standardised (config validation refuses it)
        parts = _standardize(parts, regression)
    if text:
        n_classes = vocab_size
    elif regression:
        n_classes = 1 if parts[0][1].ndim == 1 else parts[0][1].shape[1]
    else:
        pools = [train_pool[1]] + ([heldout_pool[1]] if heldout_pool else [])
        n_classes = check_class_labels(np.concatenate(pools), source_origin(ds, data_dir), ds.get("n_classes"))
    train_y = parts[0][1].copy()
    corrupted = np.zeros(len(train_y), dtype=bool)
    if ds.get("label_noise", 0) > 0 and not text:
        noise_rng = np.random.default_rng([ds["split_seed"], 7919])
        idx = noise_rng.choice(len(train_y), size=int(round(ds["label_noise"] * len(train_y))), replace=False)
        shift = noise_rng.integers(1, n_classes, size=len(idx))  # a different class, never the true one
        train_y[idx] = (train_y[idx] + shift) % n_classes
        corrupted[idx] = True

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Splits(
        t(parts[0][0]), t(train_y), t(parts[1][0]), t(parts[1][1]), t(parts[2][0]), t(parts[2][1]),
        t(parts[3][0]), t(parts[3][1]), corrupted, n_classes,
    )


def _cast_labels(pool, regression: bool, origin: str):
    x, y = pool
    if regression:
        return x, np.asarray(y, dtype=np.float32)
    return x, integer_labels(y, origin)


def _standardize(parts, regression: bool):
    """Every feature (and regression target) to mean 0, std 1 with the training split's statistics."""
    x0, y0 = parts[0]
    mx, sx = x0.mean(0), x0.std(0)
    sx = np.where(sx > 0, sx, 1.0)
    out = [((x - mx) / sx).astype(np.float32) for x, _ in parts]
    ys = [y for _, y in parts]
    if regression:
        my, sy = y0.mean(0), y0.std(0)
        sy = np.where(sy > 0, sy, 1.0)
        ys = [((y - my) / sy).astype(np.float32) for y in ys]
    return list(zip(out, ys))


def _keep_classes(pool, classes):
    x, y = pool
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([remap[int(v)] for v in y[keep]], dtype=np.int64)


def subset_masks(n_train: int, n_subsets: int, alpha: float, seed: int) -> np.ndarray:
    """[M, N] bool masks, each selecting exactly round(alpha * N) training examples."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    k = max(1, int(round(alpha * n_train)))
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_subsets, n_train), dtype=bool)
    for j in range(n_subsets):
        masks[j, rng.choice(n_train, size=k, replace=False)] = True
    return masks
