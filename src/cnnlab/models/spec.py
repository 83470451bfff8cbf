"""The models-as-data format: a TOML file of ``[[layer]]`` tables.

Example (``models/cnn7.toml`` has the full file)::

    name = "cnn7"                 # optional; defaults to the file name without .toml
    description = "..."           # optional, one line
    init = "glorot_uniform"       # optional default init of conv and dense layers
    input_size = [32, 32]         # optional preferred input (H, W); data is padded to it

    [[layer]]
    type = "conv"
    filters = 32
    kernel = 3
    padding = "same"
    activation = "relu"

    [[layer]]
    type = "max_pool"
    size = 3
    stride = 2
    padding = "same"

    [[layer]]
    type = "flatten"

    [[layer]]
    type = "dense"                # the last dense layer may omit units: one per class

``layer = [{ type = "conv", ... }, { type = "max_pool", ... }]``, an array of
inline tables, is the same thing in TOML and reads well for long models (the
seed-004 files use it). ``input_size`` may also be one int for a square.

Layer types and keys (defaults in brackets):

- ``conv``: filters, kernel (int or [h, w]), stride [1], padding ["valid"],
  bias [true], activation [none], init [model's]
- ``dense``: units, activation [none], bias [true], init [model's]
- ``batch_norm``: momentum [0.1], eps [1e-5] (PyTorch's conventions: momentum is
  the weight of the new batch; Keras' momentum=0.99, epsilon=1e-3 is
  momentum = 0.01, eps = 0.001 here). 2-D or 1-D is chosen from the input.
- ``activation``: fn, negative_slope (leaky_relu only, [0.01]); or the function
  name as the type: ``relu``, ``leaky_relu`` (negative_slope), ``gelu``,
  ``tanh``, ``sigmoid``, ``elu``, ``silu``.
- ``max_pool`` / ``avg_pool``: size, stride [size], padding ["valid"]
- ``dropout``: rate
- ``flatten``, ``global_avg_pool``, ``global_max_pool`` (the global pools
  output (N, C), ready for a dense layer)

Conventions:

- padding is "valid" (none), "same" (TensorFlow's: output = ceil(input /
  stride), odd padding after), or an int (PyTorch's symmetric zero padding).
  "valid" is the default because it is both PyTorch's and Keras' default.
- ``units`` and ``filters`` may be ``"classes"``: the number of classes of the
  dataset. The last dense layer without ``units`` gets ``"classes"``; other
  dense layers must say. The model must output one value per class.
- There is no softmax: the loss applies it to the logits.
- Layers are numbered from 1 in messages and in module names (``conv1``,
  ``max_pool2``, ``conv1_relu`` for a conv's activation).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from cnnlab.config.problems import plain
from cnnlab.errors import ConfigError
from cnnlab.models.init import InitName

ActivationName = Literal["relu", "leaky_relu", "gelu", "tanh", "sigmoid", "elu", "silu"]
CLASSES = "classes"


def _is_int(value: Any) -> bool:
    # TOML booleans are Python bools, which are ints; `kernel = true` is a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: Any) -> int | tuple[int, int]:
    if _is_int(value) and value > 0:
        return value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(_is_int(v) and v > 0 for v in value)
    ):
        return (value[0], value[1])
    raise ValueError("must be a positive integer or [height, width]")


def _padding(value: Any) -> int | str:
    if value in ("same", "valid") or (_is_int(value) and value >= 0):
        return value
    raise ValueError('must be "same", "valid" or a non-negative integer')


def _count(value: Any) -> int | str:
    if value == CLASSES or (_is_int(value) and value > 0):
        return value
    raise ValueError('must be a positive integer or "classes"')


Size = Annotated[int | tuple[int, int], BeforeValidator(_size)]
Padding = Annotated[int | Literal["same", "valid"], BeforeValidator(_padding)]
Count = Annotated[int | Literal["classes"], BeforeValidator(_count)]


class _Layer(BaseModel):
    # strict: TOML is typed, so "32" for an int is a mistake worth reporting.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Conv(_Layer):
    type: Literal["conv"]
    filters: Count
    kernel: Size
    stride: Size = 1
    padding: Padding = "valid"
    bias: bool = True
    activation: ActivationName | None = None
    init: InitName | None = None


class Dense(_Layer):
    type: Literal["dense"]
    units: Count | None = None
    activation: ActivationName | None = None
    bias: bool = True
    init: InitName | None = None


class BatchNorm(_Layer):
    type: Literal["batch_norm"]
    momentum: Annotated[float, Field(gt=0, le=1)] = 0.1
    eps: Annotated[float, Field(gt=0)] = 1e-5


class Activation(_Layer):
    type: Literal["activation"]
    fn: ActivationName
    negative_slope: float | None = None

    @model_validator(mode="after")
    def _slope_only_for_leaky(self) -> Activation:
        if self.negative_slope is not None and self.fn != "leaky_relu":
            raise ValueError('negative_slope applies only to fn = "leaky_relu"')
        return self


class LeakyRelu(_Layer):
    type: Literal["leaky_relu"]
    negative_slope: float = 0.01


class NamedActivation(_Layer):
    """An activation written as the layer type itself, e.g. ``type = "relu"``."""

    type: Literal["relu", "gelu", "tanh", "sigmoid", "elu", "silu"]


class Pool(_Layer):
    type: Literal["max_pool", "avg_pool"]
    size: Size
    stride: Size | None = None
    padding: Padding = "valid"


class Dropout(_Layer):
    type: Literal["dropout"]
    rate: Annotated[float, Field(ge=0, lt=1)]


class Whiten(_Layer):
    """A frozen conv that whitens image patches, fitted to the training images before training.

    It has 2 x channels x kernel^2 filters: each eigenvector of the patch covariance scaled by
    1/sqrt(eigenvalue + eps), and its negative (so a following ReLU/GELU loses nothing). The
    speed-run trick of the airbench and hlb-CIFAR10 write-ups; only its bias is trained.
    """

    type: Literal["whiten"]
    kernel: Size = 2
    eps: Annotated[float, Field(gt=0)] = 5e-4


class Reshape(_Layer):
    """Layers without settings."""

    type: Literal["flatten", "global_avg_pool", "global_max_pool"]


Layer = (
    Conv
    | Dense
    | BatchNorm
    | Activation
    | LeakyRelu
    | NamedActivation
    | Pool
    | Dropout
    | Whiten
    | Reshape
)

_LAYER_CLASSES: tuple[type[_Layer], ...] = (
    Conv,
    Dense,
    BatchNorm,
    Activation,
    LeakyRelu,
    NamedActivation,
    Pool,
    Dropout,
    Whiten,
    Reshape,
)
LAYER_TYPES: dict[str, type[_Layer]] = {
    name: cls for cls in _LAYER_CLASSES for name in get_args(cls.model_fields["type"].annotation)
}


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None
    description: str = ""
    init: InitName = "default"
    input_size: Size | None = None
    layer: list[Any] = []


@dataclass(frozen=True)
class ModelFile:
    """A validated model file; ``layers`` already carry the file's default init."""

    name: str
    description: str
    input_size: tuple[int, int] | None
    layers: list[Layer]


