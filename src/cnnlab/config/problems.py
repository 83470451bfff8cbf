"""Validation problems as lines a person can act on: the key, the bad value, what is
allowed, and a "did you mean" for a misspelt key or choice."""

from __future__ import annotations

import re
from collections.abc import Sequence
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


def describe_error(err: dict[str, Any], where: str, root: type[BaseModel]) -> str:
    """One pydantic error (an item of ``exc.errors()`` of validating ``root``) as one line
    starting with ``where``."""
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
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
        return f"{where}: {key} = {err['input']!r} is not allowed{hint}; use one of {expected}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if not key:  # a rule across settings
        return f"{where}: {message}"
    return f"{where}: {key} = {err.get('input')!r}: {message}"


def describe_errors(exc: ValidationError, where: str, root: type[BaseModel]) -> list[str]:
    """Every problem pydantic found, one line each."""
    return [describe_error(dict(err), where, root) for err in exc.errors()]
