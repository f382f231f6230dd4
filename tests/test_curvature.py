"""K-FAC / EK-FAC against brute-force truth: per-example loops for the factors (token-sequence
Linear, Conv2d), dense Fisher / GGN matrices built with torch.func for the eigenvalues and the
damped inverse-vector products."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap

from tda_core.curvature import Curvature, filters, fit_curvature, fit_factors, kron_specs
from tda_core.gradients import param_slices, per_example_grads
from tda_core.tasks import ClassificationTask

TASK = ClassificationTask()


def _sampled_targets(model, params, x, seed, n_samples=1):
    """The targets fit_curvature draws: one task.sample_fisher_targets call on the repeated data."""
    xs = x.repeat(n_samples, *([1] * (x.ndim - 1)))
    call = lambda inp: functional_call(model, params, (inp,))  # noqa: E731
    return xs, TASK.sample_fisher_targets(call, xs, torch.Generator().manual_seed(seed))


def _dense_fisher(model, params, x, y):
    """(1/n) sum_n g_n g_n^T from an independent per-example autograd loop (float64)."""
    rows = []
    for i in range(len(x)):
        p = {k: v.detach().double().clone().requires_grad_(True) for k, v in params.items()}
        loss = F.cross_entropy(functional_call(model, p, (x[i : i + 1].double(),)), y[i : i + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(p.values()))]))
    G = torch.stack(rows)
    return G.T @ G / len(x)


def _linear_model(d_in=5, d_out=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, d_out))


def test_single_example_kfac_is_exact_and_ekfac_equals_kfac():
    # One example, one position: F = vec(s a^T) vec(s a^T)^T = (a a^T) (x) (s s^T) exactly.
    model = _linear_model()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(1, 5)
    kfac = fit_curvature(model, params, TASK, x, kind="kfac", seed=3)
    ekfac = fit_curvature(model, params, TASK, x, kind="ekfac", seed=3)
    xs, y = _sampled_targets(model, params, x, seed=3)
    dense = _dense_fisher(model, params, xs, y)
    # Eigenvalues of a rank-one matrix: one nonzero (= ||g||^2), the rest 0 (up to round-off).
    torch.testing.assert_close(ekfac.blocks[0].lam, kfac.blocks[0].lam, atol=1e-8 * dense.trace(), rtol=1e-6)
    torch.testing.assert_close(kfac.dense(), dense, atol=1e-8 * dense.abs().max(), rtol=1e-5)
    torch.testing.assert_close(ekfac.dense(), dense, atol=1e-8 * dense.abs().max(), rtol=1e-5)
    # And the damped inverse agrees with a dense solve.
    lam_d = 0.3
    V = torch.randn(3, dense.shape[0], dtype=torch.float64)
    ref = torch.linalg.solve(dense + lam_d * torch.eye(len(dense), dtype=torch.float64), V.T).T
    torch.testing.assert_close(ekfac.precondition(V, filters.damped_inverse(damping=lam_d)), ref, rtol=1e-5, atol=1e-6)  # float32 gradients


def test_ekfac_eigenvalues_are_the_diagonal_of_the_rotated_fisher_and_beat_kfac():
    model = _linear_model(6, 3, seed=1)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(40, 6) * torch.linspace(0.2, 2, 6)
    ekfac = fit_curvature(model, params, TASK, x, kind="ekfac", seed=0)
    kfac = fit_curvature(model, params, TASK, x, kind="kfac", seed=0)
    xs, y = _sampled_targets(model, params, x, seed=0)
    dense = _dense_fisher(model, params, xs, y)
    b = ekfac.blocks[0]
    # Flat layout: weight (row-major [out, in]) then bias; the matrix view appends bias as a column.
    Q = torch.kron(b.QS, b.QA)  # basis of vec([W | b]) in row-major order
    perm = _matrix_order(b.d_out, b.d_in)  # flat index of each matrix entry
    rotated = Q.T @ dense[perm][:, perm] @ Q
    torch.testing.assert_close(b.lam.reshape(-1), rotated.diagonal(), rtol=1e-6, atol=1e-10)
    err_ek = (ekfac.dense() - dense).norm()
    err_k = (kfac.dense() - dense).norm()
    assert err_ek <= err_k + 1e-12, (err_ek, err_k)
    # fisher="expected": the same identity against the exact GGN (expectation over all classes).
    expected = fit_curvature(model, params, TASK, x, kind="ekfac", fisher="expected")
    b = expected.blocks[0]
    Q = torch.kron(b.QS, b.QA)
    ggn = _dense_ggn(model, params, x)[perm][:, perm]
    torch.testing.assert_close(b.lam.reshape(-1), (Q.T @ ggn @ Q).diagonal(), rtol=1e-5, atol=1e-9)


def _matrix_order(d_out, d_in):
    """Flat-layout index of entry (o, i) of the [d_out, d_in] gradient matrix (last column = bias)."""
    n_w = d_out * (d_in - 1)
    idx = []
    for o in range(d_out):
        idx += [o * (d_in - 1) + i for i in range(d_in - 1)] + [n_w + o]
    return torch.tensor(idx)


class TokenNet(nn.Module):
    """Linear on a token sequence [B, T, d] (as timm's qkv / fc layers), then a head on the token mean."""

    def __init__(self, d=4, h=5, c=3):
        super().__init__()
        self.fc = nn.Linear(d, h)
        self.head = nn.Linear(h, c)
        self.norm = nn.LayerNorm(h)  # not Kronecker-factored: must get a diagonal block

    def forward(self, x):
        return self.head(self.norm(torch.tanh(self.fc(x))).mean(1))


def test_token_sequence_linear_factors_match_per_example_loops():
    torch.manual_seed(0)
    model = TokenNet()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(6, 7, 4), torch.randint(0, 3, (6,))
    spec = [s for s in kron_specs(model, params) if s.module == "fc"]
    fac = fit_factors(model, params, spec, TASK, x, y, chunk_size=4)
    A = torch.zeros(5, 5, dtype=torch.float64)
    S = torch.zeros(5, 5, dtype=torch.float64)
    grads = []
    for n in range(len(x)):
        out = F.linear(x[n : n + 1], params["fc.weight"], params["fc.bias"]).requires_grad_(True)
        logits = F.linear(F.layer_norm(torch.tanh(out), (5,), params["norm.weight"], params["norm.bias"]).mean(1),
                          params["head.weight"], params["head.bias"])
        (ds,) = torch.autograd.grad(F.cross_entropy(logits, y[n : n + 1]), out)
        a1 = torch.cat([x[n], torch.ones(7, 1)], 1).double()
        for t in range(7):
            A += torch.outer(a1[t], a1[t])
            S += torch.outer(ds[0, t].double(), ds[0, t].double())
        grads.append(ds[0].double().T @ a1)  # per-example gradient = sum over tokens of s a^T
    torch.testing.assert_close(fac.A["fc"], A / (6 * 7))
    torch.testing.assert_close(fac.S["fc"], S / 6)
    # The per-example gradient as the curvature code lays it out matches the sum over tokens.
    curv = fit_curvature(model, params, TASK, x, kind="ekfac")
    assert {type(b).__name__ for b in curv.blocks if "norm" in b.names[0]} == {"DiagBlock"}
    g = per_example_grads(model, params, lambda call, xb, yb: TASK.loss(call, xb, yb), x, y).double()
    kb = [b for b in curv.blocks if getattr(b, "module", None) == "fc"][0]
    torch.testing.assert_close(curv.as_matrix(kb, g), torch.stack(grads), rtol=1e-5, atol=1e-7)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, kernel_size=3, stride=2, padding=1)
        self.head = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_conv2d_factors_match_patch_loops():
    torch.manual_seed(1)
    model = ConvNet()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(5, 2, 6, 6), torch.randint(0, 4, (5,))
    specs = kron_specs(model, params)
    fac = fit_factors(model, params, specs, TASK, x, y, chunk_size=2)
    A = torch.zeros(2 * 9 + 1, 2 * 9 + 1, dtype=torch.float64)
    S = torch.zeros(3, 3, dtype=torch.float64)
    W, b = params["conv.weight"], params["conv.bias"]
    for n in range(len(x)):
        out = F.conv2d(x[n : n + 1], W, b, stride=2, padding=1).requires_grad_(True)
        logits = F.linear(torch.relu(out).flatten(1), params["head.weight"], params["head.bias"])
        (ds,) = torch.autograd.grad(F.cross_entropy(logits, y[n : n + 1]), out)
        xp = F.pad(x[n], (1, 1, 1, 1))
        G = torch.zeros(3, 19, dtype=torch.float64)
        for i in range(3):
            for j in range(3):
                patch = torch.cat([xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].reshape(-1), torch.ones(1)]).double()
                s = ds[0, :, i, j].double()
                A += torch.outer(patch, patch)
                S += torch.outer(s, s)
                G += torch.outer(s, patch)
        # the patch ordering (channel, kh, kw) is the weight's: G reproduces autograd's gradient
        gW, gb = torch.autograd.grad(F.cross_entropy(model(x[n : n + 1]), y[n : n + 1]),
                                     [model.conv.weight, model.conv.bias])
        torch.testing.assert_close(G[:, :-1].float(), gW.reshape(3, -1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(G[:, -1].float(), gb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fac.A["conv"], A / (5 * 9))
    torch.testing.assert_close(fac.S["conv"], S / 5)


def _dense_ggn(model, params, x):
    """Exact GGN of the mean cross-entropy: (1/n) sum_n J_n^T (diag p - p p^T) J_n (float64)."""
    p64 = {k: v.detach().double() for k, v in params.items()}
    names = list(p64)

    def logits(flat_params, xi):
        return functional_call(model, flat_params, (xi[None].double(),))[0]

    J = vmap(jacrev(logits), in_dims=(None, 0))(p64, x)  # dict of [n, C, *shape]
    J = torch.cat([J[k].reshape(len(x), J[k].shape[1], -1) for k in names], dim=2)  # [n, C, P]
    prob = torch.softmax(vmap(logits, in_dims=(None, 0))(p64, x), -1)
    H = torch.diag_embed(prob) - prob[:, :, None] * prob[:, None, :]
    return torch.einsum("ncp,ncd,ndq->pq", J, H, J) / len(x)


def test_ekfac_inverse_products_close_to_dense_damped_ggn_on_two_layer_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(64, 6)
    ggn = _dense_ggn(model, params, x)
    eye = torch.eye(len(ggn), dtype=torch.float64)
    # The same GGN without its cross-layer blocks: what any layer-wise method can reach at best.
    layer = torch.tensor([0] * 56 + [1] * 36)
    block_diag = torch.where(layer[:, None] == layer[None, :], ggn, torch.zeros_like(ggn))
    damping = 0.1 * ggn.trace().item() / len(ggn)
    curv = {k: fit_curvature(model, params, TASK, x, kind=k, seed=0, n_samples=200) for k in ("ekfac", "kfac")}
    # Test vectors: true-label per-example gradients (what IF preconditions) and random directions.
    y = torch.randint(0, 4, (64,))
    g = per_example_grads(model, params, lambda call, xb, yb: TASK.loss(call, xb, yb), x, y).double()
    V = torch.cat([g[:16], torch.randn(8, g.shape[1], dtype=torch.float64)])
    f = filters.damped_inverse(damping=damping)
    approx = {k: c.precondition(V, f) for k, c in curv.items()}
    approx["diag"] = V / (ggn.diagonal() + damping)
    err = {}
    for ref_name, ref_mat in (("full", ggn), ("blockdiag", block_diag)):
        exact = torch.linalg.solve(ref_mat + damping * eye, V.T).T
        for k, a in approx.items():
            err[f"{k}_vs_{ref_name}"] = round(((a - exact).norm() / exact.norm()).item(), 3)
    print("relative error of damped inverse-vector products vs dense GGN:", err)
    # Observed: EK-FAC 0.44 vs the full GGN (K-FAC 0.44, diagonal 0.80), of which the dropped
    # cross-layer blocks explain most: EK-FAC is within 0.15 of the block-diagonal GGN inverse
    # (K-FAC 0.15 too: EK-FAC is Frobenius-optimal for the matrix, not for its inverse).
    assert err["ekfac_vs_full"] < 0.5
    assert err["ekfac_vs_blockdiag"] < 0.2
    assert max(err["ekfac_vs_blockdiag"], err["kfac_vs_blockdiag"]) < 0.5 * err["diag_vs_blockdiag"]
    assert err["ekfac_vs_full"] < err["diag_vs_full"]


def test_curvature_roundtrips_through_disk(tmp_path):
    model = TokenNet()
    params = {k: v.detach() for k, v in model.named_parameters()}
    curv = fit_curvature(model, params, TASK, torch.randn(10, 3, 4), kind="ekfac")
    curv.save(tmp_path / "c.pt", "abc")
    again = Curvature.load(tmp_path / "c.pt", expect_hash="abc")
    V = torch.randn(2, curv.n_params)
    f = filters.damped_inverse()
    torch.testing.assert_close(again.precondition(V, f), curv.precondition(V, f), rtol=0, atol=0)
    assert param_slices(params) == again.slices
