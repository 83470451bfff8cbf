"""The ``[search]`` table of a study file: what to search, how, and how to confirm it.

    [search]
    trials = 20
    sampler = "tpe"          # tpe | random | grid | cmaes
    seed = 0                 # the sampler's
    pruner = "median"        # median | hyperband | none
    objective = "val_acc"    # or val_loss; needs val_fraction > 0
    [search.space]
    "optimizer.lr" = { log_uniform = [1e-4, 1e-1] }
    batch_size = { choices = [64, 128, 256] }
    "model_args.keep_prob" = { uniform = [0.2, 1.0] }
    "optimizer.weight_decay" = { log_uniform = [1e-6, 1e-2], zero = true }
    epochs = { int = [2, 6] }
    [search.confirm]
    top = 3                  # the best trials, by their objective
    seeds = [0, 1, 2, 3, 4]  # default: the study's seeds

Each trial trains the baseline variant's settings with the trial's values, on a seed
no confirmation run uses (10000 + the sampler's seed); the best ``top`` and every [[variant]] are then trained over the
confirmation seeds and compared on the test set, once. Everything is checked against
the settings schema before anything runs; each mistake is one line naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from cnnlab.config.problems import Problems
from cnnlab.config.schema import TrainConfig
from cnnlab.study.plan.checks import setting_key_problem
from cnnlab.study.plan.expand import format_value, set_dotted

FORMS = ("log_uniform", "uniform", "int", "choices")
TABLE = "[search]"
Number = Annotated[float, Strict()]  # an int or float as TOML writes it; no bool, no text
Whole = Annotated[int, Strict()]
EXAMPLE = "e.g. { log_uniform = [1e-4, 1e-1] } or { choices = [64, 128] }"
TAKES = {"log_uniform": "[1e-4, 1e-1]", "uniform": "[1, 8]", "int": "[2, 8] (whole numbers)"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfirmSection(_Strict):
    top: int = Field(3, ge=1, le=20)
    seeds: list[Annotated[int, Field(ge=0, lt=2**32)]] | None = Field(None, min_length=2)


class SearchSection(_Strict):
    trials: int = Field(ge=1, le=10_000)
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    seed: int = Field(0, ge=0, lt=2**32)
    pruner: Literal["median", "hyperband", "none"] = "median"
    objective: str = "val_acc"
    space: dict[str, dict[str, Any]] = Field(min_length=1)
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)


@dataclass(frozen=True)
class Dimension:
    key: str  # a dotted setting: "optimizer.lr", "batch_size", "model_args.keep_prob"
    form: str  # one of FORMS
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    zero: bool = False  # log_uniform that may also be exactly 0 (off)

    def values_to_check(self) -> list[Any]:
        """Values that must each make a valid config: the bounds, or every choice."""
        if self.form == "choices":
            return list(self.choices)
        if self.form == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high] + ([0.0] if self.zero else [])


@dataclass(frozen=True)
class SearchSpec:
    trials: int
    sampler: str
    seed: int
    pruner: str
    objective: str  # "val_acc" (maximised) or "val_loss" (minimised)
    space: tuple[Dimension, ...]
    confirm_top: int
    confirm_seeds: tuple[int, ...] | None

    @property
    def maximize(self) -> bool:
        return self.objective == "val_acc"

    def describe(self, params: dict[str, Any]) -> str:
        """ "lr=0.0021, batch_size=128": a trial's values, as variant names show them."""
        return ", ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in params.items())


class DimensionTable(_Strict):
    """One key of [search.space] as written: exactly one form, with its values."""

    log_uniform: tuple[Number, Number] | None = None
    uniform: tuple[Number, Number] | None = None
    whole: tuple[Whole, Whole] | None = Field(None, alias="int")
    choices: list[Any] | None = Field(None, min_length=1)
    zero: Annotated[bool, Strict()] = False

    def given(self) -> dict[str, Any]:
        """The forms written, with their values (``int`` by its own name)."""
        values = {"log_uniform": self.log_uniform, "uniform": self.uniform, "int": self.whole}
        values["choices"] = self.choices
        return {form: value for form, value in values.items() if value is not None}

    @model_validator(mode="after")
    def _checked(self) -> DimensionTable:
        given = self.given()
        if len(given) != 1:
            raise ValueError(f"needs exactly one of {', '.join(FORMS)} ({EXAMPLE})")
        ((form, value),) = given.items()
        if self.zero and form != "log_uniform":
            raise ValueError("zero = true goes with log_uniform only (it adds the value 0)")
        if form == "choices":
            if len({format_value(v) for v in value}) != len(value):
                raise ValueError("choices lists a value twice")
            return self
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{form} = [{low}, {high}]: low must be below high")
        if form == "log_uniform" and low <= 0:
            raise ValueError("log_uniform needs low > 0 (add zero = true to also try 0)")
        return self

    def dimension(self, key: str) -> Dimension:
        ((form, value),) = self.given().items()
        if form == "choices":
            return Dimension(key, form, choices=tuple(value))
        return Dimension(key, form, low=float(value[0]), high=float(value[1]), zero=self.zero)


