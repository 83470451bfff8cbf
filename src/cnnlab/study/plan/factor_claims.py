"""Main-effect claims (``factor = "batch_norm", better = "true", than = "false"``) bound
to a study's grid: the factor must be a [grid] key (or ``variant``, when several
[[variant]]s cross the grid) and the levels its values; the claim then names every grid
point at either level, with the level of each."""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.claims.claim import Claim
from cnnlab.config.problems import Problems
from cnnlab.config.suggest import did_you_mean
from cnnlab.study.plan.study_plan import Variant


def level_of(variant: Variant, factor: str) -> str | None:
    return variant.base if factor == "variant" else variant.point.get(factor)


def bind_factor_claims(
    claims: Sequence[Claim], variants: Sequence[Variant], problems: Problems
) -> list[Claim]:
    """``claims`` with each main-effect claim's variants found, or a problem line for it."""
    factors = list(dict.fromkeys(k for v in variants for k in v.point))
    if len({v.base for v in variants if v.point}) > 1:
        factors.append("variant")
    out = []
    for i, claim in enumerate(claims):
        if claim.factor is None:
            out.append(claim)
            continue
        label = f"claim '{claim.says[:40]}'"
        if claim.factor not in factors:
            keys = ", ".join(factors) or "none (the study has no [grid])"
            problems.add(
                f"{label}: factor '{claim.factor}' is not a [grid] key"
                f"{did_you_mean(claim.factor, factors)}; grid keys: {keys}",
                "[[claim]]", i, "factor",
            )  # fmt: skip
            continue
        values = list(dict.fromkeys(level_of(v, claim.factor) or "" for v in variants))
        missing = [x for x in claim.levels if x not in values]
        if missing:
            problems.add(
                f"{label}: '{claim.factor}' has no value '{missing[0]}'; its values: "
                f"{', '.join(values)}",
                "[[claim]]", i, "factor",
            )  # fmt: skip
            continue
        members = [v for v in variants if level_of(v, claim.factor) in claim.levels]
        at = tuple(level_of(v, claim.factor) or "" for v in members)
        out.append(claim.model_copy(update={"variants": tuple(v.name for v in members), "at": at}))
    return out
