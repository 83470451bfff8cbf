"""Seed 003's three CIFAR-10 models (PyTorch, Adam 1e-3, weight decay 1e-6, batch 64).

The seed fixes the ideas (3x3 convs with padding 1 and stride 1 to keep the map,
non-overlapping 2x2 max-pools, depth "as deep as possible") and the three heads,
but not the widths. Here: four blocks of two convs (64, 128, 256, 512), each block
followed by a pool (32 -> 2 on CIFAR), ReLU, no batch norm (the seed names none).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated

from pydantic import Field
from torch import nn

from cnnlab.models.layers import GlobalAvgPool, flat_features

_BLOCKS = (64, 128, 256, 512)


def _features(channels: int, dropout: float) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = []
    n_in = channels
    for b, width in enumerate(_BLOCKS, 1):
        for c in (1, 2):
            layers += [
                (f"conv{b}_{c}", nn.Conv2d(n_in, width, 3, padding=1)),
                (f"conv{b}_{c}_relu", nn.ReLU()),
            ]
            n_in = width
        layers.append((f"pool{b}", nn.MaxPool2d(2)))
        if dropout:
            layers.append((f"dropout{b}", nn.Dropout(dropout)))
    return layers


def cifar_dense(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Model 1: the conv stack, then fully connected layers 1024 -> 512 -> classes."""
    layers = [*_features(in_shape[0], 0.0), ("flatten", nn.Flatten())]
    flat = flat_features(nn.Sequential(OrderedDict(layers)), in_shape)
    layers += [
        ("fc1", nn.Linear(flat, 1024)),
        ("fc1_relu", nn.ReLU()),
        ("fc2", nn.Linear(1024, 512)),
        ("fc2_relu", nn.ReLU()),
        ("output", nn.Linear(512, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))


def cifar_avgpool(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Model 2: the conv stack, then global average pooling and one linear layer."""
    return _avgpool_model(in_shape, num_classes, 0.0)


def cifar_avgpool_dropout(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.25,
) -> nn.Module:
    """Model 3: model 2 with dropout after every pooling stage."""
    return _avgpool_model(in_shape, num_classes, dropout)


def _avgpool_model(in_shape: tuple[int, int, int], num_classes: int, dropout: float) -> nn.Module:
    layers = [
        *_features(in_shape[0], dropout),
        ("pool", GlobalAvgPool()),
        ("output", nn.Linear(_BLOCKS[-1], num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))
