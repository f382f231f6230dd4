"""Multi-stage training (scenario multi_stage: pretrain on the first half of the training set,
fine-tune on the second) and the stage-aware methods: SOURCE, TracIn, unrolled.

Independent truths: the exact unrolled derivative (replay of the recorded batches: stage-aware by
construction), the SOURCE recursion written here with dense exact Hessians per stage pool, a
direct evaluation of SOURCE's two terms from the curvature API on each stage's examples, and a
hand-written TracIn loop whose pools come from the n // 2 split, not from the model file.
"""
import numpy as np
import pytest
import torch
from conftest import float64_flat_setup, tiny_config
from scipy.stats import spearmanr

from tda_core import io
from tda_core.api import load_experiment
from tda_core.curvature import filters, fit_curvature
from tda_core.errors import TdaError
from tda_core.gradients import flatten, per_example_grads
from tda_core.stages.context import build_context
from tda_core.methods.registry import get_method
from tda_core.methods.source import segment_plan
from tda_core.stages.context import intervals_of
from tda_core.stages.attribute import STAGE_NOTE, attribute
from tda_core.stages.train import train_full
from tda_core.training import Run
from tda_core.training.trainer import run_schedule


def _two_stage(tmp_path, **train):
    cfg = tiny_config(scenario="multi_stage", train=train, seeds=1)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    return exp


def _switch(exp, meta):
    return int(round(exp.cfg["train"]["pretrain_fraction"] * meta["total_steps"]))


