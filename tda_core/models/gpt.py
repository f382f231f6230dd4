"""A transformers GPT-2 trained from scratch, called as `model(token_ids [B, T]) -> logits [B, T, V]`.

Built from `GPT2Config` (no weights downloaded): dropout off (the suite's models run in eval mode),
eager attention (torch.func.vmap needs the plain attention path), no KV cache. The vocabulary size
is the experiment's number of outputs (the tokenizer's or the character vocabulary's size). Token
and position embeddings are `nn.Embedding`; attention and MLP projections are transformers'
`Conv1D` (weight [in, out]); the output head shares the token embedding's weight unless
`tie_word_embeddings: false`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

DEFAULTS = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 32, "tie_word_embeddings": True}


class GPTLanguageModel(nn.Module):
    """Wraps GPT2LMHeadModel so that the call is one tensor in, one tensor out (like every suite model)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=token_ids, use_cache=False).logits


def build_gpt2(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel  # imported only by language-model experiments

    # Only GPT-2's own keys: the schema fills every model's defaults into the block (like the ViT, this
    # builder ignores the others); a misspelled key is the schema's error (additionalProperties: false).
    opts = {**DEFAULTS, **{k: cfg[k] for k in DEFAULTS if cfg.get(k) is not None}}
    context = in_shape[0] if in_shape else opts["n_positions"]
    if context > opts["n_positions"]:
        raise ConfigError(f"model gpt2: sequences of {context} tokens exceed n_positions = {opts['n_positions']}")
    if opts["n_embd"] % opts["n_head"]:
        raise ConfigError(f"model gpt2: n_embd ({opts['n_embd']}) must be a multiple of n_head ({opts['n_head']})")
    config = GPT2Config(vocab_size=n_out, n_positions=opts["n_positions"], n_embd=opts["n_embd"],
                        n_layer=opts["n_layer"], n_head=opts["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
                        # GPT-2's tanh-approximate GELU as one fused kernel: the same function as its default
                        # gelu_new, which runs as five elementwise ops and was 40% of a CPU training step
                        activation_function="gelu_pytorch_tanh",
                        tie_word_embeddings=bool(opts["tie_word_embeddings"]))
    config._attn_implementation = "eager"  # vmap-safe attention (no fused SDPA kernel)
    return GPTLanguageModel(GPT2LMHeadModel(config))
