"""The model zoo's public face: name or model file -> ModelSpec -> nn.Module.

A ``ModelSpec`` is resolved once (file read, arguments checked) and then is
all that is needed to build the model again: checkpoints store it, so
``predict`` rebuilds a model from a file-less spec.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import torch
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from torch import nn

from cnnlab.config.problems import plain
from cnnlab.config.suggest import did_you_mean
from cnnlab.errors import ConfigError
from cnnlab.models.build import build_sequential
from cnnlab.models.catalogue import BUILTIN_MODELS, BuiltinModel, list_models
from cnnlab.models.factories import (
    build_from_factory,
    check_factory_args,
    is_factory_path,
    registered_path,
)
from cnnlab.models.spec import layer_dicts, parse_layers, read_model_file
from cnnlab.models.summary import LayerRow, Summary, render_summary, summarize

__all__ = [
    "LayerRow",
    "ModelSpec",
    "Summary",
    "build_model",
    "list_models",
    "preferred_input_size",
    "render_summary",
    "resolve_model",
    "summarize",
]


@dataclass(frozen=True)
class _Builtin:
    build: Callable[..., nn.Module]
    description: str
    input_size: tuple[int, int] | None = None


def _builtin(entry: BuiltinModel) -> _Builtin:
    module, function = entry.builder.split(":")
    build = getattr(importlib.import_module(f"cnnlab.models.{module}"), function)
    return _Builtin(build, entry.description, entry.input_shape[1:] if entry.pads_to else None)


_BUILTINS: dict[str, _Builtin] = {name: _builtin(m) for name, m in BUILTIN_MODELS.items()}


class ModelSpec(BaseModel):
    """A model, described completely and without reference to files.

    ``layers`` is None for a builtin (``name`` + ``args``); for a model file it is
    the validated layer list with every default written out, so later changes of
    defaults do not change old checkpoints. Store ``spec.model_dump(mode="json")``
    (plain JSON types, fine for ``torch.load(weights_only=True)``) and restore with
    ``ModelSpec.model_validate(stored)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    args: dict[str, Any] = {}
    layers: list[dict[str, Any]] | None = None
    input_size: tuple[int, int] | None = None
    description: str = ""
    source: str | None = None  # the model file, for messages only
    factory: str | None = None  # "module:qualname" of your own model's factory (factories.py)


def _is_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path


def resolve_model(name_or_path: str, args: Mapping[str, Any] | None = None) -> ModelSpec:
    """A builtin name (``-`` and ``_`` alike) or a ``.toml`` model file -> ModelSpec.

    ``args`` are the builtin's options; model files take none. Raises ConfigError.
    """
    args = dict(args or {})
    if _is_path(name_or_path):
        if args:
            raise ConfigError(
                f"{name_or_path}: a model file takes no arguments (got {', '.join(args)}); "
                "edit the file instead"
            )
        model_file = read_model_file(Path(name_or_path))
        return ModelSpec(
            name=model_file.name,
            layers=layer_dicts(model_file.layers),
            input_size=model_file.input_size,
            description=model_file.description,
            source=name_or_path,
        )
    if is_factory_path(name_or_path):
        return ModelSpec(
            name=name_or_path, factory=name_or_path, args=check_factory_args(name_or_path, args)
        )
    name = name_or_path.strip().lower().replace("_", "-")
    builtin = _BUILTINS.get(name)
    registered = registered_path(name) if builtin is None else None
    if registered is not None:
        return ModelSpec(name=name, factory=registered, args=check_factory_args(registered, args))
    if builtin is None:
        shipped = Path("models", f"{name_or_path}.toml")
        hint = f" (did you mean {shipped}?)" if shipped.is_file() else ""
        hint = hint or did_you_mean(name, _BUILTINS)
        raise ConfigError(
            f"unknown model '{name_or_path}'{hint}; builtin models: {', '.join(_BUILTINS)}; "
            "or give the path of a .toml model file, or a factory as package.module:function"
        )
    options = _check_args(name, builtin, args)
    stored = {
        key: _adapter(builtin, key).dump_python(value, mode="json")
        for key, value in options.items()
    }
    return ModelSpec(
        name=name, args=stored, input_size=builtin.input_size, description=builtin.description
    )


