"""Stage 3: one shared curvature fit per (experiment, curvature options), before the attribute jobs.

Every method that fits (E)K-FAC curvature (if_kfac, if_ekfac, if_ensemble, dtda_if, the SOURCE family)
declares in its registry row which curvature it fits (kind, checkpoints: methods/registry.py CurvatureUse)
and which of its options change the fit (Option.curvature: the Fisher, its samples and seed, SOURCE's
segments); registry.curvature_fit turns those into one key. The workflow runs one fit_curvature job per
key and experiment (rules/attribute.smk), writing every full-data seed's fits to
results/{exp}/curvature/{key}/ (tda_core/layout.py), and the attribute job of every method with that key
takes the folder as input and only reads it (tda_core/curvature/store.py). The job calls the methods' own
fitting functions (influence.final_curvature, source.segment_curvature) with a cache rooted in that
folder, so the files carry exactly the keys, Fisher draws and seeds the methods would fit in their own
jobs: the scores are those of an in-process fit.

A fit that fails as a method would (too many segments for the saved checkpoints, fisher: expected on a
language model, out of memory) is left out and noted in fit.json: the methods that need it then fit it
in their own job, fail the same way, and show a failed row instead of a missing one.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .. import io
from ..api import Experiment
from ..errors import ArtifactError, ConfigError, TdaError
from ..methods import options as O
from ..methods.influence import final_curvature
from ..methods.registry import CurvatureUse
from ..methods.source import segment_plan, segment_curvature
from .context import build_context

log = logging.getLogger("tda")

MANIFEST = "fit.json"  # beside the fits: what was fitted, how long it took, what failed


def fit_options(fit: dict) -> tuple[CurvatureUse, dict]:
    """The curvature use and the full options (defaults filled) of a fit spec {"kind", "checkpoints",
    "options"} (registry.curvature_fit, without its key)."""
    try:
        use = CurvatureUse(fit["kind"], fit["checkpoints"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"a curvature fit needs kind (kfac|ekfac) and checkpoints (final|segments|segments_wavg), "
                          f"got {fit!r}") from None
    declared = {k: o for k, o in {**O.IF, **O.SOURCE}.items() if o.curvature}
    given = fit.get("options") or {}
    bad = O.problem(declared, {k: v for k, v in given.items() if k not in O.COMMON})
    if bad or set(given) & set(O.COMMON):
        raise ConfigError(f"curvature fit options {given!r}: only curvature options "
                          f"({', '.join(sorted(declared))}) with valid values")
    return use, {**{k: o.default for k, o in declared.items()}, **given, "cache": True}


def fit_shared_curvature(exp: Experiment, fit: dict, out_dir) -> dict:
    """Every full-data seed's fits of one curvature spec into out_dir ({internal key}.pt, as
    methods/influence.py seed_curvature names them); returns the manifest also written to out_dir/fit.json."""
    use, opts = fit_options(fit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(exp.cfg["seeds"]))
    ctx = build_context(exp, seeds, cache_dir=out_dir)  # the one writer of this folder
    failed, per_seed = {}, {}
    t0 = time.perf_counter()
    for seed in seeds:
        t_seed = time.perf_counter()
        try:
            if use.checkpoints == "final":
                final_curvature(ctx, seed, use.kind, opts)
            else:
                for seg in segment_plan(ctx.trajectory(seed).intervals, int(opts["n_segments"])):
                    segment_curvature(ctx, seed, seg, opts, fast=use.checkpoints == "segments_wavg")
        except ArtifactError:
            raise  # a missing or corrupted model file fails the job
        except (TdaError, torch.OutOfMemoryError, MemoryError) as e:
            failed[str(seed)] = f"{type(e).__name__}: {e}"
            log.error("curvature fit of seed %s failed (its methods will fit it themselves): %s", seed, e)
        per_seed[str(seed)] = time.perf_counter() - t_seed
        ctx.release(seed)
    manifest = {"config_hash": exp.hash, "kind": use.kind, "checkpoints": use.checkpoints,
                "options": fit.get("options") or {}, "seeds": seeds,
                "files": sorted(p.name for p in out_dir.glob("*.pt")), "failed": failed,
                "wall_time_s": time.perf_counter() - t0, "seed_wall_time_s": per_seed, "device": str(exp.device)}
    io.write_json(out_dir / MANIFEST, manifest)
    log.info("curvature %s at %s: %d files in %.1fs", use.kind, use.checkpoints, len(manifest["files"]),
             manifest["wall_time_s"])
    return manifest
