"""The recent methods on a tiny transformers GPT-2 (Conv1D layers, token ids [B, T] int64, logits [B, T, V]):
LoGra's hooked features equal the Kronecker projection of the torch.func per-example gradients of the
real GPT-2 blocks, and trackstar / logra / datainf / loss_covariance give finite [Q, N] scores with a
next-token loss that knows nothing of classification labels."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tda_core.methods.context import AttributionContext, Checkpoint, Trajectory
from tda_core.methods.logra import logra_features, logra_layers, logra_projections
from tda_core.methods.registry import get_method
from tda_core.training.optim import Adam

transformers = pytest.importorskip("transformers")

from test_logra import _kron_projected_full_grads  # noqa: E402


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = transformers.GPT2Config(vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
        self.gpt = transformers.GPT2LMHeadModel(cfg)

    def forward(self, x):
        return self.gpt(input_ids=x).logits


class NextToken:
    """Mean next-token cross-entropy per sequence (y unused): a language-model task's shape."""

    def attribution_loss(self, call, x, y):
        logits = call(x)[:, :-1]
        return F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none").mean(1)

    def loss(self, call, x, y, aux=None):
        return self.attribution_loss(call, x, y)

    measure = attribution_loss


def _build(seed):
    torch.manual_seed(seed)
    return TinyLM().eval()


def _tokens(n, seed):
    return torch.randint(0, 32, (n, 6), generator=torch.Generator().manual_seed(seed))


def test_logra_on_gpt2_equals_kronecker_projection_of_torch_func_gradients():
    model = _build(0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    layers = logra_layers(model, params)
    # the Conv1D layers of the block; the tied lm_head (weight = wte) and the embeddings are left out
    assert [l.module.rsplit(".", 2)[-2:] for l in layers] == [["attn", "c_attn"], ["attn", "c_proj"],
                                                              ["mlp", "c_fc"], ["mlp", "c_proj"]]
    assert all(l.transposed for l in layers)
    projections = logra_projections(layers, 8, seed=0, device="cpu")
    x = _tokens(5, 1)
    ours = logra_features(model, params, layers, projections, NextToken().attribution_loss, x, x, chunk_size=2)
    truth = _kron_projected_full_grads(model, params, layers, projections, NextToken().attribution_loss, x, x)
    err = float((ours.double() - truth).abs().max() / truth.abs().max())
    print(f"GPT-2 Conv1D: max relative difference {err:.1e}")
    assert err < 1e-5  # observed 1.7e-7


def test_recent_methods_score_a_language_model():
    params = {k: v.detach() for k, v in _build(0).named_parameters()}
    gen = torch.Generator().manual_seed(0)
    state = {"exp_avg": {k: torch.zeros_like(v) for k, v in params.items()},
             "exp_avg_sq": {k: 1e-4 * torch.rand(v.shape, generator=gen) for k, v in params.items()},
             "step": torch.tensor(50.0)}
    traj = Trajectory(0, (Checkpoint(50, params, state),), optimizer=Adam())
    x, xq = _tokens(12, 2), _tokens(3, 3)
    ctx = AttributionContext(task=NextToken(), train_x=x, train_y=torch.zeros(12, dtype=torch.long), query_x=xq,
                             query_y=torch.zeros(3, dtype=torch.long), seeds=(0,), build_model=_build,
                             load_trajectory=lambda seed: traj, chunk_size=4)
    options = {"trackstar": {"proj_dim": 64}, "logra": {"proj_dim": 8}, "datainf": {},
               "loss_covariance": {"n_samples": 8, "burn_in": 2, "thin": 1, "batch_size": 4}}
    for name, opts in options.items():
        scores = get_method(name)(**opts).score(ctx)
        assert scores.shape == (3, 12) and np.isfinite(scores).all() and np.abs(scores).max() > 0, name
