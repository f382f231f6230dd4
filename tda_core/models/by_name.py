"""Models named by library: any timm architecture or torchvision classification model, built
untrained (no weight downloads) with the experiment's number of outputs."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def _no_fused_attention(model: nn.Module) -> nn.Module:
    # torch.func.vmap over per-example gradients needs the plain (non-fused) attention path.
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return model


def build_timm(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    import timm

    arch = cfg.get("arch")
    if not arch or not timm.list_models(arch):
        raise ConfigError(f"model timm needs model.arch naming a timm architecture, got {arch!r}")
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=n_out, in_chans=in_shape[0],
                                  **(cfg.get("kwargs") or {}))
    except Exception as e:  # noqa: BLE001 - a bad argument surfaces as any exception type
        raise ConfigError(f"timm model {arch} with kwargs {cfg.get('kwargs') or {}}: {_first_line(e)}") from None
    return _no_fused_attention(model)


def build_torchvision(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    import torchvision

    arch = cfg.get("arch")
    if not arch or arch not in torchvision.models.list_models():
        raise ConfigError(f"model torchvision needs model.arch naming a torchvision model, got {arch!r}")
    try:
        return torchvision.models.get_model(arch, weights=None, num_classes=n_out, **(cfg.get("kwargs") or {}))
    except Exception as e:  # noqa: BLE001 - a bad argument surfaces as any exception type
        raise ConfigError(f"torchvision model {arch} with kwargs {cfg.get('kwargs') or {}}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
