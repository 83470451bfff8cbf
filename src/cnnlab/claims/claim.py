"""``[[claim]]`` tables: what a study file asserts, in terms its runs can test.

A claim quotes someone's conclusion (``says``, with their figure in ``evidence``) and
states it in one of six forms over the study's variants (expanded names)::

    better = "LeNet-5", than = "MLP"            LeNet-5's accuracy is higher than MLP's
    worse = "no dropout", than = "dropout 0.5"  lower
    same = ["adam", "sgd"], margin = 0.3        no difference of 0.3 points or more
    increasing = ["5 epochs", "15 epochs", "30 epochs"]   rises along the list
    decreasing = ["lr 1e-3", "lr 1e-2", "lr 1e-1"]        falls along the list
    peak = "70 epochs", over = ["30 epochs", "50 epochs", "70 epochs", "90 epochs"]
                                                rises up to the peak, falls after it
    factor = "batch_norm", better = "true", than = "false"
                                                a main effect of a [grid] key: its level
                                                "true" beats "false" averaged over the
                                                grid's other settings

A table is validated by :class:`ClaimTable` (pydantic, as every other setting) into a
:class:`Claim`. The metric is the final test accuracy. Each mistake is one line naming
the claim; :mod:`cnnlab.claims.verdicts` gives the verdicts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cnnlab.config.problems import Problems
from cnnlab.config.suggest import did_you_mean

FORMS = ("better", "worse", "same", "increasing", "decreasing", "peak")
Form = Literal["better", "worse", "same", "increasing", "decreasing", "peak"]
KEYS = ("says", "evidence", *FORMS, "than", "margin", "over", "factor")
_PAIR = '{form} = "A" needs than = "B", both variant names'
_TREND = (
    '{form} = ["A", "B", "C", ...] names three or more variants in order '
    "(for two, say better or worse)"
)
_PEAK = 'peak = "B" needs over = ["A", "B", "C", ...], the variants in order'
_MARGIN = "same needs margin = the difference in points that would matter, e.g. margin = 0.3"
# What each key takes, said when a value is missing or of the wrong kind.
TAKES = {
    "says": 'needs says = "the conclusion, in words"',
    "evidence": 'evidence must be text, e.g. "one run: 99.18% -> 99.42%"',
    "better": _PAIR.format(form="better"),
    "worse": _PAIR.format(form="worse"),
    "than": _PAIR.format(form="better"),
    "same": 'same = ["A", "B"] names two variants',
    "margin": _MARGIN,
    "increasing": _TREND.format(form="increasing"),
    "decreasing": _TREND.format(form="decreasing"),
    "peak": _PEAK,
    "over": _PEAK,
    "factor": 'factor = "a [grid] key" with better = "one of its values", than = "another"',
}


class Claim(BaseModel):
    """A claim as the study tests it (and as the store keeps it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    says: str
    form: Form
    variants: tuple[str, ...]  # better/worse: (a, than); same: (a, b); a trend or peak: ordered
    evidence: str = ""
    peak: str | None = None
    margin: float | None = None  # same: in accuracy points
    # A main effect: the [grid] key (its label), the two levels compared, and the level of
    # the factor at each of ``variants`` (every grid point at either level).
    factor: str | None = None
    levels: tuple[str, ...] = ()
    at: tuple[str, ...] = ()


class ClaimTable(BaseModel):
    """One ``[[claim]]`` table as written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    says: str = Field(min_length=1)
    evidence: str = ""
    better: str | None = None
    worse: str | None = None
    than: str | None = None
    same: list[str] | None = Field(None, min_length=2, max_length=2)
    margin: float | None = Field(None, gt=0)
    increasing: list[str] | None = Field(None, min_length=3)
    decreasing: list[str] | None = Field(None, min_length=3)
    peak: str | None = None
    over: list[str] | None = Field(None, min_length=3)
    factor: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> ClaimTable:
        forms = [f for f in FORMS if getattr(self, f) is not None]
        if not self.says.strip():
            raise ValueError(TAKES["says"])
        if len(forms) != 1:
            has = f" (it has {', '.join(forms)})" if forms else ""
            raise ValueError(f"say what it asserts with exactly one of {', '.join(FORMS)}{has}")
        form = forms[0]
        for key, owners in (("than", ("better", "worse")), ("margin", ("same",))):
            if getattr(self, key) is not None and form not in owners:
                raise ValueError(f"{key} belongs to {' and '.join(owners)} claims only")
        if self.over is not None and form != "peak":
            raise ValueError("over belongs to peak claims only")
        if self.factor is not None and form not in ("better", "worse"):
            raise ValueError("factor goes with better or worse (and than): two of its values")
        if (form in ("better", "worse") and self.than is None) or (
            form == "peak" and self.over is None
        ):
            raise ValueError(TAKES[form])
        if form == "same" and self.margin is None:
            raise ValueError(_MARGIN)
        if form == "peak" and self.peak not in (self.over or [])[1:-1]:
            raise ValueError(f"the peak '{self.peak}' must be inside over, not at either end")
        if len(set(self.variants())) != len(self.variants()):
            raise ValueError("a variant is named twice")
        return self

    def form(self) -> str:
        return next(f for f in FORMS if getattr(self, f) is not None)

    def variants(self) -> list[str]:
        form = self.form()
        if form in ("better", "worse"):
            return [getattr(self, form), self.than or ""]
        return list(self.over if form == "peak" else getattr(self, form))

    def claim(self) -> Claim:
        if self.factor is not None:  # its variants are the grid's points, found by the study
            return Claim(
                says=self.says.strip(), form=self.form(), variants=(), evidence=self.evidence,  # type: ignore[arg-type]
                factor=self.factor, levels=tuple(self.variants()),
            )  # fmt: skip
        return Claim(
            says=self.says.strip(), form=self.form(), variants=tuple(self.variants()),  # type: ignore[arg-type]
            evidence=self.evidence, peak=self.peak, margin=self.margin,
        )  # fmt: skip


def _problem(err: Any) -> str:
    """One pydantic error of a [[claim]] table, in the words of the table."""
    key = str(err["loc"][0]) if err["loc"] else ""
    if err["type"] == "extra_forbidden":
        return f"unknown key '{key}'{did_you_mean(key, KEYS)}; allowed: {', '.join(KEYS)}"
    if err["type"] == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return TAKES.get(key, f"{key}: {err['msg']}")


def _claim(entry: Any, i: int, known: Sequence[str] | None) -> tuple[Claim | None, list[str]]:
    """One [[claim]] table: the claim, or the lines saying what is wrong with it."""
    if not isinstance(entry, dict):
        return None, [f"claim #{i + 1}: write each claim as a [[claim]] table"]
    says = entry.get("says")
    label = f"claim '{says[:40]}'" if isinstance(says, str) and says.strip() else f"claim #{i + 1}"
    try:
        claim = ClaimTable.model_validate(entry).claim()
    except ValidationError as exc:
        lines = dict.fromkeys(f"{label}: {_problem(err)}" for err in exc.errors())
        return None, list(lines)
    unknown = [name for name in claim.variants if known is not None and name not in known]
    if claim.factor is not None:
        unknown = []  # levels, not variants: checked against the grid by the study
    problems = [
        f"{label}: no variant '{name}'{did_you_mean(name, known or [])}; "
        f"variants: {', '.join(known or [])}"
        for name in unknown
    ]
    return (None, problems) if problems else (claim, [])


def parse_claims(entries: Any, known: Sequence[str] | None, problems: Problems) -> list[Claim]:
    """The [[claim]] tables of a study file, checked against its variant names (``None``:
    the names are not checked)."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.add("write each claim as a [[claim]] table (double brackets)")
        return []
    claims = []
    for i, entry in enumerate(entries):
        claim, lines = _claim(entry, i, known)
        for line in lines:
            problems.add(line, "[[claim]]", i)
        if claim is not None:
            claims.append(claim)
    return claims


def claims_of_text(text: str) -> list[Claim]:
    """The claims of a study file already run (its text, stored before plans were). A
    claim naming a variant this folder never ran (``--variants`` chose others) is kept, so
    the report can say it was not measured instead of leaving it out; a malformed one is
    left out."""
    try:
        entries = tomllib.loads(text).get("claim")
    except tomllib.TOMLDecodeError:
        return []
    return parse_claims(entries, None, Problems("", text)) if entries else []
