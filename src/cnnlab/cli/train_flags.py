"""The `cnnlab train` flags, generated from :class:`~cnnlab.config.schema.TrainConfig`.

Each setting is one flag: top-level ones by name (``batch_size`` -> ``--batch-size``),
nested ones by their own name (``optimizer.lr`` -> ``--lr``), the nested ``name`` by
its table (``optimizer.name`` -> ``--optimizer``). Types, choices, help and the defaults
shown come from the schema, so a new setting is a flag without touching this file.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from cnnlab.config.schema import field_of, flag_of, setting_keys
from cnnlab.errors import CnnlabError

BY_HAND = ("model_args",)  # --model-arg KEY=VALUE, repeatable


def _plain(annotation: Any) -> Any:
    """``X | None`` -> X."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _plain_type(annotation: Any) -> Any:
    """``Annotated[int, ...]`` -> int."""
    args = get_args(annotation)
    return args[0] if args and get_origin(annotation) is typing.Annotated else annotation


def _default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if "(default" in (field.description or ""):  # the description says it already
        return ""
    if default is None:
        return " (default: off)"
    if default == "":
        return " (default: none)"
    if isinstance(default, tuple):
        return f" (default: {' '.join(map(str, default)) or 'none'})"
    if isinstance(default, bool):
        return f" (default: {'on' if default else 'off'})"
    return f" (default: {default})"


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of the schema, in schema order; unset flags stay None."""
    for key in setting_keys():
        if key in BY_HAND:
            continue
        field = field_of(key)
        kind = _plain(field.annotation)
        options: dict[str, Any] = {"dest": key, "default": None}
        name = key.partition(".")[2] or key
        options["help"] = (field.description or key) + _default_text(field)
        if get_origin(kind) is Literal:
            options["choices"] = list(get_args(kind))
        elif kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is tuple:
            parts = get_args(kind)
            many = parts[-1] is Ellipsis  # tuple[int, ...]: one or more
            options.update(
                nargs="+" if many else len(parts), type=_plain_type(parts[0]), metavar="X"
            )
        else:
            options["metavar"] = name.upper()
            if kind in (int, float):
                options["type"] = kind
        parser.add_argument(flag_of(key), **options)


def parse_key_values(items: Sequence[str], flag: str) -> dict[str, object]:
    """KEY=VALUE pairs; VALUE is read as a TOML value (true, 0.5, "text"), else as a string."""
    import tomllib

    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CnnlabError(f"{flag} '{item}' is not KEY=VALUE, e.g. {flag} batch_norm=true")
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw
    return out


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, nested the way the config file nests them."""
    values: dict[str, Any] = {}
    for key in setting_keys():
        value = getattr(args, key, None)
        if value is None:
            continue
        top, _, sub = key.partition(".")
        if sub:
            values.setdefault(top, {})[sub] = list(value) if isinstance(value, list) else value
        else:
            values[top] = value
    if getattr(args, "model_arg", None):
        values["model_args"] = parse_key_values(args.model_arg, "--model-arg")
    return values
