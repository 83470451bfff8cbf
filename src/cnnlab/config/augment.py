"""The augmentation spec: what the command line, config.json and checkpoints carry.

Torch-free: a setting is validated without importing the ops that apply it
(:mod:`cnnlab.data.augment`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from cnnlab.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# The spec: what the command line, config.json and checkpoints carry


@dataclass(frozen=True)
class _Rule:
    """How one spec op is written, what it means and which values it takes."""

    usage: str
    meaning: str
    domain: str
    accepts: Callable[[float], bool]
    whole: bool = False
    bare: float | None = None  # the value of the op written without '=value'
    flag: bool = False  # written bare only, e.g. `nearest`

    def check(self, op: str, value: object) -> float | int:
        """The value as the op's number type, or ConfigError naming the op and its domain."""
        number = _as_number(value)
        if number is None or not self.accepts(number) or (self.whole and not number.is_integer()):
            raise ConfigError(f"augment: {op}={value} is invalid; {self.usage} takes {self.domain}")
        return int(number) if self.whole else number


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):  # bool is an int; True must not read as 1
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


# In the order Augment applies them, which is also the order to_string writes.
_RULES: dict[str, _Rule] = {
    "stroke": _Rule(
        "stroke=p", "gray images only: with probability p a thicker or thinner pen",
        "0 < p <= 1", lambda v: 0 < v <= 1,
    ),
    "recolor": _Rule(
        "recolor[=p_invert]", "random colours for gray digits, p_invert default 0.5",
        "0 <= p_invert <= 1", lambda v: 0 <= v <= 1, bare=0.5,
    ),
    "gray": _Rule(
        "gray=p", "with recolor: probability a gray image stays gray",
        "0 <= p < 1", lambda v: 0 <= v < 1,
    ),
    "texture": _Rule(
        "texture=amp", "with recolor: textured noisy background of amplitude up to amp",
        "0 < amp <= 1", lambda v: 0 < v <= 1,
    ),
    "crop": _Rule(
        "crop=min_scale", "random resized crop of area min_scale..1",
        "0 < min_scale < 1", lambda v: 0 < v < 1,
    ),
    "rotate": _Rule(
        "rotate=deg", "rotate by up to ±deg degrees",
        "0 < deg <= 180", lambda v: 0 < v <= 180,
    ),
    "translate": _Rule(
        "translate=frac", "shift by up to frac of the size",
        "0 < frac < 1", lambda v: 0 < v < 1,
    ),
    "slant": _Rule(
        "slant=k", "shear x by up to ±k (0.3 leans strokes about 17 degrees)",
        "0 < k <= 1", lambda v: 0 < v <= 1,
    ),
    "elastic": _Rule(
        "elastic=px", "elastic deformation: smooth random moves of up to about px pixels",
        "0 < px <= 8", lambda v: 0 < v <= 8,
    ),
    "pad": _Rule(
        "pad=px", "reflect-pad px then random crop back",
        "a whole number px >= 1", lambda v: v >= 1, whole=True,
    ),
    "flip": _Rule(
        "flip[=p]", "mirror left-right with probability p, default 0.5",
        "0 < p <= 1", lambda v: 0 < v <= 1, bare=0.5,
    ),
    "blur": _Rule(
        "blur=sigma", "Gaussian blur, sigma uniform in 0..sigma px (with recolor: painted images only)",
        "0 < sigma <= 3", lambda v: 0 < v <= 3,
    ),
    "lowres": _Rule(
        "lowres=p", "with probability p shrink to 35-70% and scale back up",
        "0 < p <= 1", lambda v: 0 < v <= 1,
    ),
    "cutout": _Rule(
        "cutout=px", "zero a random px square",
        "a whole number px >= 1", lambda v: v >= 1, whole=True,
    ),
    "nearest": _Rule(
        "nearest", "nearest-neighbour instead of bilinear resampling for crop/rotate/translate",
        "no value", lambda v: v == 1, whole=True, bare=1, flag=True,
    ),
}  # fmt: skip

_VALID = "; ".join(f"{rule.usage} ({rule.meaning})" for rule in _RULES.values())


def augment_op_names() -> list[str]:
    """Every spec op, in application order."""
    return list(_RULES)


