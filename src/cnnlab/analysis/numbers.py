"""Every number of a study's report, typed (:func:`cnnlab.analysis.study_analysis.analyze`
turns ``StudyResults`` into them).

The metric compared is each run's FINAL test accuracy (the last epoch), the only figure
that does not peek at the test set. The best-epoch test accuracy is kept too, marked
optimistic. Whether a variant differs from the baseline is decided in
:mod:`cnnlab.stats` (Welch's t-test, Holm-adjusted, alpha 0.05). ``to_json()``
gives ``report.json``'s form (schema ``cnnlab-report/1``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import stats
from cnnlab.analysis.factorial_numbers import FactorialNumbers
from cnnlab.analysis.search_numbers import SearchNumbers
from cnnlab.analysis.selection import peeking_figures
from cnnlab.claims.verdicts import ClaimVerdict
from cnnlab.stats.improvement import Improvement
from cnnlab.stats.power import Power
from cnnlab.study.store.run_table import RunRow
from cnnlab.version import __version__

SCHEMA = "cnnlab-report/1"
CURVE_KEYS = ("train_loss", "test_loss", "train_acc", "test_acc")
METRIC = "final test accuracy (last epoch)"


def json_safe(value: Any) -> Any:
    """JSON-safe: nan/inf -> None, tuples -> lists, paths -> strings, numpy -> python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Sample:
    """One metric over a variant's seeds: its description and the per-seed values."""

    stats: stats.Description
    values: list[float]

    def __getattr__(self, name: str) -> Any:  # mean, std, ci_low, ... read through
        if name in ("stats", "values"):
            raise AttributeError(name)
        return getattr(self.stats, name)

    def to_json(self) -> dict[str, Any]:
        return {**self.stats.to_dict(), "values": self.values}


@dataclass
class RunCounts:
    total: int
    done: int
    failed: int
    unfinished: int  # pending, running or interrupted


@dataclass
class EpochCounts:
    configured: int | None
    run_mean: float | None  # below configured after early stopping


@dataclass
class Curve:
    """A metric per epoch over seeds: mean, sample std and how many runs reached the epoch."""

    mean: list[float | None]
    std: list[float | None]
    runs: list[int]


@dataclass
class VariantNumbers:
    name: str
    is_baseline: bool
    model: str | None
    params: int | None
    macs_per_image: int | None
    epochs: EpochCounts
    runs: RunCounts
    seeds_done: list[int]
    final_test_acc: Sample
    vs_baseline: stats.Comparison | None
    improvement: Improvement | None  # P(a run of this variant beats one of the baseline)
    power: Power | None  # what the test against the baseline could detect
    final_test_acc_by_domain: dict[str, Sample]
    best_test_acc_optimistic: stats.Description
    final_test_loss: stats.Description
    train_test_gap: stats.Description
    seconds_per_run: stats.Description
    images_per_s: float | None
    time_to_baseline: stats.TimeToTarget | None
    # The keys whose values differ from the baseline's: {"key", "a" (baseline), "b"}
    settings_vs_baseline: list[dict[str, Any]] = field(default_factory=list)
    epochs_axis: list[int] = field(default_factory=list)  # the curves' x values
    curves: dict[str, Curve] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        curves: dict[str, Any] = {k: asdict(c) for k, c in self.curves.items()}
        if self.curves:
            curves["epoch"] = self.epochs_axis
        return {
            "name": self.name,
            "is_baseline": self.is_baseline,
            "model": self.model,
            "params": self.params,
            "macs_per_image": self.macs_per_image,
            "epochs": asdict(self.epochs),
            "runs": asdict(self.runs),
            "seeds_done": self.seeds_done,
            "final_test_acc": self.final_test_acc.to_json(),
            "vs_baseline": None if self.vs_baseline is None else self.vs_baseline.to_dict(),
            "probability_of_improvement": None
            if self.improvement is None
            else self.improvement.to_dict(),
            "power": None if self.power is None else self.power.to_dict(),
            "final_test_acc_by_domain": {
                d: s.to_json() for d, s in self.final_test_acc_by_domain.items()
            },
            "best_test_acc_optimistic": self.best_test_acc_optimistic.to_dict(),
            "final_test_loss": self.final_test_loss.to_dict(),
            "train_test_gap": self.train_test_gap.to_dict(),
            "seconds_per_run": self.seconds_per_run.to_dict(),
            "images_per_s": self.images_per_s,
            "time_to_baseline": None
            if self.time_to_baseline is None
            else self.time_to_baseline.to_dict(),
            "settings_vs_baseline": self.settings_vs_baseline,
            "curves": curves,
        }


@dataclass
class StudyInfo:
    name: str
    dataset: str
    description: str
    study_dir: str
    file_path: str = ""  # the study file as it was run ("" for run folders)
    file_text: str = ""
    epochs_scale: float | None = None  # `cnnlab run --epochs-scale`: every run shortened


@dataclass
class StudyNumbers:
    """A study's analysis; ``summary`` and ``warnings`` are filled in by the prose."""

    study: StudyInfo
    alpha: float
    confidence: float
    baseline: str | None
    declared_baseline: str | None
    best_variant: str | None
    best_variant_by: str | None  # "validation", or "test" (then an optimistic choice)
    variants: list[VariantNumbers]
    domains: list[str]
    runs: list[RunRow]
    metric: str = METRIC
    cnnlab_version: str = __version__
    summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    predictions: dict[str, Any] | None = None  # what write_report shows of the best run
    baseline_settings: dict[str, Any] = field(default_factory=dict)  # flattened
    claims: list[ClaimVerdict] = field(default_factory=list)  # the study file's [[claim]]s
    figures: list[str] = field(default_factory=list)
    search: SearchNumbers | None = None  # a study with a [search]: its trials and winners
    sequential: str = ""  # seeds until decided: the method's note ("" for fixed seeds)
    family_note: str = ""  # how the claims and comparisons were tested, as one family
    epoch_notes: list[str] = field(default_factory=list)  # variants differing only in epochs
    factorial: FactorialNumbers | None = None  # a grid over two or more settings

    @property
    def failed_runs(self) -> list[RunRow]:
        return [r for r in self.runs if r.status == "failed"]

    def variant(self, name: str) -> VariantNumbers:
        return next(v for v in self.variants if v.name == name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "cnnlab_version": self.cnnlab_version,
            "study": asdict(self.study),
            "metric": self.metric,
            "alpha": self.alpha,
            "confidence": self.confidence,
            "baseline": self.baseline,
            "baseline_settings": self.baseline_settings,
            "claims": [c.to_dict() for c in self.claims],
            "sequential": self.sequential,
            "epoch_notes": self.epoch_notes,
            "factorial": None if self.factorial is None else self.factorial.to_dict(),
            "search": None if self.search is None else self.search.to_dict(),
            "best_variant": self.best_variant,
            "best_variant_by": self.best_variant_by,
            "peeks_at_test_set": peeking_figures(self.best_variant_by),
            "variants": [v.to_json() for v in self.variants],
            "domains": self.domains,
            "runs": [asdict(r) for r in self.runs],
            "failed_runs": [asdict(r) for r in self.failed_runs],
            "summary": self.summary,
            "warnings": self.warnings,
        }
        if self.predictions is not None:
            out["predictions"] = self.predictions
            out["figures"] = self.figures
        return json_safe(out)


def to_json(numbers: StudyNumbers) -> str:
    """``report.json``: strict JSON (no NaN), indented."""
    return json.dumps(numbers.to_json(), indent=2, allow_nan=False) + "\n"
