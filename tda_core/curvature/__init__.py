"""Curvature core shared by IF, SOURCE, truncated unrolling and d-TDA (docs/design.md, section Estimators).

API (all vectors in the flat parameter layout of tda_core.gradients, i.e. the order of
model.named_parameters(); every parameter is covered by exactly one block):

    from tda_core.curvature import fit_curvature, Curvature, CurvatureCache, filters
    curv = fit_curvature(model, params, task, x_train, kind="ekfac", seed=0, n_samples=1,
                         chunk_size=256, grad_scale=None, fisher="sampled", index=None)
        # index: int indices into x_train: fit on those examples only (a training stage's pool)
        # y: x_train's targets (language models: padded positions, IGNORE_INDEX, get no Fisher draw
        #   and no factor rows; other tasks ignore it), fit_curvature(..., y=y_train)
        # params: one dict name -> tensor, or a list of dicts whose statistics are averaged
        #   (SOURCE segments: A, S averaged, one eigendecomposition, lam re-fitted at each and averaged)
        # curvature of the MEAN training loss: true Fisher (= GGN for cross-entropy) with targets
        #   sampled from the model (task.sample_fisher_targets), seeded by `seed`
        # kind: "kfac" (lam = eS eA^T) or "ekfac" (lam re-fitted from rotated per-example grads)
        # fisher: "sampled" (n_samples targets per example) or "expected" (classification: every
        #   class weighted by its probability = the exact GGN expectation, C times the cost;
        #   regression; not language models: ConfigError)
        # grad_scale: flat [P] s; EK-FAC of diag(s) F diag(s) in F's Kronecker basis (Adam in SOURCE)
    curv = curv.shifted(weight_decay)          # H + wd I (or a flat diagonal [P], e.g. Adam)
    out = curv.precondition(V, filters.damped_inverse(damping_rel=0.1))   # [n, P] -> [n, P]
        # = f(H) V^T row by row, f applied to each block's eigenvalues
    filters.damped_inverse(damping=None, damping_rel=0.1)  1/(lam + d), d per block = rel x mean(lam)
    filters.source_response(c)                              (1 - exp(-c lam)) / lam  (-> c at 0)
    filters.propagator(c)                                   exp(-c lam)
    curv.save(path, config_hash) / Curvature.load(path, expect_hash)   (atomic, via tda_core.io)
    CurvatureCache(root, config_hash, shared=None).load_or_fit(key, lambda: fit_curvature(...))
        # {shared}/{key}.pt if there (read only: the experiment's fit_curvature job wrote it,
        # results/{exp}/curvature/{fit}/), else {root}/{key}.pt, else fit and save there; a method gets
        # ctx.cache, rooted in its own score directory (results/{exp}/scores/{method}/_cache/);
        # CurvatureCache(None) fits every time
    Method-level helpers (tda_core.methods.influence): seed_curvature(ctx, seed, kind, ckpt_indices,
    opts, pool=None) fits/caches per seed in ctx.cache (pool: the training examples it is fitted on, in
    the key); final_curvature(ctx, seed, kind, opts) (IF) and source.segment_curvature(ctx, seed, seg,
    opts, fast) (one SOURCE segment): what the methods and the shared fit job (stages/curvature.py) call;
    if_scores(ctx, seed, kind, opts) -> [Q, N] IF scores;
    tda_core.methods.source: segment_plan(trajectory.intervals, L), source_scores(ctx, seed, opts, fast) -> [Q, N].
    curv.dense()                                            [P, P] matrix (tests, small models)

Blocks: KronBlock per nn.Linear (inputs [B, d] or token sequences [B, T, d]; per-example gradient
= sum over tokens), transformers Conv1D (GPT-2; weight [in, out], `transposed`) and nn.Conv2d
(groups=1, zero padding; unfolded patches, KFC); DiagBlock (the Fisher diagonal) for every other
parameter: LayerNorm, embeddings (nn.Embedding: kept diagonal, as kronfluence leaves them out),
pos_embed / cls_token, biases of uncovered layers, and a weight shared by several modules (GPT-2's
tied token embedding / output head: one block, the diagonal of the summed gradient). Cross-layer
curvature is ignored (block-diagonal).
"""
from . import spectral as filters
from .blocks import Curvature, DiagBlock, KronBlock
from .ekfac import fit_curvature, sample_targets
from .kfac import fit_factors, kron_specs
from .store import CurvatureCache

__all__ = ["Curvature", "DiagBlock", "KronBlock", "filters", "fit_curvature", "fit_factors", "kron_specs",
           "sample_targets", "CurvatureCache"]