class AugmentSpec(BaseModel):
    """Which augmentations to apply and their strengths; ``None`` = off. Frozen, JSON-safe.

    Build one with :func:`parse_augment`; ``to_string()`` gives the canonical command-line
    form and parses back to an equal spec.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stroke: float | None = None
    recolor: float | None = None
    gray: float | None = None
    texture: float | None = None
    crop: float | None = None
    rotate: float | None = None
    translate: float | None = None
    slant: float | None = None
    elastic: float | None = None
    pad: int | None = None
    flip: float | None = None
    blur: float | None = None
    lowres: float | None = None
    cutout: int | None = None
    nearest: int | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _in_domain(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return None
        assert info.field_name is not None
        return _RULES[info.field_name].check(info.field_name, value)

    @model_validator(mode="after")
    def _recolor_options_need_recolor(self) -> AugmentSpec:
        for name in ("gray", "texture"):
            value = getattr(self, name)
            if value is not None and self.recolor is None:
                raise ConfigError(
                    f"augment: {name}={_format_number(value)} only works with recolor; "
                    f"add recolor (e.g. 'recolor,{name}={_format_number(value)}') or drop {name}"
                )
        return self

    def to_string(self) -> str:
        """Canonical form, e.g. ``'crop=0.8,rotate=20,translate=0.1'``; ``'none'`` when empty."""
        parts = [
            name if _RULES[name].flag else f"{name}={_format_number(value)}"
            for name in _RULES
            if (value := getattr(self, name)) is not None
        ]
        return ",".join(parts) or "none"

    def __str__(self) -> str:
        return self.to_string()


def _format_number(value: float) -> str:
    # repr round-trips floats exactly; whole values read better without '.0'.
    return str(int(value)) if float(value).is_integer() else repr(value)


def _unknown(op: str) -> ConfigError:
    return ConfigError(f"augment: unknown op {op!r}; valid: {_VALID}; or none")


def _parse_text(text: str) -> dict[str, object]:
    stripped = text.strip()
    if stripped in ("", "none"):
        return {}
    values: dict[str, object] = {}
    for item in stripped.split(","):
        op, has_value, value = (part.strip() for part in item.partition("="))
        if not op:
            raise ConfigError(f"augment: empty op in {text!r}; write ops separated by commas")
        if op == "none":
            raise ConfigError(f"augment: 'none' cannot be combined with other ops in {text!r}")
        rule = _RULES.get(op)
        if rule is None:
            raise _unknown(op)
        if op in values:
            raise ConfigError(f"augment: {op} given twice in {text!r}")
        if not has_value:
            if rule.bare is None:
                raise ConfigError(f"augment: {op} needs a value: {rule.usage} ({rule.meaning})")
            values[op] = rule.bare
        else:
            values[op] = value
    return values


def _parse_table(table: Mapping[object, object]) -> dict[str, object]:
    values: dict[str, object] = {}
    for op, value in table.items():
        rule = _RULES.get(op) if isinstance(op, str) else None
        if rule is None:
            raise _unknown(str(op))
        if isinstance(value, bool) and rule.bare is not None:
            # TOML's `flip = true` means the default strength; `false` means off.
            if value:
                values[op] = rule.bare
        elif value is not None:
            values[op] = value
    return values


def parse_augment(spec: str | Mapping[str, object] | AugmentSpec | None) -> AugmentSpec:
    """Parse ``'rotate=20,translate=0.1,crop=0.8'``, a TOML table or an existing spec.

    Grammar: comma-separated ops, each ``name`` or ``name=value``: ``flip[=p]``,
    ``translate=frac``, ``pad=px``, ``rotate=deg``, ``crop=min_scale``, ``cutout=px``,
    ``blur=sigma``, ``recolor[=p_invert]`` with its options ``gray=p`` and ``texture=amp``,
    ``stroke=p``, ``slant=k``, ``elastic=px``, ``lowres=p`` (other hands' digits),
    ``nearest``; ``'none'`` or ``''`` for no augmentation. A table maps the same
    names to numbers (``true`` for a bare op, ``false`` for off). Raises ConfigError.
    """
    if spec is None:
        return AugmentSpec()
    if isinstance(spec, AugmentSpec):
        return spec
    if isinstance(spec, str):
        return AugmentSpec(**_parse_text(spec))
    if isinstance(spec, Mapping):
        return AugmentSpec(**_parse_table(spec))
    raise ConfigError(
        f"augment: expected a string like 'rotate=20,flip' or a table, got {type(spec).__name__}"
    )
