"""K-FAC / EK-FAC on a tiny transformers GPT-2 (Conv1D projections, embeddings, tied head, padding)
against brute force: per-example gradients from an independent autograd loop (float64) give the
exact Fisher F = mean_n g_n g_n^T at the same sampled next tokens."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from tda_core.curvature import DiagBlock, KronBlock, fit_curvature
from tda_core.errors import ConfigError
from tda_core.models.gpt import build_gpt2
from tda_core.tasks import IGNORE_INDEX, LanguageModelTask

VOCAB, CONTEXT = 12, 6
TASK = LanguageModelTask()
WTE, HEAD = "lm.transformer.wte.weight", "lm.lm_head.weight"


def _gpt(tied=True, seed=0):
    torch.manual_seed(seed)
    model = build_gpt2({"n_layer": 1, "n_head": 2, "n_embd": 8, "n_positions": CONTEXT,
                        "tie_word_embeddings": tied}, (CONTEXT,), VOCAB).double()
    with torch.no_grad():  # larger than GPT-2's 0.02 init, so that every factor is well away from 0
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, {k: v.detach() for k, v in model.named_parameters()}


def _sequences(lengths, width=CONTEXT, seed=1):
    """Right-padded token ids [N, width] and next-token targets (IGNORE_INDEX past each length);
    padded inputs are random tokens, so any leak of padded positions into a factor shows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (len(lengths), width), generator=g)
    y = torch.randint(0, VOCAB, (len(lengths), width), generator=g)
    for n, length in enumerate(lengths):
        y[n, length:] = IGNORE_INDEX
    return x, y


def _sampled_targets(model, params, x, y, seed, n_samples=1):
    """The targets fit_curvature draws: one task.sample_fisher_targets call on the repeated data."""
    xs, ys = x.repeat(n_samples, 1), y.repeat(n_samples, 1)
    call = lambda inp: functional_call(model, params, (inp,))  # noqa: E731
    return xs, TASK.sample_fisher_targets(call, xs, torch.Generator().manual_seed(seed), y=ys)


def _brute_fisher(model, params, x, t):
    """(1/n) sum_n g_n g_n^T, g_n = gradient of sequence n's mean token cross-entropy (torch's own
    ignore_index masking), one autograd call per sequence; flat layout = named_parameters order."""
    rows = []
    for n in range(len(x)):
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        logits = functional_call(model, p, (x[n : n + 1],))
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), t[n].reshape(-1), ignore_index=IGNORE_INDEX)
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(p.values()))]))
    G = torch.stack(rows)
    return G.T @ G / len(x)


def _block_index(curv, b):
    """Flat indices of a Kronecker block's gradient-matrix entries (o, i), row-major, bias last column:
    built from the parameters' stored layouts (Conv1D weight [in, out], nn.Linear [out, in])."""
    w = torch.arange(curv.slices[b.weight].start, curv.slices[b.weight].stop)
    d_w = b.d_in - (1 if b.bias else 0)
    W = w.reshape(d_w, b.d_out).T if b.transposed else w.reshape(b.d_out, d_w)
    if b.bias:
        W = torch.cat([W, torch.arange(curv.slices[b.bias].start, curv.slices[b.bias].stop)[:, None]], 1)
    return W.reshape(-1)


@pytest.mark.parametrize("tied", [True, False])
def test_kfac_is_exact_for_one_real_position_behind_padding(tied):
    # One sequence, one real position: F = vec(s a^T) vec(s a^T)^T = (a a^T) (x) (s s^T) exactly, for
    # every Kronecker block, but only if the five padded positions' activations stay out of A.
    model, params = _gpt(tied)
    x, y = _sequences([1])
    xs, t = _sampled_targets(model, params, x, y, seed=3)
    dense = _brute_fisher(model, params, xs, t)
    scale = dense.abs().max()
    for kind in ("kfac", "ekfac"):
        curv = fit_curvature(model, params, TASK, x, y=y, kind=kind, seed=3)
        approx = curv.dense()
        kron = [b for b in curv.blocks if isinstance(b, KronBlock)]
        assert len(kron) == (4 if tied else 5)  # c_attn, attn c_proj, c_fc, mlp c_proj (+ untied head)
        assert all(b.transposed == (b.module != "lm.lm_head") for b in kron)
        for b in curv.blocks:
            if isinstance(b, KronBlock):
                idx = _block_index(curv, b)
                torch.testing.assert_close(approx[idx][:, idx], dense[idx][:, idx], rtol=1e-7, atol=1e-10 * scale)
            else:
                s = curv.slices[b.name]
                torch.testing.assert_close(approx[s, s].diagonal(), dense[s, s].diagonal(), rtol=1e-9, atol=1e-14)