def test_checkpoints_fall_on_the_stage_switch_and_intervals_record_their_pool(tmp_path):
    # tiny: 120 examples, batch 32, 4 epochs -> 16 steps; 3 checkpoints alone would be 0, 5, 11, 16
    exp = _two_stage(tmp_path)
    meta = exp.load_model_meta(0)
    n, k = exp.splits.n_train, _switch(exp, meta)
    assert k == 8 and meta["checkpoint_steps"] == [0, 5, 8, 11, 16] and meta["stage_starts"] == [0, 8]
    assert [c["step"] for c in exp.load_checkpoints(0)] == meta["checkpoint_steps"]
    assert meta["pools"] == [list(range(n // 2)), list(range(n // 2, n))]
    assert [s["pool"] for s in meta["segments"]] == [0, 0, 1, 1]
    _, batches = run_schedule(exp.cfg, Run(0), n)
    for seg in meta["segments"]:  # every interval's batches come from its recorded pool, and cover it
        seen = np.unique(np.concatenate(batches[seg["start"]:seg["end"]]))
        assert seen.tolist() == meta["pools"][seg["pool"]]
    # a subset run: the pools are the mask's examples of each half
    mask = np.zeros(n, bool)
    mask[::3] = True
    plan, _ = run_schedule(exp.cfg, Run(0, mask), n)
    kept = np.flatnonzero(mask)
    assert [p.tolist() for p in plan.pools] == [kept[kept < n // 2].tolist(), kept[kept >= n // 2].tolist()]
    assert plan.stage_starts[1] in plan.checkpoint_steps


def test_single_stage_meta_has_one_pool_of_all_examples(tmp_path):
    cfg = tiny_config(seeds=1)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    meta = train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    assert meta["checkpoint_steps"] == [0, 5, 11, 16] and meta["stage_starts"] == [0]
    assert meta["pools"] == [list(range(exp.splits.n_train))] and {s["pool"] for s in meta["segments"]} == {0}


def test_segment_plan_splits_segments_across_stages():
    iv = lambda pool: {"steps": 5, "mean_lr": 0.1, "pool": pool}  # noqa: E731
    meta = {"segments": [iv(0)] * 4 + [iv(1)] * 2, "pools": [[0], [1]]}
    for L, want in [(2, [[1, 2, 3, 4], [5, 6]]), (3, [[1, 2], [3, 4], [5, 6]]), (4, [[1, 2], [3], [4], [5, 6]]),
                    (6, [[1], [2], [3], [4], [5], [6]])]:
        plan = segment_plan(intervals_of(meta, 2), L)
        assert [s["ckpts"] for s in plan] == want, L
        assert [s["stage"] for s in plan] == [0 if s["ckpts"][0] <= 4 else 1 for s in plan]
        assert [s["pool"].tolist() for s in plan] == [[s["stage"]] for s in plan]
    with pytest.raises(TdaError, match="n_segments=1 < the 2 training stages"):
        segment_plan(intervals_of(meta, 2), 1)
    # model files written before pools were recorded: one stage, as before
    old = {"segments": [{"steps": 5, "mean_lr": 0.1}] * 6}
    assert [s["ckpts"] for s in segment_plan(intervals_of(old, 2), 4)] == [[1, 2], [3, 4], [5], [6]]


def test_tracin_matches_a_hand_written_two_stage_loop(tmp_path):
    exp = _two_stage(tmp_path)  # SGD momentum 0.9
    meta = exp.load_model_meta(0)
    s, n, k = exp.splits, exp.splits.n_train, _switch(exp, meta)
    ckpts, model = exp.load_checkpoints(0), exp.build_model(0)
    lrs = np.asarray(meta["lrs"])
    expected = np.zeros((len(s.query_y), n))
    for c in range(1, len(ckpts)):
        a, b = ckpts[c - 1]["step"], ckpts[c]["step"]
        pool = np.arange(n // 2) if b <= k else np.arange(n // 2, n)
        eta = lrs[a:b].sum() / (1 - 0.9)
        p = ckpts[c]["params"]
        v = per_example_grads(model, p, exp.task.measure, s.query_x, s.query_y).double().numpy()
        g = per_example_grads(model, p, exp.task.attribution_loss, s.train_x, s.train_y).double().numpy()
        expected[:, pool] -= eta / len(pool) * v @ g[pool].T
    ours = get_method("tracin")().score(build_context(exp, [0]))
    assert np.abs(ours - expected).max() / np.abs(expected).max() < 1e-5


def test_source_gives_stage_one_examples_no_stage_two_response(tmp_path):
    """L = 2 (one segment per stage), expected Fisher (no sampling): SOURCE's scores equal the two
    terms built here from fit_curvature on each stage's own examples, so the stage-1 columns hold the
    stage-1 term only: the stage-2 response is exactly 0 there (and it would not be small)."""
    exp = _two_stage(tmp_path, momentum=0.0, weight_decay=0.01)
    meta = exp.load_model_meta(0)
    s, n, k = exp.splits, exp.splits.n_train, _switch(exp, meta)
    ckpts, model = exp.load_checkpoints(0), exp.build_model(0)
    lrs, wd = np.asarray(meta["lrs"]), 0.01
    scores = get_method("source")(n_segments=2, fisher="expected", cache=False).score(build_context(exp, [0]))

    def grads(i, x, y, f=exp.task.attribution_loss):
        return per_example_grads(model, ckpts[i]["params"], f, x, y).double()

    u = grads(-1, s.query_x, s.query_y, exp.task.measure)
    pools = {1: np.arange(n // 2), 2: np.arange(n // 2, n)}
    idx = {1: [i for i, c in enumerate(ckpts) if 0 < c["step"] <= k], 2: [i for i, c in enumerate(ckpts) if c["step"] > k]}
    c = {1: lrs[:k].sum(), 2: lrs[k:].sum()}
    terms, leak = {}, None
    for stage in (2, 1):
        pool = pools[stage]
        curv = fit_curvature(model, [ckpts[i]["params"] for i in idx[stage]], exp.task, s.train_x[pool],
                             fisher="expected").shifted(wd)
        r = curv.precondition(u, filters.source_response(c[stage]))
        g = sum(grads(i, s.train_x[pool], s.train_y[pool]) for i in idx[stage]) / len(idx[stage])
        terms[stage] = (-(r @ g.T) / len(pool)).numpy()
        if stage == 2:  # what a stage-unaware response would give the stage-1 examples
            other = pools[1]
            g1 = sum(grads(i, s.train_x[other], s.train_y[other]) for i in idx[2]) / len(idx[2])
            leak = (-(r @ g1.T) / len(pool)).numpy()
        u = curv.precondition(u, filters.propagator(c[stage]))
    scale = np.abs(scores).max()
    assert np.abs(scores[:, pools[1]] - terms[1]).max() < 1e-5 * scale
    assert np.abs(scores[:, pools[2]] - terms[2]).max() < 1e-5 * scale
    assert np.abs(leak).max() > 0.1 * np.abs(terms[1]).max()  # the test has teeth
    print(f"stage-1 columns: |SOURCE - stage-1 term| max {np.abs(scores[:, pools[1]] - terms[1]).max():.1e}, "
          f"stage-2 response a stage-unaware SOURCE would add there: max {np.abs(leak).max():.3e} "
          f"(stage-1 term max {np.abs(terms[1]).max():.3e})")


def _dense_source(exp, hessian_on, segments, pools):
    """SOURCE's recursion with dense matrices: hessian_on(params, pool) -> [P, P] of the mean loss over
    `pool` (+ wd); segments: lists of checkpoint indices; pools: per segment, index array."""
    s, model = exp.splits, exp.build_model(0)
    ckpts, meta = exp.load_checkpoints(0), exp.load_model_meta(0)
    lrs = np.asarray(meta["lrs"])
    grads = lambda i: per_example_grads(model, ckpts[i]["params"], exp.task.loss, s.train_x,  # noqa: E731
                                        s.train_y).double().numpy()
    u = per_example_grads(model, ckpts[-1]["params"], exp.task.measure, s.query_x, s.query_y).double().numpy()
    total = np.zeros((len(s.query_y), s.n_train))
    for idx, pool in zip(reversed(segments), reversed(pools)):
        c = lrs[ckpts[idx[0] - 1]["step"]:ckpts[idx[-1]]["step"]].sum()
        lam, Q = np.linalg.eigh(np.mean([hessian_on(ckpts[i]["params"], pool) for i in idx], 0))
        safe = np.where(np.abs(c * lam) < 1e-12, 1.0, lam)
        response = np.where(np.abs(c * lam) < 1e-12, c, -np.expm1(-c * lam) / safe)
        g = np.mean([grads(i) for i in idx], 0)[pool]
        total[:, pool] -= ((u @ Q) * response) @ Q.T @ g.T / len(pool)
        u = ((u @ Q) * np.exp(-c * lam)) @ Q.T
    return total


def test_two_stage_source_with_many_segments_approaches_unrolled(tmp_path):
    """Two-stage full-batch GD (each step: the whole stage pool) on the tiny tanh MLP of
    test_unrolled.py's single-stage test. Stage-aware SOURCE (exact Hessian per stage pool, and
    `source` with EK-FAC) against the exact unrolled derivative, and the stage-unaware recursion
    (every segment on all N examples, the old behaviour) for comparison."""
    from torch.func import functional_call, hessian, jacrev

    n, wd = 100, 1e-3
    train = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": wd, "batch_size": n, "epochs": 60,
             "n_checkpoints": 12, "pretrain_fraction": 0.5}
    cfg = tiny_config(scenario="multi_stage", dataset={"n_train": n, "n_query": 10},
                      model={"hidden": [8], "activation": "tanh"}, train=train, seeds=1)
    cfg["results_dir"] = str(tmp_path)
    exp = load_experiment(cfg, "tiny")
    meta = train_full(exp, 0, exp.model_path(0), {"mode": "none"})
    _, batches = run_schedule(exp.cfg, Run(0), n)
    assert {len(b) for b in batches} == {n // 2} and meta["stage_starts"] == [0, 30]  # full-batch per stage
    ctx = build_context(exp, [0])
    unrolled = get_method("unrolled")(dtype="float64").score(ctx).astype(np.float64)

    model, x, y, unflat = float64_flat_setup(exp)

    def exact_hessian(params, pool):  # the objective of the stage: mean loss over its pool + coupled L2
        xp, yp = x[torch.as_tensor(pool)], y[torch.as_tensor(pool)]
        f = lambda v: exp.task.loss(lambda inp: functional_call(model, unflat(v), (inp,)), xp, yp).mean() \
            + 0.5 * wd * v @ v  # noqa: E731
        return hessian(f)(flatten({k: p.double() for k, p in params.items()})).numpy()

    def exact_ggn(params, pool):
        xp = x[torch.as_tensor(pool)]
        v = flatten({k: p.double() for k, p in params.items()})
        jac = jacrev(lambda w: functional_call(model, unflat(w), (xp,)))(v)  # [N_l, C, P]
        p = torch.softmax(functional_call(model, unflat(v), (xp,)), -1)
        h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        return (torch.einsum("ncp,ncd,ndq->pq", jac, h_out, jac) / len(pool)).numpy() + wd * np.eye(len(v))

    stage_pools = [np.arange(n // 2), np.arange(n // 2, n)]
    every = np.arange(n)

    def groups(L):  # L/2 segments per stage, each stage's 6 checkpoint intervals split evenly
        return [list(g) for stage in ([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
                for g in np.array_split(stage, L // 2)]

    pearson = lambda a: float(np.corrcoef(a.ravel(), unrolled.ravel())[0, 1])  # noqa: E731
    spearman = lambda a: float(spearmanr(a.ravel(), unrolled.ravel())[0])  # noqa: E731
    rows = {}
    for L in (2, 4, 12):
        segs = groups(L)
        pools = [stage_pools[0] if g[-1] <= 6 else stage_pools[1] for g in segs]
        aware = _dense_source(exp, exact_hessian, segs, pools)
        unaware = _dense_source(exp, exact_hessian, segs, [every] * len(segs))
        ours = get_method("source")(n_segments=L, n_fisher_samples=8, cache=False).score(ctx)
        rows[L] = [(pearson(a), spearman(a)) for a in (aware, unaware, ours)]
        print(f"L={L:2d}: Pearson/Spearman with unrolled  exact-Hessian stage-aware {rows[L][0][0]:.4f}/"
              f"{rows[L][0][1]:.4f}  stage-unaware {rows[L][1][0]:.4f}/{rows[L][1][1]:.4f}  "
              f"`source` (EK-FAC) {rows[L][2][0]:.4f}/{rows[L][2][1]:.4f}")
    # L = 12: the GGN recursion (what EK-FAC approximates) and `source` on the model file without its
    # pools (the stage-unaware code path of model files written before pools were recorded)
    segs = groups(12)
    pools = [stage_pools[0] if g[-1] <= 6 else stage_pools[1] for g in segs]
    ggn = pearson(_dense_source(exp, exact_ggn, segs, pools))
    meta_no_pools = {k: v for k, v in meta.items() if k != "pools"}
    load_model_file = exp.load_model_file
    exp.load_model_file = lambda seed: (load_model_file(seed)[0], meta_no_pools)
    old = get_method("source")(n_segments=12, n_fisher_samples=8, cache=False).score(build_context(exp, [0]))
    old = (pearson(old), spearman(old))
    print(f"L=12: GGN stage-aware {ggn:.4f}; `source` stage-unaware (no pools) {old[0]:.4f}/{old[1]:.4f}")
    # the single-stage test's bar: exact-Hessian recursion > 0.995 at L = 12, `source` > 0.9 and near GGN
    assert rows[12][0][0] > 0.995 and rows[2][0][0] <= rows[12][0][0] + 1e-3
    for L, ((aware, _), (unaware, _), (ours, _)) in rows.items():
        assert aware > unaware + 0.01, (L, aware, unaware)
        assert ours > 0.9 and abs(ours - ggn) < 0.05, (L, ours, ggn)
    assert rows[12][2][0] > old[0] and rows[12][2][1] > old[1], (rows[12][2], old)  # small here: EK-FAC caps it


def test_sidecar_notes_methods_that_are_not_stage_aware(tmp_path):
    exp = _two_stage(tmp_path)
    for method, noted in [("grad_dot", True), ("if_ekfac", True), ("tracin", False), ("source", False)]:
        meta = attribute(exp, method, "0", {"n_segments": 2} if method == "source" else {},
                         tmp_path / f"{method}.json", {"mode": "none"})
        assert meta["status"] == "ok", meta
        assert io.read_json(tmp_path / f"{method}.json").get("note") == (STAGE_NOTE if noted else None), method
    assert get_method("dtda_source").stage_aware and get_method("dtda_unrolled").stage_aware
    assert not get_method("dtda_if").stage_aware and not get_method("trak").stage_aware
    # single-stage experiments: no note
    cfg = tiny_config(seeds=1)
    cfg["results_dir"] = str(tmp_path / "single")
    single = load_experiment(cfg, "tiny")
    train_full(single, 0, single.model_path(0), {"mode": "none"})
    assert "note" not in attribute(single, "grad_dot", "0", {}, tmp_path / "s.json", {"mode": "none"})
    assert "note" not in io.read_json(tmp_path / "s.json")