def _options(builtin: _Builtin) -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(builtin.build).parameters.values()
    return {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _adapter(builtin: _Builtin, key: str) -> TypeAdapter[Any]:
    # The builder's own annotations (with their Field constraints) are the schema.
    return TypeAdapter(get_type_hints(builtin.build, include_extras=True)[key])


def _check_args(name: str, builtin: _Builtin, args: Mapping[str, Any]) -> dict[str, Any]:
    """All options of ``builtin``, validated, defaults filled in. Lax on purpose:
    ``"0.5"`` and ``"false"`` from a command line are accepted."""
    options = _options(builtin)
    for key in args:
        if key not in options:
            allowed = ", ".join(options) or "none"
            raise ConfigError(f"model '{name}': unknown argument '{key}'; allowed: {allowed}")
    checked: dict[str, Any] = {}
    for key, parameter in options.items():
        value = args.get(key, parameter.default)
        try:
            checked[key] = _adapter(builtin, key).validate_python(value)
        except ValidationError as e:
            message = plain(e.errors()[0]["msg"])
            raise ConfigError(f"model '{name}': argument {key} = {value!r}: {message}") from None
    return checked


def preferred_input_size(spec: ModelSpec) -> tuple[int, int] | None:
    """The (H, W) the model was designed for (the trainer pads images to it), or None."""
    return spec.input_size


def _shape_text(in_shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in in_shape)


def build_model(spec: ModelSpec, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A freshly initialised model for images of ``in_shape`` (C, H, W), in training mode.

    Raises ConfigError when the model cannot take that shape or does not output
    one value per class.
    """
    if len(in_shape) != 3 or min(in_shape) < 1 or num_classes < 1:
        raise ValueError(f"bad in_shape {in_shape} or num_classes {num_classes}")
    in_shape = (int(in_shape[0]), int(in_shape[1]), int(in_shape[2]))
    label = spec.source or f"model '{spec.name}'"
    hint = ""
    if spec.input_size:
        hint = f" (it expects {spec.input_size[0]}x{spec.input_size[1]} images)"
    if spec.layers is not None:
        model: nn.Module = build_sequential(
            parse_layers(spec.layers, label), in_shape, num_classes, label
        )
    elif spec.factory is not None:
        try:
            model = build_from_factory(spec.factory, in_shape, num_classes, spec.args)
        except (RuntimeError, TypeError, ValueError) as e:
            raise ConfigError(
                f"model factory '{spec.factory}' failed for {_shape_text(in_shape)} inputs and "
                f"{num_classes} classes: {_first_line(e)}"
            ) from e
    else:
        builtin = _BUILTINS.get(spec.name)
        if builtin is None:
            raise ConfigError(
                f"{label}: not a builtin model; builtin models: {', '.join(_BUILTINS)}"
            )
        try:
            model = builtin.build(
                in_shape, num_classes, **_check_args(spec.name, builtin, spec.args)
            )
        except RuntimeError as e:
            raise ConfigError(
                f"{label} cannot take {_shape_text(in_shape)} inputs{hint}: {_first_line(e)}"
            ) from e
    _check_output(model, in_shape, num_classes, label, hint)
    return model


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def _check_output(
    model: nn.Module, in_shape: tuple[int, int, int], num_classes: int, label: str, hint: str
) -> None:
    """Fail now, with the model's name, rather than in the first training step."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *in_shape))
    except RuntimeError as e:
        raise ConfigError(
            f"{label} cannot take {_shape_text(in_shape)} inputs{hint}: {_first_line(e)}"
        ) from e
    finally:
        model.train()
    if tuple(out.shape) != (1, num_classes):
        raise ConfigError(
            f"{label}: outputs {_shape_text(tuple(out.shape[1:]))} values per image but the data "
            f'has {num_classes} classes; end the model with a dense layer of units = "classes"'
        )
