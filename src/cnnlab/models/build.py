"""Turn validated layers (see spec.py) into an ``nn.Sequential``.

Input channels and dense input sizes are not written in model files: each layer
is built for the shape that the layers before it actually produce, found by
pushing one zero image through them as they are built.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.init import init_weights
from cnnlab.models.layers import (
    AvgPool2dSame,
    Conv2dSame,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool2dSame,
    Pair,
    PatchWhitening,
)
from cnnlab.models.spec import (
    CLASSES,
    Activation,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Layer,
    LeakyRelu,
    NamedActivation,
    Pool,
    Reshape,
    Whiten,
)

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class _ShapeError(Exception):
    """A layer cannot take the shape it is given; the message says what to add."""


def make_activation(fn: str, negative_slope: float | None = None) -> nn.Module:
    if fn == "leaky_relu":
        return nn.LeakyReLU(0.01 if negative_slope is None else negative_slope)
    return _ACTIVATIONS[fn]()


def _pair(value: int | tuple[int, int]) -> Pair:
    return (value, value) if isinstance(value, int) else value


def _count(value: int | str | None, num_classes: int) -> int:
    """Units or filters; "classes" (or units left out) is the number of classes."""
    return num_classes if value is None or value == CLASSES else int(value)


def _shape(shape: torch.Size) -> str:
    return "x".join(str(d) for d in shape[1:])


def _need_image(shape: torch.Size) -> None:
    if len(shape) != 4:
        raise _ShapeError(
            f"needs an image input (channels x height x width), got a flat input of {shape[1]} "
            "values; move it before the flatten or global pool layer"
        )


# Far beyond any model cnnlab trains (ResNet-18: 11 M); checked before allocating, so a typo
# such as units = 100000000000 is one line instead of an out-of-memory crash.
MAX_LAYER_PARAMETERS = 2_000_000_000


def _check_size(weights: int) -> None:
    if weights > MAX_LAYER_PARAMETERS:
        raise _ShapeError(
            f"would hold {weights:,} weights, more than the {MAX_LAYER_PARAMETERS:,} a layer "
            "may have; make it smaller"
        )


def _conv(layer: Conv, shape: torch.Size, num_classes: int) -> nn.Conv2d:
    _need_image(shape)
    filters = _count(layer.filters, num_classes)
    kernel, stride = _pair(layer.kernel), _pair(layer.stride)
    _check_size(shape[1] * filters * kernel[0] * kernel[1])
    if layer.padding != "same":
        padding = 0 if layer.padding == "valid" else int(layer.padding)
        conv = nn.Conv2d(shape[1], filters, kernel, stride, padding, bias=layer.bias)
    elif stride == (1, 1) and kernel[0] % 2 == 1 and kernel[1] % 2 == 1:
        # Odd kernel, stride 1: TensorFlow's 'same' is symmetric, so plain padding does it.
        padding = (kernel[0] // 2, kernel[1] // 2)
        conv = nn.Conv2d(shape[1], filters, kernel, stride, padding, bias=layer.bias)
    else:
        conv = Conv2dSame(shape[1], filters, kernel, stride, layer.bias)
    init_weights(conv, layer.init or "default")
    return conv


def _dense(layer: Dense, shape: torch.Size, num_classes: int) -> nn.Linear:
    if len(shape) != 2:
        raise _ShapeError(
            f"needs a flat input, got {_shape(shape)}; "
            "add a flatten or global_avg_pool layer before it"
        )
    units = _count(layer.units, num_classes)
    _check_size(shape[1] * units)
    linear = nn.Linear(shape[1], units, bias=layer.bias)
    init_weights(linear, layer.init or "default")
    return linear


def _pool(layer: Pool, shape: torch.Size) -> nn.Module:
    _need_image(shape)
    size = _pair(layer.size)
    stride = size if layer.stride is None else _pair(layer.stride)
    if layer.padding == "same":
        return (MaxPool2dSame if layer.type == "max_pool" else AvgPool2dSame)(size, stride)
    padding = 0 if layer.padding == "valid" else int(layer.padding)
    if layer.type == "max_pool":
        return nn.MaxPool2d(size, stride, padding)
    return nn.AvgPool2d(size, stride, padding)


def _modules(
    layer: Layer, name: str, shape: torch.Size, num_classes: int
) -> list[tuple[str, nn.Module]]:
    """The module(s) for one layer, named; a conv or dense with an activation gives two."""
    match layer:
        case Conv() | Dense():
            if isinstance(layer, Conv):
                main: nn.Module = _conv(layer, shape, num_classes)
            else:
                main = _dense(layer, shape, num_classes)
            if layer.activation is None:
                return [(name, main)]
            return [(name, main), (f"{name}_{layer.activation}", make_activation(layer.activation))]
        case BatchNorm():
            if len(shape) not in (2, 4):
                raise _ShapeError(f"cannot normalise an input of shape {_shape(shape)}")
            bn = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
            return [(name, bn(shape[1], eps=layer.eps, momentum=layer.momentum))]
        case Activation():
            return [(name, make_activation(layer.fn, layer.negative_slope))]
        case LeakyRelu():
            return [(name, make_activation("leaky_relu", layer.negative_slope))]
        case NamedActivation():
            return [(name, make_activation(layer.type))]
        case Pool():
            return [(name, _pool(layer, shape))]
        case Dropout():
            return [(name, nn.Dropout(layer.rate))]
        case Whiten():
            _need_image(shape)
            return [(name, PatchWhitening(shape[1], _pair(layer.kernel), layer.eps))]
        case Reshape(type="flatten"):
            return [(name, nn.Flatten())]
        case Reshape():
            _need_image(shape)
            return [(name, GlobalAvgPool() if layer.type == "global_avg_pool" else GlobalMaxPool())]
    raise AssertionError(f"unhandled layer {layer!r}")


def build_sequential(
    layers: Sequence[Layer], in_shape: tuple[int, int, int], num_classes: int, where: str
) -> nn.Sequential:
    """Build ``layers`` for images of ``in_shape``; ``where`` prefixes error messages."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    x = torch.zeros(1, *in_shape)
    with torch.no_grad():
        for number, layer in enumerate(layers, 1):
            label = f"{where}: layer {number} ({layer.type})"
            if isinstance(layer, Whiten) and number != 1:
                # It is fitted to the input images, so it must see them.
                raise ConfigError(f"{label}: must be the first layer (it whitens the input)")
            try:
                built = _modules(layer, f"{layer.type}{number}", x.shape, num_classes)
            except _ShapeError as e:
                raise ConfigError(f"{label}: {e}") from None
            for name, module in built:
                # eval: a batch of one is fine for BatchNorm1d only in eval mode.
                module.eval()
                try:
                    x = module(x)
                except RuntimeError as e:
                    reason = str(e).strip().splitlines()[0]
                    raise ConfigError(
                        f"{label}: cannot take an input of shape {_shape(x.shape)}: {reason}"
                    ) from e
                modules[name] = module
    return nn.Sequential(modules).train()
