"""Your own model: a factory given as ``"package.module:function"``, or registered by name.

A factory is any callable ``factory(in_shape, num_classes, **args) -> nn.Module`` with
``in_shape`` = (C, H, W). Checkpoints record its import path (``module:qualname``) and
arguments, so `evaluate`, `predict` and `export` rebuild the model in another process,
provided the module imports there. ``register_model("name")`` gives a factory a short
name for the current process (models named in study files and flags); the checkpoint
still records the import path.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from cnnlab.errors import ConfigError

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)
FACTORY_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_REGISTERED: dict[str, str] = {}  # short name -> "module:qualname"
_CALLABLES: dict[str, Factory] = {}  # "module:qualname" -> the function (notebooks, __main__)


def is_factory_path(name: str) -> bool:
    return bool(FACTORY_PATH.match(name))


def register_model(name: str) -> Callable[[F], F]:
    """Decorator: ``@cnnlab.register_model("tiny-net")`` over ``def make(in_shape,
    num_classes, **args)``; then ``model = "tiny-net"`` works like a builtin name."""
    key = name.strip().lower().replace("_", "-")
    if not key or ":" in key or "/" in key:
        raise ConfigError(f"register_model({name!r}): use a plain name such as 'tiny-net'")

    def register(factory: F) -> F:
        _REGISTERED[key] = remember_factory(factory)
        return factory

    return register


def remember_factory(factory: Factory) -> str:
    """The import path of ``factory``, which this process then builds without importing
    (a function defined in a notebook or in ``__main__``)."""
    path = f"{factory.__module__}:{factory.__qualname__}"
    _CALLABLES[path] = factory
    return path


def registered_path(name: str) -> str | None:
    return _REGISTERED.get(name.strip().lower().replace("_", "-"))


def import_factory(path: str) -> Factory:
    """The callable at ``module:qualname``, or one line saying why it cannot be had."""
    if path in _CALLABLES:
        return _CALLABLES[path]
    module_name, _, qualname = path.partition(":")
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.append(here)  # a module in the current folder, as `python -m` finds it
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # an ImportError, or whatever the module raises on import
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"model factory '{path}': cannot import {module_name} ({reason}); make the module "
            "importable here (in the current folder, installed, or its folder on PYTHONPATH)"
        ) from None
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"model factory '{path}': {module_name} has no {qualname}")
    if not callable(target):
        raise ConfigError(f"model factory '{path}': {qualname} is not a function or class")
    return target


def check_factory_args(path: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` if the factory accepts them as keywords (after in_shape, num_classes)."""
    factory = import_factory(path)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return dict(args)
    parameters = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(args)
    named = {p.name for p in parameters[2:] if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    for key in args:
        if key not in named:
            allowed = ", ".join(sorted(named)) or "none"
            raise ConfigError(
                f"model factory '{path}': unknown argument '{key}'; allowed: {allowed}"
            )
    return dict(args)


def build_from_factory(
    path: str, in_shape: tuple[int, int, int], num_classes: int, args: Mapping[str, Any]
) -> nn.Module:
    model = import_factory(path)(in_shape, num_classes, **dict(args))
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model factory '{path}' returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
