"""Validation problems as lines a person can act on: the key, the bad value, what is
allowed, and a "did you mean" for a misspelt key or choice."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from cnnlab.config.suggest import did_you_mean


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel]:
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


# Pydantic's phrasing, in cnnlab's words (its messages start "Input should be ...").
_PHRASES = (
    ("Value error, ", ""),
    (
        "Input should be a valid integer, unable to parse string as an integer",
        "must be a whole number",
    ),
    ("Input should be a valid number, unable to parse string as a number", "must be a number"),
    ("Input should be a finite number", "must be a finite number (not inf or nan)"),
    ("Input should be", "must be"),
    ("Field required", "is required"),
    ("String should have", "must have"),
    ("List should have", "must have"),
    ("Tuple should have", "must have"),
)


def plain(message: str) -> str:
    for phrase, ours in _PHRASES:
        message = message.replace(phrase, ours)
    return message


def describe_error(
    err: dict[str, Any],
    where: str,
    root: type[BaseModel],
    label: Callable[[str], str] | None = None,
) -> str:
    """One pydantic error (an item of ``exc.errors()`` of validating ``root``) as one line
    starting with ``where``; ``label`` names a dotted key as the user wrote it (a flag)."""
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    shown = label(key) if label and key else key
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = list(_model_at(root, loc[:-1]).model_fields)
        return (
            f"{where}: unknown setting '{key}'{did_you_mean(loc[-1], allowed)}; "
            f"allowed: {', '.join(allowed)}"
        )
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        hint = did_you_mean(str(err["input"]), choices)
        return f"{where}: {shown} = {err['input']!r} is not allowed{hint}; use one of {expected}"
    message = plain(str(err["msg"]))
    if not key:  # a rule across settings
        return f"{where}: {message}"
    return f"{where}: {shown} = {err.get('input')!r}: {message}"


def describe_errors(
    exc: ValidationError,
    where: str,
    root: type[BaseModel],
    label: Callable[[str], str] | None = None,
) -> list[str]:
    """Every problem pydantic found, one line each."""
    return [describe_error(dict(err), where, root, label) for err in exc.errors()]
