"""ResNet-9 of the SOURCE / TRAK CIFAR-10 experiments (the ffcv CIFAR example): conv-bn-relu blocks
64 - 128 (+ residual) - 256 - 512 (+ residual) with max pooling, global max pool, a bias-free linear
layer and a fixed output scale of 0.2. `widths` scales the four stages (tests use small ones)."""
from __future__ import annotations

from torch import nn


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return x + self.module(x)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def build_resnet9(cfg: dict, in_shape: tuple[int, ...], n_out: int) -> nn.Module:
    w1, w2, w3, w4 = cfg["widths"]
    return nn.Sequential(
        conv_bn(in_shape[0], w1),
        conv_bn(w1, w2), nn.MaxPool2d(2), Residual(nn.Sequential(conv_bn(w2, w2), conv_bn(w2, w2))),
        conv_bn(w2, w3), nn.MaxPool2d(2),
        conv_bn(w3, w4), nn.MaxPool2d(2), Residual(nn.Sequential(conv_bn(w4, w4), conv_bn(w4, w4))),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w4, n_out, bias=False), Scale(0.2),
    )