def _toml_value(value: Any) -> str:
    # JSON spells strings, numbers, booleans and arrays the way TOML does.
    return json.dumps(value, default=str)


def _explain(errors: list[ErrorDetails], allowed: Sequence[str], noun: str = "key") -> str:
    """The most telling pydantic error as a phrase naming the key and what it accepts."""
    # A misspelt key also shows up as a missing one; the misspelling is the news.
    error = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    key = error["loc"][0] if error["loc"] else None
    if error["type"] == "extra_forbidden":
        return f"unknown {noun} '{key}'; allowed: {', '.join(allowed) or 'only type'}"
    if error["type"] == "missing":
        return f"missing {noun} '{key}'"
    message = plain(error["msg"])
    if key is None:
        return message
    return f"{key} = {_toml_value(error['input'])}: {message}"


def _keys(cls: type[BaseModel]) -> list[str]:
    return list(cls.model_fields)


def parse_layers(raw: Sequence[Any], where: str, default_init: InitName = "default") -> list[Layer]:
    """Validate ``[[layer]]`` tables (or their stored dicts) into layer objects.

    ``where`` prefixes every message, e.g. the file's path. Conv and dense layers
    without ``init`` get ``default_init``; the last dense layer without ``units``
    gets ``"classes"``.
    """
    if not raw:
        raise ConfigError(f"{where}: no layers; list them as [[layer]] tables")
    layers: list[Layer] = []
    for number, table in enumerate(raw, 1):
        if not isinstance(table, Mapping) or "type" not in table:
            raise ConfigError(f"{where}: layer {number}: needs a 'type' key")
        kind = table["type"]
        cls = LAYER_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ConfigError(
                f"{where}: layer {number}: unknown type {_toml_value(kind)}; "
                f"allowed: {', '.join(LAYER_TYPES)}"
            )
        try:
            layer = cls.model_validate(dict(table))
        except ValidationError as e:
            allowed = [k for k in _keys(cls) if k != "type"]
            explained = _explain(e.errors(), allowed)
            raise ConfigError(f"{where}: layer {number} ({kind}): {explained}") from None
        if isinstance(layer, Conv | Dense) and layer.init is None:
            layer = layer.model_copy(update={"init": default_init})
        layers.append(layer)
    return _default_units(layers, where)


def _default_units(layers: list[Layer], where: str) -> list[Layer]:
    dense = [(i, layer) for i, layer in enumerate(layers) if isinstance(layer, Dense)]
    for i, layer in dense[:-1]:
        if layer.units is None:
            raise ConfigError(
                f"{where}: layer {i + 1} (dense): missing key 'units' (only the last dense "
                "layer may leave it out, to get one unit per class)"
            )
    if dense and dense[-1][1].units is None:
        i, last = dense[-1]
        layers[i] = last.model_copy(update={"units": CLASSES})
    return layers


def layer_dicts(layers: Sequence[Layer]) -> list[dict[str, Any]]:
    """Layers as plain JSON-ready dicts (defaults written out), for a ModelSpec."""
    return [layer.model_dump(mode="json", exclude_none=True) for layer in layers]


def read_model_file(path: Path) -> ModelFile:
    """Read and validate a model file; every problem is a one-line ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: model file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the model file: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    if "layer" in data and not isinstance(data["layer"], list):
        raise ConfigError(f"{path}: write each layer as a [[layer]] table (double brackets)")
    try:
        header = _Header.model_validate(data)
    except ValidationError as e:
        explained = _explain(e.errors(), _keys(_Header), "top-level key")
        raise ConfigError(f"{path}: {explained}") from None
    layers = parse_layers(header.layer, str(path), header.init)
    size = header.input_size
    return ModelFile(
        name=header.name or path.stem,
        description=header.description,
        input_size=(size, size) if isinstance(size, int) else size,
        layers=layers,
    )
