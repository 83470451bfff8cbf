"""Seed 002's VGG-style network with LeakyReLU (Keras 2.2.4, CIFAR-10, 87.48% reported)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated

from pydantic import Field
from torch import nn

from cnnlab.models.layers import flat_features

# VGG-16's 13 convolutions. The seed pooled "whenever the filter count grows" and
# never strided, so the 2x2 pools sit only at the three widenings (32 -> 4 on
# CIFAR) and the two 512 blocks keep the 4x4 map.
_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def vgg13_leaky(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    negative_slope: float = 0.3,
    hidden: Annotated[int, Field(gt=0)] = 512,
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5,
) -> nn.Module:
    """13 conv 3x3 'same' -> BatchNorm -> LeakyReLU, pool on widening, one hidden dense.

    The seed's report fixes the structure (13 convs, BatchNorm before the
    activation, dropout only on the hidden dense layer) but not the numbers;
    ``negative_slope`` 0.3 is Keras' LeakyReLU default, ``hidden`` and ``dropout``
    are the usual VGG-on-CIFAR choices. The hidden layer is normalised before its
    activation too, like every other layer of the seed.
    """
    layers: list[tuple[str, nn.Module]] = []
    n_in = in_shape[0]
    for i, width in enumerate(_WIDTHS, 1):
        if width > n_in and i > 1:
            layers.append((f"pool{i - 1}", nn.MaxPool2d(2)))
        layers += [
            (f"conv{i}", nn.Conv2d(n_in, width, 3, padding=1)),
            (f"conv{i}_bn", nn.BatchNorm2d(width)),
            (f"conv{i}_act", nn.LeakyReLU(negative_slope)),
        ]
        n_in = width
    layers.append(("flatten", nn.Flatten()))
    flat = flat_features(nn.Sequential(OrderedDict(layers)), in_shape)
    layers += [
        ("fc", nn.Linear(flat, hidden)),
        ("fc_bn", nn.BatchNorm1d(hidden)),
        ("fc_act", nn.LeakyReLU(negative_slope)),
        ("fc_dropout", nn.Dropout(dropout)),
        ("output", nn.Linear(hidden, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))
