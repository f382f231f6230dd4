"""Our EK-FAC influence and TRAK vs the reference libraries (kronfluence, traker): wall time ratios.

    python bench/bench_reference.py [--config workflow/config/config.yaml]
                                    [--experiments digits-mlp digits-vit digits-ddpm text-gpt]
                                    [--threads 1] [--repeats 2] [--proj-dim 256]

For each experiment (by default the MLP, the ViT, the DDPM UNet and the GPT-2, in one run), on the
full-data models under results/{exp}/models (trained here in a temporary results_dir if they are missing):
  EK-FAC: if_ekfac (fit + score, no cache) on seed 0  vs  if_ekfac_kronfluence (fit + score)
  TRAK:   trak over all R seeds                       vs  trak_traker over the same seeds
Same proj_dim (256) and damping heuristic; best of --repeats. Ratio = ours / reference (< 1: ours faster).
Where a reference method refuses the model or task (kronfluence and traker on the diffusion UNet), its
row reads n/a with the one-line reason the method raised; ours is still timed.
Two agreement columns. "Pearson": the two score matrices as the rows are run, so a fast but different
answer shows. They are not equal by design: if_ekfac adds the optimiser's weight decay to the curvature
and keeps LayerNorm / embedding / pos_embed gradients (diagonal curvature), kronfluence sees neither;
traker draws its own projection per model and rescales each model's (Phi^T Phi)^-1 (at k >= N, as on
text-gpt's 256 sequences, TRAK interpolates and two projections give unrelated scores). "Pearson at
equal inputs" (untimed, printed as 1 - r): EK-FAC = if_ekfac's formula restricted to kronfluence's
Kronecker-factored layers, no weight-decay shift, same Fisher labels (seed 0), vs kronfluence's scores;
TRAK = traker handed the suite's projection on seed 0 vs trak on seed 0 (as tests/test_reference.py).
Needs the optional extra: pip install 'tda-bench[reference]'.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import time
import warnings

import numpy as np
import torch


def _experiment(config: str, name: str, tmp: str):
    from tda_core.api import Experiment, load_experiment
    from tda_core.stages.train import train_full

    exp = load_experiment(config, name)
    if all(exp.model_path(r).exists() for r in range(exp.cfg["seeds"])):
        return exp
    cfg = copy.deepcopy(exp.cfg)
    cfg["results_dir"] = tmp  # never write into the real results/
    exp = Experiment(cfg)
    for r in range(cfg["seeds"]):
        print(f"  training {name} seed {r} (no saved model)", flush=True)
        train_full(exp, r, exp.model_path(r), {"mode": "none"})
    return exp


def _timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _ekfac_equal_inputs(ctx, ref_scores) -> float:
    """Pearson of kronfluence's scores with if_ekfac's formula restricted to kronfluence's inputs: only the
    Kronecker-factored (Linear / Conv1D / Conv2d) layers' coordinates, no weight-decay shift, the same
    Fisher labels (seed 0) and damping 0.1 x mean eigenvalue per layer (as tests/test_reference.py)."""
    from tda_core.curvature import KronBlock, filters, fit_curvature

    model, params = ctx.model(0), ctx.params(0)
    curv = fit_curvature(model, [params], ctx.task, ctx.train_x.to(ctx.device), kind="ekfac", seed=0,
                         chunk_size=ctx.chunk_size, y=ctx.train_y.to(ctx.device))
    covered = torch.zeros(curv.n_params, dtype=torch.float64, device=ctx.device)
    for b in curv.blocks:
        if isinstance(b, KronBlock):
            for name in (b.weight, b.bias):
                if name is not None:
                    covered[curv.slices[name]] = 1.0
    V = ctx.query_grads(0, params).double() * covered
    G = ctx.train_grads(0, params).double() * covered
    ours = -(curv.precondition(V, filters.damped_inverse(damping_rel=0.1)) @ G.T) / ctx.n_train
    return _pearson(ours.cpu().numpy(), ref_scores)


def _trak_equal_inputs(ctx, proj_dim: int) -> float:
    """Pearson of traker handed the suite's projection R (seed 0, one model: traker's per-model kernel
    rescaling would reweight an ensemble) with `trak` on that model."""
    from tda_core.methods.registry import get_method
    from tda_core.methods.trak_traker import our_projection, traker_scores

    n_params = sum(q.numel() for q in ctx.model(0).parameters())
    ours = get_method("trak")(proj_dim=proj_dim).score(ctx)
    theirs = traker_scores([(ctx.model(0), ctx.params(0))], ctx.train_x, ctx.train_y, ctx.query_x, ctx.query_y,
                           proj_dim, device=ctx.device, projector=our_projection(n_params, proj_dim),
                           task=ctx.task)
    return _pearson(ours, theirs)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.add_argument("--experiments", nargs="+", default=["digits-mlp", "digits-vit", "digits-ddpm", "text-gpt"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="best of N (the first run pays warm-up costs)")
    p.add_argument("--proj-dim", type=int, default=256)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("TRAK").setLevel(logging.WARNING)
    warnings.simplefilter("ignore", FutureWarning)

    from tda_core.stages.context import build_context
    from tda_core.methods.registry import get_method

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_reference_") as tmp:
        for name in args.experiments:
            exp = _experiment(args.config, name, tmp)
            seeds = list(range(exp.cfg["seeds"]))
            n_params = sum(q.numel() for q in exp.build_model(0).parameters())
            print(f"{name}: {n_params} parameters, N={exp.splits.n_train}, Q={len(exp.splits.query_y)}, "
                  f"R={len(seeds)}, device {exp.device}, {args.threads} thread(s)", flush=True)
            ctx = lambda s: build_context(exp, s)  # noqa: E731
            pairs = [
                ("EK-FAC IF (fit+score, seed 0)", get_method("if_ekfac")(cache=False), [0],
                 get_method("if_ekfac_kronfluence")(), [0], lambda b: _ekfac_equal_inputs(ctx([0]), b)),
                (f"TRAK (k={args.proj_dim}, {len(seeds)} seeds)", get_method("trak")(proj_dim=args.proj_dim), seeds,
                 get_method("trak_traker")(proj_dim=args.proj_dim), seeds,
                 lambda b: _trak_equal_inputs(ctx([0]), args.proj_dim)),
            ]
            for label, ours, s_ours, ref, s_ref, equal_inputs in pairs:
                t_ours, a = _timed(lambda: ours.score(ctx(s_ours)), args.repeats)
                try:
                    t_ref, b = _timed(lambda: ref.score(ctx(s_ref)), args.repeats)
                except Exception as e:  # noqa: BLE001 - a reference library that cannot run this model: say why
                    reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                    rows.append((name, label, t_ours, None, None, None, None, reason))
                    print(f"  {label:34s} ours {t_ours:7.2f}s  reference n/a ({reason})", flush=True)
                    continue
                ratio, corr, corr_eq = t_ours / t_ref, _pearson(a, b), equal_inputs(b)
                rows.append((name, label, t_ours, t_ref, ratio, corr, corr_eq, ""))
                print(f"  {label:34s} ours {t_ours:7.2f}s  reference {t_ref:7.2f}s  ratio {ratio:5.2f}"
                      f"  Pearson {corr:.4f}  at equal inputs 1 - {1 - corr_eq:.1e}", flush=True)
    print("\n| experiment | method | ours (s) | reference (s) | ratio ours/ref | Pearson | Pearson at equal inputs |")
    print("|---|---|---|---|---|---|---|")
    for name, label, t_ours, t_ref, ratio, corr, corr_eq, reason in rows:
        if t_ref is None:
            print(f"| {name} | {label} | {t_ours:.2f} | n/a: {reason} | n/a | n/a | n/a |")
        else:
            print(f"| {name} | {label} | {t_ours:.2f} | {t_ref:.2f} | {ratio:.2f} | {corr:.4f} | 1 - {1 - corr_eq:.1e} |")

if __name__ == "__main__":
    main()
