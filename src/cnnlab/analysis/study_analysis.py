"""From a study's results to every number of its report (:mod:`cnnlab.analysis.numbers`),
with its summary sentences and warnings (:mod:`cnnlab.analysis.prose`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import stats
from cnnlab.analysis import settings as settings_diff
from cnnlab.analysis.factorial_numbers import factorial_numbers
from cnnlab.analysis.numbers import (
    CURVE_KEYS,
    Curve,
    EpochCounts,
    RunCounts,
    Sample,
    StudyInfo,
    StudyNumbers,
    VariantNumbers,
)
from cnnlab.analysis.prose import summarize
from cnnlab.analysis.search_numbers import search_numbers
from cnnlab.analysis.selection import best_variant
from cnnlab.analysis.verdict_family import family_judgement
from cnnlab.records import EpochRow
from cnnlab.stats.improvement import improvement
from cnnlab.stats.power import Power, powers_against
from cnnlab.study.store.results import RunResult, StudyResults
from cnnlab.study.store.run_table import RunRow


def variant_names(results: StudyResults) -> list[str]:
    names = list(results.variants)
    for run in results.runs:
        if run.variant not in names:
            names.append(run.variant)
    return names


def done_runs(results: StudyResults, variant: str) -> list[RunResult]:
    return [r for r in results.runs_of(variant, "done") if r.summary is not None]


def settings_of(results: StudyResults, variant: str | None) -> dict[str, Any] | None:
    """The variant's settings without the seed (its first run that has them)."""
    known = [r.settings for r in results.runs if r.variant == variant and r.settings]
    return known[0] if known else None


def _column(history: list[EpochRow], key: str) -> list[float | None]:
    return [row.get(key) for row in history]


def _analyze_variant(
    results: StudyResults,
    name: str,
    comparison: stats.Comparison | None,
    target: float | None,
    confidence: float,
    base_finals: list[float],
    power: Power | None,
    base_settings: dict[str, Any] | None,
) -> VariantNumbers:
    all_runs = [r for r in results.runs if r.variant == name]
    done = done_runs(results, name)
    summaries = [r.summary for r in done if r.summary is not None]
    finals = [s.final.test_acc for s in summaries]
    gaps = [
        s.final.train_acc - s.final.test_acc for s in summaries if s.final.train_acc is not None
    ]
    histories = [r.history for r in done if r.history]
    curves: dict[str, Curve] = {}
    axis: list[int] = []
    for key in CURVE_KEYS:
        cols = [_column(h, key) for h in histories]
        if any(v is not None for c in cols for v in c):
            axis, mean, std, counts = stats.mean_curve(cols)
            curves[key] = Curve(mean, std, counts)
    ttt = None
    # Runs that evaluated the test split at the end only cannot say when they got there.
    every_epoch = all(row.test_acc is not None for h in histories for row in h)
    if target is not None and histories and every_epoch:
        ttt = stats.time_to_target(
            [_column(h, "test_acc") for h in histories],
            [_column(h, "wall_seconds") for h in histories],
            target,
        )
    by_domain: dict[str, list[float]] = {}
    for s in summaries:
        for domain, acc in (s.final.test_acc_by_domain or {}).items():
            by_domain.setdefault(domain, []).append(acc)
    configs = [r.config for r in all_runs if r.config]
    first = summaries[0] if summaries else None
    return VariantNumbers(
        name=name,
        is_baseline=name == results.baseline,
        model=configs[0].get("model") if configs else None,
        params=None if first is None else first.params,
        macs_per_image=None if first is None else first.macs_per_image,
        epochs=EpochCounts(
            configured=configs[0].get("epochs") if configs else None,
            run_mean=float(np.mean([s.epochs for s in summaries])) if summaries else None,
        ),
        runs=RunCounts(
            total=len(all_runs),
            done=len(done),
            failed=sum(r.status == "failed" for r in all_runs),
            unfinished=sum(r.status in ("pending", "running", "interrupted") for r in all_runs),
        ),
        seeds_done=[r.seed for r in done],
        final_test_acc=Sample(stats.describe(finals, confidence, (0.0, 1.0)), finals),
        vs_baseline=comparison,
        improvement=None
        if name == results.baseline
        else improvement(finals, base_finals, confidence),
        power=power,
        final_test_acc_by_domain={
            domain: Sample(stats.describe(values, confidence, (0.0, 1.0)), values)
            for domain, values in by_domain.items()
        },
        best_test_acc_optimistic=stats.describe(
            [s.best_test_acc_optimistic for s in summaries], confidence, (0.0, 1.0)
        ),
        final_test_loss=stats.describe([s.final.test_loss for s in summaries], confidence),
        train_test_gap=stats.describe(gaps, confidence),
        seconds_per_run=stats.describe([s.wall_seconds for s in summaries], confidence),
        images_per_s=stats.describe([s.images_per_s for s in summaries], confidence).mean,
        time_to_baseline=ttt,
        settings_vs_baseline=[]
        if name == results.baseline or base_settings is None
        else settings_diff.differences(base_settings, settings_of(results, name)),
        epochs_axis=axis,
        curves=curves,
    )


