"""Validation problems as lines a person can act on: the key, the bad value, what is
allowed, and a "did you mean" for a misspelt key or choice."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from cnnlab.config.suggest import did_you_mean
from cnnlab.errors import ConfigError


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


@dataclass
class Problems:
    """The problems of one study file, with the lines they are on."""

    where: str  # the file, as the messages name it
    text: str  # its TOML, for line numbers
    lines: list[str] = field(default_factory=list)

    def add(self, message: str, table: str | None = None, index: int = 0, key: str = "") -> None:
        """``message`` about ``key`` of ``table`` ("[defaults]", "[[variant]]" with its
        0-based ``index``, "[grid]", "[study]")."""
        line = find_line(self.text, table, index, key) if table else None
        place = f" (line {line})" if line else ""
        full = f"{self.where}{place}: {message}"
        if full not in self.lines:  # the same problem met again (at each grid point) once
            self.lines.append(full)

    def raise_if_any(self) -> None:
        if len(self.lines) == 1:
            raise ConfigError(self.lines[0])
        if self.lines:
            listed = "\n".join(f"  {line}" for line in self.lines)
            raise ConfigError(f"{self.where}: {len(self.lines)} problems:\n{listed}")


_HEADER = re.compile(r"^\s*(\[\[?[^\]]+\]\]?)")


def find_line(text: str, table: str, index: int, key: str) -> int | None:
    """The 1-based line of ``key`` (its top-level part) in the ``index``-th ``table``, or of
    the table's header when the key is not written there; None when neither is found."""
    top = key.split(".")[0] if table != "[grid]" else key
    key_line = re.compile(rf'^\s*("{re.escape(top)}"|{re.escape(top)})\s*=')
    seen, header = -1, None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _HEADER.match(line)
        if match:
            inside = match.group(1).replace(" ", "") == table
            seen += inside
            if inside and seen == index:
                header = number
            elif header is not None:
                break
            continue
        if header is not None and top and key_line.match(line):
            return number
    return header
