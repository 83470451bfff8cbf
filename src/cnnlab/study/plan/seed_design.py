"""A study's seeds: a fixed list, or seeds until decided.

``seeds = [0, 1, 2]`` runs every variant on those seeds. ``seeds = { start = 3, max = 12 }``
(or ``cnnlab run --until-decided``) runs ``start`` seeds, then looks at the claims and the
variant-vs-baseline comparisons (:mod:`cnnlab.claims.sequential_verdicts`) and gives more seeds to
the variants of what is still open, at looks fixed in advance (3, 5, 8, 12), up to
``max``. Each look's new seeds are a recorded round of the plan
(:mod:`cnnlab.study.plan.seed_rounds`).

Seed numbers: the listed ones (or ``first``, ``first + 1``, ... for a table), then the
smallest unused non-negative integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cnnlab.config.problems import Problems
from cnnlab.stats.sequential import SPENDING, SequentialDesign, look_schedule

DEFAULT_MAX = 12
EXAMPLE = "seeds = [0, 1, 2] or seeds = { start = 3, max = 12 }"


class SeedsTable(BaseModel):
    """``seeds = { start = 3, max = 12 }`` as written in [study]."""

    model_config = ConfigDict(extra="forbid", strict=True)

    start: int = Field(3, ge=2)  # seeds per variant at the first look
    max: int = Field(DEFAULT_MAX, ge=2, le=1000)  # at the last look, at most
    looks: list[int] | None = Field(None, min_length=1)  # instead of start and max
    spending: Literal["obrien-fleming", "pocock"] = "obrien-fleming"
    first: int = Field(0, ge=0, lt=2**32)  # the first seed number

    @model_validator(mode="after")
    def _consistent(self) -> SeedsTable:
        if self.looks is not None:
            if self.looks != sorted(set(self.looks)) or self.looks[0] < 2:
                raise ValueError("looks must be increasing seed counts from 2, e.g. [3, 6, 12]")
        elif self.max < self.start:
            raise ValueError(f"max ({self.max}) is below start ({self.start})")
        return self


@dataclass(frozen=True)
class SeedPlan:
    """The seeds to start with, and for seeds until decided the design and every seed the
    looks may add, in order."""

    start: list[int]
    design: SequentialDesign | None = None
    pool: tuple[int, ...] = ()  # every seed of the design, the start's first


def _more(seeds: list[int], count: int) -> list[int]:
    """``seeds`` then the smallest unused non-negative integers, ``count`` in all."""
    out, n = list(seeds), 0
    while len(out) < count:
        if n not in out:
            out.append(n)
        n += 1
    return out


def _table(raw: dict[str, Any], problems: Problems) -> SeedsTable | None:
    try:
        return SeedsTable.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            what = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                what = f"unknown key; allowed: {', '.join(SeedsTable.model_fields)}"
            elif err["type"] == "literal_error":
                what = f"use one of {', '.join(SPENDING)}"
            label = f"seeds.{key}" if key else "seeds"
            problems.add(f"[study]: {label}: {what} ({EXAMPLE})", "[study]", 0, "seeds")
        return None


def seed_plan(
    written: Any, given: Sequence[int] | None, until_decided: int | None, problems: Problems
) -> SeedPlan:
    """The seeds of a study: [study] ``written``, ``given`` by --seeds (the start), and
    ``until_decided``: --until-decided's maximum (None: as the file says)."""
    table = _table(written, problems) if isinstance(written, dict) else None
    if isinstance(written, dict) and table is None:
        return SeedPlan(list(given or [0]))
    listed = written if isinstance(written, list) else None
    if given is not None:
        start = list(given)
    elif table is not None:
        count = table.looks[0] if table.looks else table.start
        start = list(range(table.first, table.first + count))
    else:
        start = list(listed or [])
    if table is None and until_decided is None:
        return SeedPlan(start)
    maximum = until_decided or (table.looks[-1] if table and table.looks else table.max)  # type: ignore[union-attr]
    try:
        if table is not None and table.looks and until_decided is None:
            looks = tuple(table.looks)
            if looks[0] != len(start):
                raise ValueError(f"--seeds gives {len(start)} seeds but looks start at {looks[0]}")
        else:
            looks = look_schedule(len(start), max(maximum, len(start)))
    except ValueError as exc:
        problems.add(f"[study]: seeds: {exc}", "[study]", 0, "seeds")
        return SeedPlan(start)
    spending = table.spending if table is not None else "obrien-fleming"
    design = SequentialDesign(looks, spending=spending)
    return SeedPlan(start, design, tuple(_more(start, looks[-1])))
