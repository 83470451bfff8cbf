"""A study whose grid crosses two or more settings, read as a factorial: the analysis of
variance of its final test accuracies, seeds as replicates (:mod:`cnnlab.stats.factorial`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab.stats.factorial import Anova, Cell, anova
from cnnlab.study.store.results import StudyResults


@dataclass
class FactorialNumbers:
    factors: list[str]
    anova: Anova | None
    why_not: str = ""  # when there is no table
    cell_means: dict[str, float] = field(default_factory=dict)  # "sgd, true" -> mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "anova": None if self.anova is None else self.anova.to_dict(),
            "why_not": self.why_not,
            "cell_means": self.cell_means,
        }


def factorial_numbers(
    results: StudyResults, finals: dict[str, list[float]]
) -> FactorialNumbers | None:
    """None unless the study's grid crosses two or more factors."""
    factors = results.factors
    if not factors or len(factors["names"]) < 2:
        return None
    names, levels = list(factors["names"]), dict(factors["levels"])
    cells: dict[Cell, list[float]] = {}
    for variant, cell in factors["cells"].items():
        cells[tuple(cell)] = list(finals.get(variant, []))
    table = anova(cells, names, levels)
    means = {", ".join(c): sum(xs) / len(xs) for c, xs in cells.items() if xs}
    why = ""
    if table is None:
        counts = sorted({len(xs) for xs in cells.values()})
        why = (
            "the analysis of variance needs every grid point with the same number (two or "
            f"more) of finished runs; here they have {', '.join(map(str, counts))}"
        )
    return FactorialNumbers(names, table, why, means)


def anova_rows(f: FactorialNumbers) -> list[dict[str, str]]:
    """The table's rows: each effect, then the residual."""
    from cnnlab.stats.formatting import fmt_p

    if f.anova is None:
        return []
    rows = [
        {
            "effect": e.name,
            "df": str(e.df),
            "ss": f"{1e4 * e.ss:.3g}",  # in squared accuracy points
            "f": "—" if e.f is None else f"{e.f:.2f}",
            "p": fmt_p(e.p),
        }
        for e in f.anova.effects
    ]
    a = f.anova
    rows.append({"effect": "residual (seeds)", "df": str(a.residual_df),
                 "ss": f"{1e4 * a.residual_ms * a.residual_df:.3g}", "f": "", "p": ""})  # fmt: skip
    return rows


ANOVA_NOTE = (
    "Analysis of variance of the final test accuracy over the grid's settings, seeds as "
    "replicates: each main effect and interaction's sum of squares (in squared points), "
    "degrees of freedom, F against the variation between seeds, and p (not adjusted: the "
    "table describes; claims decide)."
)