def epoch_note(family: dict[str, Any]) -> str:
    """How a family of variants that differ only in epochs was trained."""
    names = ", ".join(f"'{v}'" for v in family["variants"])
    if family["one_run"]:
        return (
            f"{names} differ only in epochs: each seed trained once, to the longest, with a "
            "checkpoint kept at each shorter variant's last epoch, and the shorter variants are "
            "read from it (their schedule does not depend on the length, so these are exactly "
            "the numbers separate runs give); their trend tests pair the variants by seed."
        )
    return (
        f"{names} differ only in epochs but were trained separately: "
        f"{family['why_separate']}, so a shorter run is not the start of a longer one."
    )


def analyze(
    results: StudyResults, alpha: float = stats.ALPHA, confidence: float = stats.CONFIDENCE
) -> StudyNumbers:
    """Every number of the report, with its summary sentences and warnings."""
    names = variant_names(results)
    finals = {
        v: [s.summary.final.test_acc for s in done_runs(results, v) if s.summary] for v in names
    }
    baseline = results.baseline if results.baseline in names else None
    # One family: the claims and the comparisons, looked at once or look by look.
    claims, comparisons, family_note = family_judgement(results, names, baseline, alpha)
    target = stats.describe(finals[baseline]).mean if baseline else None
    powers = powers_against(finals, baseline, alpha) if baseline else {}
    base_finals = finals[baseline] if baseline else []
    base_settings = settings_of(results, baseline) if baseline else None
    variants = [
        _analyze_variant(
            results,
            v,
            comparisons.get(v),
            target,
            confidence,
            base_finals,
            powers.get(v),
            base_settings,
        )
        for v in names
    ]
    with_runs = [v for v in variants if v.final_test_acc.mean is not None]
    best, chosen_by = best_variant(
        {v.name: v.final_test_acc.mean for v in with_runs},
        {v: [s.summary.final.val_acc for s in done_runs(results, v) if s.summary] for v in names},
    )
    numbers = StudyNumbers(
        study=StudyInfo(
            results.name,
            results.dataset,
            results.description,
            str(results.study_dir),
            results.file_path,
            results.file_text,
            results.options.get("epochs_scale"),
        ),
        baseline_settings=settings_diff.flatten(base_settings),
        claims=claims,
        sequential=family_note if results.sequential is not None else "",
        family_note=family_note,
        epoch_notes=[epoch_note(f) for f in results.epoch_families],
        factorial=factorial_numbers(results, finals),
        alpha=alpha,
        confidence=confidence,
        baseline=baseline,
        declared_baseline=results.baseline,
        best_variant=best,
        best_variant_by=chosen_by,
        variants=variants,
        # first-seen order: the dataset's own domain order
        domains=list(dict.fromkeys(d for v in variants for d in v.final_test_acc_by_domain)),
        runs=[RunRow.of(r) for r in results.runs],
        search=search_numbers(results, comparisons, baseline),
    )
    numbers.summary, numbers.warnings = summarize(numbers)
    return numbers
