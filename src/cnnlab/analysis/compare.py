"""`cnnlab compare`: the variants of two studies side by side, only where that is fair.

Refused (a ConfigError naming the difference) unless ``allow_different_data``: the two
sides train or test on different datasets, test on different classes, or measure the
metric differently (test-time augmentation, averaged weights). Variants are paired by
their settings (the run identity without the seed), then by name, saying when one name
holds different settings on the two sides. A run on both sides (the same run id: one
folder copied before more seeds finished) is counted once, in A. For each pair, B's
final test accuracy against A's: Welch's test, Holm-adjusted over the pairs; "higher in
B" / "lower in B" only when the adjusted p is below alpha, as in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab import stats
from cnnlab.analysis import settings as settings_diff
from cnnlab.analysis.numbers import json_safe
from cnnlab.analysis.study_analysis import done_runs, settings_of, variant_names
from cnnlab.config.identity import canonical_json
from cnnlab.errors import ConfigError
from cnnlab.study.store.results import RunResult, StudyResults

HIGHER = "higher in B"
LOWER = "lower in B"
METRIC = "final test accuracy (last epoch)"


def measure_of(config: dict[str, Any]) -> str:
    """How a run's test accuracy was measured."""
    parts = [METRIC]
    if config.get("tta", "none") != "none":
        parts.append(f"with test-time augmentation {config['tta']}")
    if config.get("ema_decay") is not None:
        parts.append("of averaged (EMA) weights")
    return " ".join(parts)


def _side(results: StudyResults) -> dict[str, set[str]]:
    runs = [r for r in results.runs if r.config]
    return {
        "dataset": {str(r.config.get("dataset")) for r in runs} or {results.dataset},
        "classes": {", ".join(r.summary.classes) for r in runs if r.summary is not None},
        "metric": {measure_of(r.config) for r in runs} or {METRIC},
    }


def _words(values: set[str]) -> str:
    return " and ".join(sorted(values))


def data_differences(a: StudyResults, b: StudyResults) -> list[str]:
    """Why the two sides' accuracies are not on one footing ([] when they are)."""
    sa, sb = _side(a), _side(b)
    out = []
    if sa["dataset"] != sb["dataset"]:
        out.append(f"A is on {_words(sa['dataset'])}, B on {_words(sb['dataset'])}")
    elif sa["classes"] and sb["classes"] and sa["classes"] != sb["classes"]:
        out.append(
            f"the test splits differ: A's classes are {_words(sa['classes'])}, "
            f"B's {_words(sb['classes'])}"
        )
    if sa["metric"] != sb["metric"]:
        out.append(f"A measures {_words(sa['metric'])}, B {_words(sb['metric'])}")
    return out


@dataclass
class _Variant:
    name: str
    settings: dict[str, Any] | None
    runs: list[RunResult] = field(default_factory=list)

    @property
    def key(self) -> str:
        return canonical_json(self.settings)


def _variants(results: StudyResults) -> list[_Variant]:
    return [
        _Variant(name, settings_of(results, name), done_runs(results, name))
        for name in variant_names(results)
    ]


def _pairs(
    va: list[_Variant], vb: list[_Variant]
) -> list[tuple[_Variant | None, _Variant | None, str]]:
    """(A, B, how they were matched): by settings first, then by name, then unmatched."""
    pairs: list[tuple[_Variant | None, _Variant | None, str]] = []
    free_b = list(vb)
    matched_a: set[str] = set()
    for a in va:
        same = [b for b in free_b if a.settings is not None and b.key == a.key]
        if same:
            b = next((x for x in same if x.name == a.name), same[0])
            pairs.append((a, b, "settings"))
            free_b.remove(b)
            matched_a.add(a.name)
    for a in va:
        if a.name in matched_a:
            continue
        b = next((x for x in free_b if x.name == a.name), None)
        if b is not None:
            free_b.remove(b)
        pairs.append((a, b, "name" if b is not None else ""))
    pairs += [(None, b, "") for b in free_b]
    order = {v.name: i for i, v in enumerate(va)}
    return sorted(pairs, key=lambda p: order.get(p[0].name, len(order)) if p[0] else len(order))


def compare_studies(
    a: StudyResults,
    b: StudyResults,
    alpha: float = stats.ALPHA,
    confidence: float = stats.CONFIDENCE,
    allow_different_data: bool = False,
) -> dict[str, Any]:
    """Rows for every variant of either side (paired where they match), JSON-ready."""
    problems = data_differences(a, b)
    if problems and not allow_different_data:
        raise ConfigError(
            f"not comparable: {'; '.join(problems)}; accuracies on different data say nothing "
            "about the variants (pass --allow-different-data to compare anyway)"
        )
    pairs = _pairs(_variants(a), _variants(b))
    ids_a = {r.run_id for r in a.runs}
    samples: list[tuple[list[float], list[float], int]] = []
    for pa, pb, _ in pairs:
        runs_b = [] if pb is None else pb.runs
        kept_b = [r for r in runs_b if r.run_id not in ids_a]
        samples.append(
            (
                [] if pa is None else [r.final_test_acc for r in pa.runs],
                [r.final_test_acc for r in kept_b],
                len(runs_b) - len(kept_b),
            )
        )
    tests = [
        stats.welch(sb, sa, confidence, (-1.0, 1.0)) if pa and pb else None
        for (pa, pb, _), (sa, sb, _) in zip(pairs, samples, strict=True)
    ]
    adjusted = stats.holm([None if t is None else t.p for t in tests])
    rows, notes = [], list(problems)
    for (pa, pb, how), (sa, sb, shared), test, p_holm in zip(
        pairs, samples, tests, adjusted, strict=True
    ):
        name = (pa or pb).name  # type: ignore[union-attr]
        diffs = settings_diff.differences(pa.settings, pb.settings) if pa and pb else []
        if how == "settings" and pa and pb and pa.name != pb.name:
            name = f"{pa.name} = {pb.name}"
            notes.append(f"A's '{pa.name}' and B's '{pb.name}' have the same settings: paired")
        if how == "name" and diffs:
            notes.append(
                f"'{name}' has different settings in A and B: {settings_diff.describe(diffs)}"
            )
        if shared:
            notes.append(
                f"'{name}': {shared} run{'s are' if shared > 1 else ' is'} in both studies "
                "(same run id): counted once, in A"
            )
        row: dict[str, Any] = {
            "variant": name,
            "a_variant": None if pa is None else pa.name,
            "b_variant": None if pb is None else pb.name,
            "matched_by": how or None,
            "settings_differ": diffs,
            "shared_runs": shared,
            "a": stats.describe(sa, confidence, (0.0, 1.0)).to_dict() if pa else None,
            "b": stats.describe(sb, confidence, (0.0, 1.0)).to_dict() if pb else None,
            "b_minus_a": None,
        }
        if pa and pb:
            verdict = (
                stats.verdict_for(None if test is None else test.diff, p_holm, alpha)
                .replace(stats.BETTER, HIGHER)
                .replace(stats.WORSE, LOWER)
            )
            row["b_minus_a"] = {
                **({} if test is None else test.to_dict()),
                "p_holm": p_holm,
                "verdict": verdict,
            }
        rows.append(row)
    return json_safe(
        {
            "metric": METRIC,
            "alpha": alpha,
            "confidence": confidence,
            "a": {"name": a.name, "dataset": a.dataset, "study_dir": str(a.study_dir)},
            "b": {"name": b.name, "dataset": b.dataset, "study_dir": str(b.study_dir)},
            "different_data": problems,
            "notes": notes,
            "variants": rows,
        }
    )
