"""A study's verdicts in the terminal: the variants against the baseline, each claim, and
the summary sentences. `cnnlab run` ends with them and `cnnlab report` prints them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from cnnlab.cli.common import console

if TYPE_CHECKING:
    from cnnlab.analysis.numbers import StudyNumbers

COLORS = {"better": "green", "supported": "green", "worse": "red", "contradicted": "red"}
COLORS |= {"higher in B": "green", "lower in B": "red"}


def verdict_markup(verdict: str) -> str:
    quiet = verdict.startswith(("within noise", "not supported"))
    color = COLORS.get(verdict, "dim" if quiet else "yellow")
    return f"[{color}]{escape(verdict)}[/{color}]"


def variants_table(analysis: StudyNumbers) -> Table:
    from cnnlab.analysis.tables import display_rows

    study = analysis.study
    p_label = "p (seq.)" if analysis.sequential else "p (Holm)"
    table = Table(title=f"{study.name} on {study.dataset}: final test accuracy")
    for label in ("variant", "runs", "mean ± std", "95% CI", "Δ vs baseline [CI]", p_label):
        # A long variant name folds onto the next line (a pipe is 80 columns) instead of
        # losing its end ("optimizer=sgd bat…") to an ellipsis.
        table.add_column(label, justify="left" if label == "variant" else "right",
                         overflow="fold" if label == "variant" else "ellipsis")  # fmt: skip
    table.add_column("verdict", no_wrap=True)  # "within noise" whole, even in 80 columns
    for row in display_rows(analysis):
        table.add_row(
            row["variant"], row["runs"], row["acc"], row["ci"], row["diff"], row["p_holm"],
            verdict_markup(row["verdict"]),
        )  # fmt: skip
    return table


def factorial_table(analysis: StudyNumbers) -> Table | None:
    from cnnlab.analysis.factorial_numbers import anova_rows

    f = analysis.factorial
    if f is None or f.anova is None:
        return None
    table = Table(title=f"analysis of variance: {' x '.join(f.factors)} (seeds as replicates)")
    for label in ("effect", "df", "F", "p"):
        table.add_column(label, justify="left" if label == "effect" else "right")
    for r in anova_rows(f):
        table.add_row(r["effect"], r["df"], r["f"], r["p"])
    return table


def print_verdicts(analysis: StudyNumbers) -> None:
    """The variants table, the factorial's, a line per claim, the summary sentences and the
    warnings."""
    console.print(variants_table(analysis))
    if (table := factorial_table(analysis)) is not None:
        console.print(table)
    for c in analysis.claims:
        console.print(
            f"claim: {escape(c.claim.says)}: {verdict_markup(c.verdict)}. {escape(c.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    for sentence in analysis.summary:
        console.print(f"- {escape(sentence)}", highlight=False, soft_wrap=True)
    for warning in analysis.warnings:
        console.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False, soft_wrap=True)
