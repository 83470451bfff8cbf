"""Weight initialisation schemes, named and defined as in Keras.

``default`` leaves PyTorch's own initialisation (kaiming_uniform with a = sqrt(5),
i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias). The
named schemes zero the bias, as Keras does. Keras' normal variants draw from a
normal truncated at two standard deviations, rescaled so the variance is still
scale / fan; we do the same so that a Keras model's ``he_normal`` means the same here.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import nn

InitName = Literal["default", "he_uniform", "he_normal", "glorot_uniform", "glorot_normal"]
INIT_NAMES: tuple[str, ...] = get_args(InitName)

# Standard deviation of a unit normal truncated to [-2, 2] (Keras' correction factor).
_TRUNCATED_STD = 0.87962566103423978


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear or convolution weight, as Keras and PyTorch count them."""
    receptive = weight[0][0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def init_weights(module: nn.Conv2d | nn.Linear, scheme: InitName) -> None:
    """Re-initialise ``module`` in place with ``scheme``."""
    if scheme == "default":
        return
    fan_in, fan_out = fans(module.weight)
    he = scheme.startswith("he_")
    variance = (2.0 / fan_in) if he else (2.0 / (fan_in + fan_out))
    with torch.no_grad():
        if scheme.endswith("_uniform"):
            bound = math.sqrt(3.0 * variance)
            module.weight.uniform_(-bound, bound)
        else:
            std = math.sqrt(variance) / _TRUNCATED_STD
            nn.init.trunc_normal_(module.weight, 0.0, std, -2.0 * std, 2.0 * std)
        if module.bias is not None:
            module.bias.zero_()
