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

The metric is the final test accuracy. Each mistake is one line naming the claim;
:mod:`cnnlab.claims.verdicts` gives the verdicts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.config.problems import Problems
from cnnlab.config.suggest import did_you_mean

FORMS = ("better", "worse", "same", "increasing", "decreasing", "peak")
KEYS = ("says", "evidence", *FORMS, "than", "margin", "over")


@dataclass(frozen=True)
class Claim:
    says: str
    form: str  # one of FORMS
    variants: tuple[str, ...]  # better/worse: (a, than); same: (a, b); a trend or peak: ordered
    evidence: str = ""
    peak: str | None = None
    margin: float | None = None  # same: in accuracy points

    def to_dict(self) -> dict[str, Any]:
        return {
            "says": self.says,
            "form": self.form,
            "variants": list(self.variants),
            "evidence": self.evidence,
            "peak": self.peak,
            "margin": self.margin,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        return cls(
            says=d["says"],
            form=d["form"],
            variants=tuple(d["variants"]),
            evidence=d.get("evidence", ""),
            peak=d.get("peak"),
            margin=d.get("margin"),
        )


def _names(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _claim(entry: Any, i: int, known: Sequence[str] | None) -> tuple[Claim | None, list[str]]:
    """One [[claim]] table: the claim, or the lines saying what is wrong with it."""
    label = f"claim #{i + 1}"
    if not isinstance(entry, dict):
        return None, [f"{label}: write each claim as a [[claim]] table"]
    says = entry.get("says")
    if isinstance(says, str) and says.strip():
        label = f"claim '{says[:40]}'"
    problems = [f"{label}: unknown key '{k}'{did_you_mean(k, KEYS)}; allowed: {', '.join(KEYS)}"
                for k in entry if k not in KEYS]  # fmt: skip
    if not isinstance(says, str) or not says.strip():
        problems.append(f'{label}: needs says = "the conclusion, in words"')
    evidence = entry.get("evidence", "")
    if not isinstance(evidence, str):
        problems.append(f'{label}: evidence must be text, e.g. "one run: 99.18% -> 99.42%"')
    forms = [f for f in FORMS if f in entry]
    if len(forms) != 1:
        problems.append(
            f"{label}: say what it asserts with exactly one of {', '.join(FORMS)}"
            + (f" (it has {', '.join(forms)})" if forms else "")
        )
        return None, problems
    form = forms[0]
    variants: list[str] | None
    peak = margin = None
    if form in ("better", "worse"):
        a, than = entry[form], entry.get("than")
        variants = [a, than] if isinstance(a, str) and isinstance(than, str) else None
        if variants is None:
            problems.append(f'{label}: {form} = "A" needs than = "B", both variant names')
    elif form == "same":
        variants = _names(entry["same"])
        margin = entry.get("margin")
        if variants is None or len(variants) != 2:
            problems.append(f'{label}: same = ["A", "B"] names two variants')
            variants = None
        if not isinstance(margin, int | float) or isinstance(margin, bool) or margin <= 0:
            problems.append(
                f"{label}: same needs margin = the difference in points that would matter, "
                "e.g. margin = 0.3"
            )
    elif form in ("increasing", "decreasing"):
        variants = _names(entry[form])
        if variants is None or len(variants) < 3:
            problems.append(
                f'{label}: {form} = ["A", "B", "C", ...] names three or more variants in order '
                "(for two, say better or worse)"
            )
            variants = None
    else:  # peak
        peak, variants = entry["peak"], _names(entry.get("over"))
        if not isinstance(peak, str) or variants is None or len(variants) < 3:
            problems.append(
                f'{label}: peak = "B" needs over = ["A", "B", "C", ...], the variants in order'
            )
            variants = None
        elif peak not in variants[1:-1]:
            problems.append(f"{label}: the peak '{peak}' must be inside over, not at either end")
    if form != "same" and "margin" in entry:
        problems.append(f"{label}: margin belongs to same claims only")
    if form not in ("better", "worse") and "than" in entry:
        problems.append(f"{label}: than belongs to better and worse claims only")
    if form != "peak" and "over" in entry:
        problems.append(f"{label}: over belongs to peak claims only")
    for name in variants or []:
        if known is not None and name not in known:
            problems.append(
                f"{label}: no variant '{name}'{did_you_mean(name, known)}; "
                f"variants: {', '.join(known)}"
            )
    if variants and len(set(variants)) != len(variants):
        problems.append(f"{label}: a variant is named twice")
    if problems:
        return None, problems
    assert variants is not None
    return (
        Claim(
            says=str(says).strip(),
            form=form,
            variants=tuple(variants),
            evidence=str(evidence),
            peak=peak,
            margin=None if margin is None else float(margin),
        ),
        [],
    )


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
    """The claims of a study file already run (its text from the store). A claim naming a
    variant this folder never ran (``--variants`` chose others) is kept, so the report can
    say it was not measured instead of leaving it out; a malformed one is left out."""
    try:
        entries = tomllib.loads(text).get("claim")
    except tomllib.TOMLDecodeError:
        return []
    return parse_claims(entries, None, Problems("", text)) if entries else []
