"""Modern references: ResNet-18 (CIFAR variant) and the Myrtle/DAWNBench ResNet-9.

Both keep PyTorch's default initialisation and bias-free convolutions before
BatchNorm, as their reference implementations do.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.models.layers import GlobalAvgPool, GlobalMaxPool, Scale


def _conv_bn(n_in: int, n_out: int, stride: int = 1) -> list[tuple[str, nn.Module]]:
    return [
        ("conv", nn.Conv2d(n_in, n_out, 3, stride, padding=1, bias=False)),
        ("bn", nn.BatchNorm2d(n_out)),
    ]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus the input; a 1x1 conv-BN shortcut when the shape changes."""

    def __init__(self, n_in: int, n_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            OrderedDict(
                [
                    *_conv_bn(n_in, n_out, stride),
                    ("relu", nn.ReLU()),
                    ("conv2", nn.Conv2d(n_out, n_out, 3, padding=1, bias=False)),
                    ("bn2", nn.BatchNorm2d(n_out)),
                ]
            )
        )
        self.shortcut: nn.Module | None = None
        if stride != 1 or n_in != n_out:
            self.shortcut = nn.Sequential(
                OrderedDict(
                    [
                        ("conv", nn.Conv2d(n_in, n_out, 1, stride, bias=False)),
                        ("bn", nn.BatchNorm2d(n_out)),
                    ]
                )
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.body(x) + identity)


def resnet18(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet-18 for small images (He et al. 2016, as in kuangliu/pytorch-cifar): a 3x3
    stride-1 stem and no max-pool, four stages of two blocks (64, 128, 256, 512),
    global average pooling. 11,173,962 parameters for 10 classes."""
    stages: list[tuple[str, nn.Module]] = []
    n_in = 64
    for i, (width, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
        blocks = [BasicBlock(n_in, width, stride), BasicBlock(width, width, 1)]
        stages.append((f"layer{i}", nn.Sequential(*blocks)))
        n_in = width
    return nn.Sequential(
        OrderedDict(
            [
                (
                    "stem",
                    nn.Sequential(OrderedDict([*_conv_bn(in_shape[0], 64), ("relu", nn.ReLU())])),
                ),
                *stages,
                ("pool", GlobalAvgPool()),
                ("fc", nn.Linear(512, num_classes)),
            ]
        )
    )


class Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _myrtle_conv(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([*_conv_bn(n_in, n_out), ("relu", nn.ReLU())]))


def resnet9(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The ResNet-9 of Myrtle.ai's DAWNBench CIFAR-10 entry (David Page, 2018).

    prep conv 64; layer1 conv 128 + pool + residual(2 x conv 128); layer2 conv 256 +
    pool; layer3 conv 512 + pool + residual(2 x conv 512); global max pool; linear
    without bias; logits times 0.125, which keeps the initial loss tame for the
    fast schedules this net is known for. 6,573,120 parameters for 10 classes.
    """

    def stage(n_in: int, n_out: int, residual: bool) -> nn.Sequential:
        parts: list[tuple[str, nn.Module]] = [
            ("conv", _myrtle_conv(n_in, n_out)),
            ("pool", nn.MaxPool2d(2)),
        ]
        if residual:
            parts.append(
                (
                    "residual",
                    Residual(nn.Sequential(_myrtle_conv(n_out, n_out), _myrtle_conv(n_out, n_out))),
                )
            )
        return nn.Sequential(OrderedDict(parts))

    return nn.Sequential(
        OrderedDict(
            [
                ("prep", _myrtle_conv(in_shape[0], 64)),
                ("layer1", stage(64, 128, residual=True)),
                ("layer2", stage(128, 256, residual=False)),
                ("layer3", stage(256, 512, residual=True)),
                ("pool", GlobalMaxPool()),
                ("fc", nn.Linear(512, num_classes, bias=False)),
                ("scale", Scale(0.125)),
            ]
        )
    )
