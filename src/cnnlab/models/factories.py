"""Your own model: a factory given as ``"package.module:function"``, or registered by name.

A factory is any callable ``factory(in_shape, num_classes, **args) -> nn.Module`` with
``in_shape`` = (C, H, W). A callable whose first parameter is not ``in_shape`` but that
takes ``num_classes`` (an ``nn.Module`` class such as torchvision's and timm's models, or
``timm.create_model``) is called with ``num_classes=`` and its arguments; a class that
takes neither, with its arguments alone. Checkpoints record the import path (``module:qualname``) and
arguments, so `evaluate`, `predict` and `export` rebuild the model in another process,
provided the module imports there. ``register_model("name")`` gives a factory a short
name for the current process (models named in study files and flags); the checkpoint
still records the import path.

A model *object* given to ``cnnlab.train(model=...)`` trains as it is (a copy per run,
its weights as given), but no other process can rebuild it: cnnlab says so when it
trains, with the fix (pass its class or a factory from a module).
"""

from __future__ import annotations

import copy
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


def remember_instance(model: nn.Module) -> str:
    """A path for a model object: each build is a copy of it (weights as given). Only this
    process has it, as ``__main__`` code: rebuilding it elsewhere says so."""
    path = f"__main__:{type(model).__name__}_object_{id(model):x}"
    _CALLABLES[path] = lambda in_shape, num_classes, **args: copy.deepcopy(model)
    return path


def only_here(path: str) -> bool:
    """Whether a model at ``path`` can be rebuilt only by this process (defined in the
    script or notebook that runs, or an object)."""
    return path.partition(":")[0] == "__main__"


ONLY_HERE_FIX = (
    "move its code into a module (e.g. mymodels.py beside your script) and pass "
    "'mymodels:make' or the class, or predict from the same script"
)


def registered_path(name: str) -> str | None:
    return _REGISTERED.get(name.strip().lower().replace("_", "-"))


def import_factory(path: str) -> Factory:
    """The callable at ``module:qualname``, or one line saying why it cannot be had."""
    if path in _CALLABLES:
        return _CALLABLES[path]
    module_name, _, qualname = path.partition(":")
    if module_name == "__main__":
        raise ConfigError(
            f"model '{path}' was defined in the script or notebook that trained it, which "
            f"is not running here; {ONLY_HERE_FIX}"
        )
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


def _parameters(factory: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: its parameters are unknown
        return None


def takes_num_classes(factory: Callable[..., Any]) -> bool:
    parameters = _parameters(factory) or []
    return any(p.name == "num_classes" or p.kind is p.VAR_KEYWORD for p in parameters)


def takes_in_shape(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` follows the factory convention, ``(in_shape, num_classes,
    **args)``: its first parameter is ``in_shape``, or (a function) it takes no
    ``num_classes`` keyword. Otherwise it is called with ``num_classes=`` and its
    arguments, as torchvision's and timm's models and ``timm.create_model`` are."""
    parameters = _parameters(factory)
    if parameters is None:
        return not isinstance(factory, type)
    names = [p.name for p in parameters]
    if names[:1] == ["in_shape"]:
        return True
    keywords = "num_classes" in names or any(p.kind is p.VAR_KEYWORD for p in parameters)
    return not keywords and not isinstance(factory, type)


def check_factory_args(path: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` if the factory accepts them as keywords (after in_shape, num_classes)."""
    factory = import_factory(path)
    parameters = _parameters(factory)
    if parameters is None or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(args)
    skip = 2 if takes_in_shape(factory) else 0
    named = {p.name for p in parameters[skip:] if p.kind is not inspect.Parameter.VAR_POSITIONAL}
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
    factory = import_factory(path)
    if takes_in_shape(factory):
        model = factory(in_shape, num_classes, **dict(args))
    elif "num_classes" in args or not takes_num_classes(factory):
        model = factory(**dict(args))
    else:
        model = factory(num_classes=num_classes, **dict(args))
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model factory '{path}' returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
