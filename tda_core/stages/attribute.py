"""Stage 3: run one attribution method for one seed (or the seed ensemble); save scores + sidecar.

The workflow runs every seed and target of a (experiment, method) in one job (`attribute_method`):
a job's fixed cost (importing torch and torch.func's lazy imports, starting W&B: ~7 s on a laptop)
is larger than most small attributions.

A method that cannot run (refused for model size, out of memory) still writes its sidecar with
status "failed" and the reason, so the leaderboard shows a failed row instead of a missing one.

Sidecar keys: config_hash, method, options, seeds, n_params, device, status ("ok" | "failed"),
target, [query_index], [init_seeds] (randomized), [reason] (failed), cost (time/memory, CostMeter),
and [note]: a caveat to show beside the method's row. On a multi-stage experiment (scenario
multi_stage) a method that is not stage-aware (Method.stage_aware False: IF variants, grad_dot, grad_cos, trak, random, ...)
gets note = STAGE_NOTE: it ignores which examples each training stage saw.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..api import Experiment
from ..errors import ArtifactError, TdaError
from ..methods.registry import get_method
from ..targets import DEFAULT_SELF_EXAMPLES, RANDOMIZED_SEED_OFFSET, score_stem, target_context
from ..tracking import tracked_run
from .common import CostMeter
from .context import build_context, method_cache_dir, shared_curvature_dir
from .curvature import MANIFEST

log = logging.getLogger("tda")

STAGE_NOTE = "not stage-aware: uses all N training examples at the final model"


def attribute(exp: Experiment, method_name: str, seed: str, options: dict, out_json, tracking: dict,
              target: str = "query", max_self: int | None = DEFAULT_SELF_EXAMPLES) -> dict:
    method = get_method(method_name)(**options)
    seeds = list(range(exp.cfg["seeds"])) if seed == "all" else [int(seed)]
    # what the method sees: the narrow records (methods/context.py), retargeted (val / train_self:
    # other queries, measurement = loss; randomized: re-initialised params), its curvature read from the
    # experiment's shared fit (the fit_curvature job's folder) or fitted and cached in its own score directory
    ctx = build_context(exp, seeds, cache_dir=method_cache_dir(exp, method_name, target),
                        shared_dir=shared_curvature_dir(exp, method_name, options, target))
    ctx, query_index = target_context(ctx, target, val=(exp.splits.val_x, exp.splits.val_y), max_self=max_self)
    n_params = sum(v.numel() for v in exp.build_model(0).parameters())
    meta = {"config_hash": exp.hash, "method": method_name, "options": options, "seeds": seeds,
            "n_params": n_params, "device": str(exp.device), "status": "ok", "target": target}
    if query_index is not None:
        meta["query_index"] = query_index.tolist()
    if target == "randomized":  # the seeds of the re-initialised models that replace the checkpoints
        meta["init_seeds"] = [s + RANDOMIZED_SEED_OFFSET for s in seeds]
    if exp.spec.scenario == "multi_stage" and not method.stage_aware:
        meta["note"] = STAGE_NOTE
    with tracked_run(tracking, exp.cfg["results_dir"], exp.name, "attribute",
                     f"{exp.name}/{method_name}/{score_stem(target, seed)}",
                     {**exp.cfg, "method": method_name, "target": target, **options}) as run:
        try:
            if method.max_params is not None and n_params > method.max_params:
                raise TdaError(f"{method_name} is for small models only: {n_params} parameters > "
                               f"{method.max_params} (set method_options.{method_name}.max_params to override)")
            with CostMeter() as cost:
                scores = _as_scores(method_name, method.score(ctx))
            expected, axes = (ctx.n_query, ctx.n_train), "[Q, N]"
            if method.per_seed_samples:  # [R, Q, N]: seed r's scores from its own model (methods/context.py)
                expected, axes = (len(seeds), *expected), "[R, Q, N]"
            if scores.shape != expected:
                raise TdaError(f"{method_name}.score returned an array of shape {list(scores.shape)}; expected "
                               f"{axes} = {list(expected)} (queries x training examples, methods/context.py)")
            if not np.isfinite(scores).all():
                raise TdaError(f"{method_name} produced non-finite scores")
            meta.update(cost.as_dict())
            meta.update(_shared_fit_cost(ctx, seeds, meta["wall_time_s"]))
            io.save_npy(exp.scores_path(method_name, seed, target), scores)
        except ArtifactError:
            raise  # a missing/corrupted input or an unwritable output fails the job; it is no method result
        except (TdaError, torch.OutOfMemoryError, MemoryError) as e:
            meta.update(status="failed", reason=f"{type(e).__name__}: {e}")
            log.error("%s failed on %s (seed %s): %s", method_name, exp.name, seed, e)
        run.summary_update({k: v for k, v in meta.items() if isinstance(v, (int, float, str))})
    io.write_json(out_json, meta)
    return meta


def _shared_fit_cost(ctx, seeds: list[int], score_s: float) -> dict:
    """The method's cost as if run alone: a curvature it read from the shared fit (fit_curvature job) was
    fitted outside this timer, so that fit's time for these seeds (its manifest) is added to wall_time_s;
    the board's cost column then means the same whether or not another method shares the fit."""
    reads, shared = ctx.cache.shared_reads, ctx.cache.shared
    if not reads or shared is None:
        return {}
    try:
        per_seed = io.read_json(Path(shared) / MANIFEST).get("seed_wall_time_s") or {}
    except ArtifactError:
        return {}
    fit_s = sum(float(per_seed.get(str(s), 0.0)) for s in seeds if any(f"_seed{s}_" in k for k in reads))
    return {"wall_time_s": score_s + fit_s, "score_wall_time_s": score_s, "shared_fit_wall_time_s": fit_s}


def _as_scores(method_name: str, returned) -> np.ndarray:
    """A method's return value as a float32 array; TdaError (one line, a failed row) if it is none."""
    if isinstance(returned, torch.Tensor):
        returned = returned.detach().cpu()
    try:
        return np.asarray(returned, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TdaError(f"{method_name}.score returned {type(returned).__name__}, not an array of scores "
                       f"({' '.join(str(e).split())[:120]})") from None


def attribute_method(exp: Experiment, method_name: str, seeds: list[str], targets: list[str], options: dict,
                     tracking: dict, max_self: int | None = DEFAULT_SELF_EXAMPLES) -> list[dict]:
    """Every (target, seed) of one method; each sidecar lands beside its scores
    (results/{exp}/scores/{method}/{stem}.json). Returns the sidecars."""
    metas = []
    for target in targets:
        for seed in seeds:
            out = exp.scores_path(method_name, seed, target).with_suffix(".json")
            meta = attribute(exp, method_name, seed, options, out, tracking, target=target, max_self=max_self)
            log.info("%s seed %s (%s): %s", method_name, seed, target, meta["status"])
            metas.append(meta)
    return metas
