"""The report's search section: the trials Optuna proposed and what confirming the best
over seeds found, in plain words."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cnnlab import stats
from cnnlab.stats.formatting import fmt_p, fmt_pts
from cnnlab.study.plan.expand import format_value
from cnnlab.study.store.results import StudyResults

SHOWN_TRIALS = 15  # the best ones; every trial is in report.json and the store


@dataclass
class SearchNumbers:
    objective: str
    sampler: str
    pruner: str
    trials_asked: int
    counts: dict[str, int]  # complete / pruned / failed
    best_trials: list[dict[str, Any]]  # number, state, objective, values (text), run_id
    winners: list[dict[str, str]] = field(default_factory=list)  # name, trial, verdict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sentence(name: str, trial: str, c: stats.Comparison | None, baseline: str) -> str:
    found = trial.split(": ", 1)[-1]
    if c is None or c.diff is None:
        return f"search found {found}; its confirmation runs have not finished"
    seeds = f"over {c.n_variant} seeds"
    ci = f"95% CI {fmt_pts(c.diff_ci_low)} to {fmt_pts(c.diff_ci_high)}"
    p = f"adjusted p = {fmt_p(c.p_holm)}"
    what = {
        stats.BETTER: f"it beats {baseline} by {fmt_pts(c.diff)} points",
        stats.WORSE: f"it is worse than {baseline} by {fmt_pts(-c.diff)} points",
    }.get(c.verdict, f"it differs from {baseline} by {fmt_pts(c.diff)} points, within noise")
    return f"search found {found} ({name}); {seeds} {what} ({ci}, {p})"


def search_numbers(
    results: StudyResults, comparisons: dict[str, stats.Comparison], baseline: str | None
) -> SearchNumbers | None:
    info = results.options.get("search")
    if not info:
        return None
    trials = results.trials
    maximize = info["objective"] == "val_acc"
    ranked = sorted(
        (t for t in trials if t["objective"] is not None),
        key=lambda t: t["objective"], reverse=maximize,
    )  # fmt: skip
    counts = {s: sum(t["state"] == s for t in trials) for s in ("complete", "pruned", "failed")}
    best = [
        {
            "number": t["number"],
            "state": t["state"],
            "objective": t["objective"],
            "values": ", ".join(f"{k}={format_value(v)}" for k, v in t["params"].items()),
            "run_id": t["run_id"],
        }
        for t in ranked[:SHOWN_TRIALS]
    ]
    winners = [
        {"name": name, "trial": trial,
         "verdict": _sentence(name, trial, comparisons.get(name), baseline or "the baseline")}
        for name, trial in info.get("winners", {}).items()
    ]  # fmt: skip
    return SearchNumbers(
        objective=info["objective"], sampler=info["sampler"], pruner=info["pruner"],
        trials_asked=int(info["trials"]), counts=counts, best_trials=best, winners=winners,
    )  # fmt: skip