def _dimension(key: str, raw: Any, add: Any) -> Dimension | None:
    try:
        return DimensionTable.model_validate(raw).dimension(key)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
            add(f"'{key}' {message}" if message.startswith("needs") else f"'{key}': {message}")
        elif field == "choices":
            add(f"'{key}': choices must be a non-empty list, e.g. choices = [64, 128, 256]")
        elif field in TAKES:
            add(f"'{key}': {field} takes [low, high], e.g. {field} = {TAKES[field]}")
        else:
            add(f"'{key}' needs exactly one of {', '.join(FORMS)} ({EXAMPLE})")
        return None


def _value_problem(base: dict[str, Any], key: str, value: Any) -> str | None:
    """Why the baseline with ``key`` = ``value`` is not a valid run, or None."""
    from cnnlab.errors import CnnlabError
    from cnnlab.models.registry import resolve_model

    try:
        cfg = TrainConfig.model_validate(set_dotted(base, key, value))
        if key.startswith("model_args."):
            resolve_model(cfg.model, cfg.model_args)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    except CnnlabError as exc:
        return str(exc)
    return None


def parse_search(
    raw: dict[str, Any] | None, base: dict[str, Any], problems: Problems
) -> SearchSpec | None:
    """The [search] table checked against the settings schema, with ``base`` (the baseline
    variant's settings) as the point every trial changes; None without a [search]."""
    if raw is None:
        return None

    def add(message: str, key: str = "") -> None:
        problems.add(f"{TABLE}: {message}", TABLE, 0, key)

    try:
        section = SearchSection.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            allowed = ", ".join(SearchSection.model_fields)
            if err["type"] == "extra_forbidden":
                add(
                    f"unknown key '{loc}'; allowed: {allowed} (and [search.confirm] top, seeds)",
                    loc,
                )
            elif err["type"] == "missing":
                add(f"missing '{loc}', e.g. trials = 20 and a [search.space] table", loc)
            else:
                add(f"{loc} = {err.get('input')!r}: {err['msg']}", loc)
        return None
    if section.objective not in ("val_acc", "val_loss"):
        if section.objective.startswith("test"):
            add(
                f"objective '{section.objective}' would choose on the test set, which then no "
                "longer measures the winner honestly; use val_acc or val_loss (val_fraction > 0)",
                "objective",
            )
        else:
            add(f"objective '{section.objective}': use val_acc or val_loss", "objective")
    if not float(base.get("val_fraction") or 0) > 0:
        add(
            "the search chooses on a validation split: set val_fraction (e.g. 0.1) in "
            "[defaults] or the baseline variant",
            "objective",
        )
    dims = []
    for key, spec in section.space.items():
        problem = setting_key_problem(key)
        if problem is not None:
            add(f"[search.space]: {problem}", key)
            continue
        if key.split(".")[0] in ("seed", "dataset"):
            add(f"[search.space]: '{key}' cannot be searched", key)
            continue
        dim = _dimension(key, spec, lambda m, k=key: add(f"[search.space]: {m}", k))
        if dim is None:
            continue
        for value in dim.values_to_check():
            problem = _value_problem(base, key, value)
            if problem is not None:
                add(f"[search.space]: '{key}' = {format_value(value)}: {problem}", key)
                break
        else:
            dims.append(dim)
    if section.sampler == "grid" and any(d.form != "choices" for d in dims):
        add("sampler 'grid' needs choices = [...] for every key of [search.space]", "sampler")
    if section.sampler == "cmaes" and any(d.form == "choices" for d in dims):
        add("sampler 'cmaes' searches numbers only; use tpe for choices", "sampler")
    return SearchSpec(
        trials=section.trials,
        sampler=section.sampler,
        seed=section.seed,
        pruner=section.pruner,
        objective=section.objective,
        space=tuple(dims),
        confirm_top=section.confirm.top,
        confirm_seeds=tuple(section.confirm.seeds) if section.confirm.seeds else None,
    )
