"""The MNIST-era models of seeds 000 and 001: LeNet-5, a matched MLP, the TF-tutorial CNN.

Every builder takes ``(in_shape, num_classes, **args)`` with ``in_shape`` as
(channels, height, width); keyword arguments are the model's user-facing options.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import pairwise
from typing import Annotated

from pydantic import Field
from torch import nn

from cnnlab.models.layers import MaxPool2dSame, flat_features


def lenet5(
    in_shape: tuple[int, int, int], num_classes: int, *, batch_norm: bool = False
) -> nn.Module:
    """LeNet-5 as seed 001 ran it in PyTorch: ReLU and 2x2 max-pooling.

    On 1x32x32 (MNIST padded from 28) it has 61,706 parameters: C1 156, C3 2,416,
    C5 48,120, F6 10,164, output 850. ``batch_norm`` puts a BatchNorm after C1, C3,
    C5 and F6, before the ReLU; the layers keep their biases, so only the BatchNorm
    parameters are added. Inputs smaller than 32x32 leave nothing for C5 to see.
    """
    channels = in_shape[0]

    def block(
        name: str, layer: nn.Module, width: int, bn: type[nn.Module]
    ) -> list[tuple[str, nn.Module]]:
        norm = [(f"{name}_bn", bn(width))] if batch_norm else []
        return [(name, layer), *norm, (f"{name}_relu", nn.ReLU())]

    features = nn.Sequential(
        OrderedDict(
            [
                *block("c1", nn.Conv2d(channels, 6, 5), 6, nn.BatchNorm2d),
                ("s2", nn.MaxPool2d(2)),
                *block("c3", nn.Conv2d(6, 16, 5), 16, nn.BatchNorm2d),
                ("s4", nn.MaxPool2d(2)),
                *block("c5", nn.Conv2d(16, 120, 5), 120, nn.BatchNorm2d),
                ("flatten", nn.Flatten()),
            ]
        )
    )
    # 120 on 32x32; larger inputs leave C5 a map larger than 1x1 and F6 takes all of it.
    flat = flat_features(features, in_shape)
    return nn.Sequential(
        OrderedDict(
            [
                *features.named_children(),
                *block("f6", nn.Linear(flat, 84), 84, nn.BatchNorm1d),
                ("output", nn.Linear(84, num_classes)),
            ]
        )
    )


def mlp(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    hidden: tuple[Annotated[int, Field(gt=0)], ...] = (44, 120, 84),
) -> nn.Module:
    """Seed 001's "Custom MLP": flatten, then ReLU dense layers of ``hidden`` sizes.

    The defaults reuse LeNet-5's 120-84 head behind a 44-unit layer so that the
    total is close to LeNet-5's: 61,514 parameters on 1x32x32. (The seed reports
    61,014 from arithmetic slips: 44 x 1025 = 45,100, not 44,660, and
    120 x 45 = 5,400, not 5,340.)
    """
    sizes = [in_shape[0] * in_shape[1] * in_shape[2], *hidden]
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for i, (n_in, n_out) in enumerate(pairwise(sizes), 1):
        layers += [(f"fc{i}", nn.Linear(n_in, n_out)), (f"fc{i}_relu", nn.ReLU())]
    layers.append(("output", nn.Linear(sizes[-1], num_classes)))
    return nn.Sequential(OrderedDict(layers))


def mnist_cnn(
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    batch_norm: bool = True,
    keep_prob: Annotated[float, Field(gt=0, le=1)] = 0.8,
) -> nn.Module:
    """Seed 000's CNN: the classic TensorFlow MNIST tutorial CNN (hunkim's
    DeepLearningZeroToAll, lab 11) with batch normalisation added.

    Three blocks of conv 3x3 'same' (32, 64, 128 filters) -> [BatchNorm] -> ReLU ->
    max-pool 2x2 with TensorFlow 'same' padding -> dropout; then dense 625 -> ReLU
    -> dropout -> dense. Dropout drops 1 - ``keep_prob``, the TF1 convention the
    seed used. 28x28 and 32x32 inputs both end in a 4x4x128 map.
    """
    layers: list[tuple[str, nn.Module]] = []
    widths = [in_shape[0], 32, 64, 128]
    for i, (n_in, n_out) in enumerate(pairwise(widths), 1):
        layers.append((f"conv{i}", nn.Conv2d(n_in, n_out, 3, padding=1)))
        if batch_norm:
            layers.append((f"conv{i}_bn", nn.BatchNorm2d(n_out)))
        layers += [
            (f"conv{i}_relu", nn.ReLU()),
            (f"pool{i}", MaxPool2dSame((2, 2), (2, 2))),
            (f"dropout{i}", nn.Dropout(1 - keep_prob)),
        ]
    layers.append(("flatten", nn.Flatten()))
    flat = flat_features(nn.Sequential(OrderedDict(layers)), in_shape)
    layers += [
        ("fc", nn.Linear(flat, 625)),
        ("fc_relu", nn.ReLU()),
        ("fc_dropout", nn.Dropout(1 - keep_prob)),
        ("output", nn.Linear(625, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))
