from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import nn


def build_vit(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """A timm VisionTransformer sized by config (no dropout, so training is deterministic)."""
    channels, height, _ = in_shape
    model = VisionTransformer(
        img_size=height,
        patch_size=cfg["patch_size"],
        in_chans=channels,
        num_classes=n_out,
        embed_dim=cfg["embed_dim"],
        depth=cfg["depth"],
        num_heads=cfg["num_heads"],
        mlp_ratio=cfg["mlp_ratio"],
        class_token=True,
        global_pool="token",
    )
    # torch.func.vmap over per-example gradients needs the plain (non-fused) attention path.
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return model