def test_ekfac_eigenvalues_are_the_rotated_fisher_diagonal_on_padded_sequences():
    # EK-FAC's refit: lam = diag(Q^T F Q) in each Kronecker block's basis Q = Q_S (x) Q_A, and the
    # Fisher diagonal for the other parameters; F from the brute-force loop at the same targets
    # (two samples per sequence, sequences of different lengths).
    model, params = _gpt()
    x, y = _sequences([6, 2, 5, 3, 4, 1, 6, 3, 2, 5])
    curv = fit_curvature(model, params, TASK, x, y=y, kind="ekfac", seed=7, n_samples=2)
    xs, t = _sampled_targets(model, params, x, y, seed=7, n_samples=2)
    assert ((t == IGNORE_INDEX) == (y.repeat(2, 1) == IGNORE_INDEX)).all()  # no draw at a padded position
    dense = _brute_fisher(model, params, xs, t)
    for b in curv.blocks:
        if isinstance(b, KronBlock):
            idx = _block_index(curv, b)
            Q = torch.kron(b.QS, b.QA)
            expected = (Q.T @ dense[idx][:, idx] @ Q).diagonal()
            torch.testing.assert_close(b.lam.reshape(-1), expected, rtol=1e-7, atol=1e-12 * dense.abs().max())
        else:
            s = curv.slices[b.name]
            torch.testing.assert_close(b.lam, dense[s, s].diagonal(), rtol=1e-7, atol=1e-14)
    # the fitted EK-FAC is closer to F (Frobenius, within the blocks) than K-FAC
    kfac = fit_curvature(model, params, TASK, x, y=y, kind="kfac", seed=7, n_samples=2)
    in_blocks = torch.zeros_like(dense, dtype=torch.bool)
    for b in curv.blocks:
        idx = _block_index(curv, b) if isinstance(b, KronBlock) else torch.arange(curv.n_params)[curv.slices[b.name]]
        in_blocks[idx[:, None], idx[None, :]] = True
    err = {k: ((c.dense() - dense) * in_blocks).norm() / (dense * in_blocks).norm() for k, c in
           (("ekfac", curv), ("kfac", kfac))}
    assert err["ekfac"] < err["kfac"], err


class _FixedTargets(LanguageModelTask):
    """Hands out given Fisher targets (so that two fits see the same draws at the real positions)."""

    def __init__(self, targets):
        super().__init__()
        self.targets = targets

    def sample_fisher_targets(self, call, x, generator, y=None):
        return self.targets[: len(x), : x.shape[1]]


def test_padding_changes_no_factor(monkeypatch):
    # The same sequences (lengths 1..4) in a [N, 4] batch and right-padded to [N, 6] with random
    # padding tokens: identical K-FAC / EK-FAC matrices (and factors: A, S through the K-FAC matrix).
    model, params = _gpt(seed=2)
    lengths = [4, 1, 3, 2, 4, 3]
    x6, y6 = _sequences(lengths, width=6, seed=5)
    x4, y4 = x6[:, :4], y6[:, :4]
    targets = torch.randint(0, VOCAB, y6.shape, generator=torch.Generator().manual_seed(9))
    targets = torch.where(y6 == IGNORE_INDEX, y6, targets)
    assert (x6[:, 4:] != x6[:, :1]).any()  # padding tokens that differ from the real ones
    for kind in ("kfac", "ekfac"):
        short = fit_curvature(model, params, _FixedTargets(targets), x4, y=y4, kind=kind).dense()
        padded = fit_curvature(model, params, _FixedTargets(targets), x6, y=y6, kind=kind).dense()
        torch.testing.assert_close(padded, short, rtol=1e-9, atol=1e-12 * short.abs().max())
    # the test can fail: without the mask in A (padded positions' activations counted) it differs
    monkeypatch.setattr("tda_core.curvature.kfac.position_mask", lambda task, targets: None)
    unmasked = fit_curvature(model, params, _FixedTargets(targets), x6, y=y6, kind="kfac").dense()
    assert not torch.allclose(unmasked, short, rtol=1e-3)


@pytest.mark.parametrize("tied", [True, False])
def test_tied_embedding_is_one_diagonal_block(tied):
    model, params = _gpt(tied)
    x, y = _sequences([6, 3, 4])
    curv = fit_curvature(model, params, TASK, x, y=y, kind="ekfac")
    curv.check_coverage()  # every parameter in exactly one block
    owners = [b for b in curv.blocks if WTE in b.names]
    assert len(owners) == 1 and isinstance(owners[0], DiagBlock)
    assert (HEAD in params) == (not tied)
    head = [b for b in curv.blocks if HEAD in b.names]
    if tied:
        # the shared tensor's diagonal is the Fisher diagonal of the summed gradient (embedding + head
        # uses), checked against the brute-force F in the refit test; here: both uses contribute.
        assert head == [] and not any(getattr(b, "module", "") == "lm.lm_head" for b in curv.blocks)
    else:
        assert len(head) == 1 and isinstance(head[0], KronBlock) and (head[0].d_out, head[0].d_in) == (VOCAB, 8)


def test_tied_diagonal_carries_both_uses():
    # Fisher diagonal of the tied weight vs the two parts alone (gradient through the input embedding
    # only / through the head only): it is the diagonal of the SUM, neither part.
    model, params = _gpt(True)
    x, y = _sequences([5, 6, 2, 4])
    curv = fit_curvature(model, params, TASK, x, y=y, kind="ekfac", seed=4)
    _, t = _sampled_targets(model, params, x, y, seed=4)
    lam = next(b for b in curv.blocks if WTE in b.names).lam
    wte = params[WTE]
    parts = {"sum": [], "embedding": [], "head": []}
    for n in range(len(x)):
        for part in parts:
            e = wte.clone().requires_grad_(True)
            emb = e if part != "head" else wte
            head = e if part != "embedding" else wte
            h = model.lm.transformer(inputs_embeds=F.embedding(x[n : n + 1], emb), use_cache=False).last_hidden_state
            loss = F.cross_entropy((h @ head.T).reshape(-1, VOCAB), t[n], ignore_index=IGNORE_INDEX)
            parts[part].append(torch.autograd.grad(loss, e)[0].reshape(-1))
    diag = {k: torch.stack(v).pow(2).mean(0) for k, v in parts.items()}
    torch.testing.assert_close(lam, diag["sum"], rtol=1e-7, atol=1e-14)
    assert not torch.allclose(lam, diag["embedding"]) and not torch.allclose(lam, diag["head"])


def test_expected_fisher_is_refused_for_language_models():
    model, params = _gpt()
    x, y = _sequences([3, 4])
    with pytest.raises(ConfigError, match="fisher: expected"):
        fit_curvature(model, params, TASK, x, y=y, fisher="expected")
