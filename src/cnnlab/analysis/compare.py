"""`cnnlab compare`: the variants of two studies side by side.

For every variant name, each study's final test accuracy (mean, std, 95% CI)
and, where both studies ran it, Welch's test of B against A, Holm-adjusted
over those same-named pairs. "higher in B" / "lower in B" only when the
adjusted p is below alpha, as in the report.
"""

from __future__ import annotations

from typing import Any

from cnnlab.analysis import stats
from cnnlab.analysis.numbers import done_runs, json_safe, variant_names
from cnnlab.study.results import StudyResults

HIGHER = "higher in B"
LOWER = "lower in B"


def compare_studies(
    a: StudyResults,
    b: StudyResults,
    alpha: float = stats.ALPHA,
    confidence: float = stats.CONFIDENCE,
) -> dict[str, Any]:
    """Rows for the union of variant names (A's order, then B's new ones), JSON-ready."""
    names_a, names_b = variant_names(a), variant_names(b)
    names = names_a + [n for n in names_b if n not in names_a]
    finals_a = {v: [r.final_test_acc for r in done_runs(a, v)] for v in names_a}
    finals_b = {v: [r.final_test_acc for r in done_runs(b, v)] for v in names_b}
    shared = [n for n in names if n in finals_a and n in finals_b]
    tests = {n: stats.welch(finals_b[n], finals_a[n], confidence, (-1.0, 1.0)) for n in shared}
    adjusted = dict(
        zip(
            shared,
            stats.holm([None if tests[n] is None else tests[n].p for n in shared]),
            strict=True,
        )
    )
    rows = []
    for n in names:
        row: dict[str, Any] = {
            "variant": n,
            "a": stats.describe(finals_a[n], confidence, (0.0, 1.0)).to_dict()
            if n in finals_a
            else None,
            "b": stats.describe(finals_b[n], confidence, (0.0, 1.0)).to_dict()
            if n in finals_b
            else None,
            "b_minus_a": None,
        }
        if n in tests:
            w = tests[n]
            verdict = (
                stats.verdict_for(None if w is None else w.diff, adjusted[n], alpha)
                .replace(stats.BETTER, HIGHER)
                .replace(stats.WORSE, LOWER)
            )
            row["b_minus_a"] = {
                **({} if w is None else w.to_dict()),
                "p_holm": adjusted[n],
                "verdict": verdict,
            }
        rows.append(row)
    return json_safe(
        {
            "metric": "final test accuracy (last epoch)",
            "alpha": alpha,
            "confidence": confidence,
            "a": {"name": a.name, "dataset": a.dataset, "study_dir": str(a.study_dir)},
            "b": {"name": b.name, "dataset": b.dataset, "study_dir": str(b.study_dir)},
            "variants": rows,
        }
    )
