"""A diffusers UNet2DModel sized by config, wrapped so that its forward takes ONE tensor.

Every model in tda-bench is called as `model(inputs)` (functional_call, vmap over examples), so the
diffusion timestep travels inside the input: `pack_timestep(x_noisy, t)` appends one constant
channel holding t, and `TimeChannelUNet.forward` splits it off again. Classes are ignored
(unconditional model). Attention runs through diffusers' plain `AttnProcessor`: the default SDPA
kernel has no torch.func batching rule on CPU (vmap falls back to a slow per-example loop).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def pack_timestep(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] images and [B] timesteps -> [B, C + 1, H, W] model input (last channel = t)."""
    t_channel = t.to(x.dtype)[:, None, None, None].expand(x.shape[0], 1, *x.shape[2:])
    return torch.cat([x, t_channel], dim=1)


class TimeChannelUNet(nn.Module):
    """forward(x) = unet(x[:, :-1], timestep=x[:, -1, 0, 0]).sample: epsilon prediction."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x[:, :-1], x[:, -1, 0, 0], return_dict=False)[0]


def build_unet(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """`in_shape` is the image shape (C, H, W); `n_out` (number of classes) is unused: unconditional."""
    from diffusers import UNet2DModel
    from diffusers.models.attention_processor import Attention, AttnProcessor

    channels, height, width = in_shape
    widths = list(cfg["block_out_channels"])
    groups = cfg.get("norm_num_groups", 8)
    if any(w % groups for w in widths):
        raise ConfigError(f"model.norm_num_groups={groups} must divide every block_out_channels entry {widths}")
    if height % 2 ** (len(widths) - 1):
        raise ConfigError(f"images of height {height} cannot be halved {len(widths) - 1} times "
                          f"(one per extra entry of block_out_channels {widths})")
    attention = cfg.get("attention_blocks") or [i == len(widths) - 1 for i in range(len(widths))]
    if len(attention) != len(widths):
        raise ConfigError(f"model.attention_blocks has {len(attention)} entries, block_out_channels {len(widths)}")
    down = ["AttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    up = ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)]
    unet = UNet2DModel(
        sample_size=(height, width),
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(widths),
        layers_per_block=cfg["layers_per_block"],
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=groups,
        attention_head_dim=cfg.get("attention_head_dim", 8),
        add_attention=cfg.get("mid_attention", True),
    )
    for module in unet.modules():
        if isinstance(module, Attention):
            module.set_processor(AttnProcessor())
    return TimeChannelUNet(unet)
