"""What a study's analysis reads: every run of a study with its settings and metrics.

The store produces it; statistics and the report consume it. Nothing here
touches the database or the file system beyond holding paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.claims.claim import Claim
from cnnlab.errors import CnnlabError
from cnnlab.study.store.run_result import RUN_STATUSES, RunResult
from cnnlab.study.store.run_table import epoch_rows, run_rows

__all__ = ["RUN_STATUSES", "RunResult", "StudyResults", "require_pandas"]


@dataclass
class StudyResults:
    """A study's runs in the order of its file: variants as written, seeds ascending."""

    name: str
    dataset: str
    baseline: str | None
    variants: list[str]
    runs: list[RunResult]
    study_dir: Path
    description: str = ""
    file_path: str = ""  # the study file as it was last run ("" for run folders)
    file_text: str = ""
    options: dict[str, Any] = field(
        default_factory=dict
    )  # `cnnlab run` overrides (epochs_scale, ...) and a search's outcome ("search")
    trials: list[dict[str, Any]] = field(default_factory=list)  # a [search]'s, from the store
    claims: list[Claim] = field(default_factory=list)  # the plan's [[claim]]s
    # Seeds until decided: the design (looks, alpha, spending, seeds) and its looks so far.
    sequential: dict[str, Any] | None = None
    # Variants that differ only in epochs: read from one run per seed, or why not.
    epoch_families: list[dict[str, Any]] = field(default_factory=list)
    # A grid as a factorial: factor names, their levels and each variant's cell.
    factors: dict[str, Any] | None = None

    def finals_by_seed(self) -> dict[str, dict[int, float]]:
        """variant -> seed -> final test accuracy, of the finished runs."""
        out: dict[str, dict[int, float]] = {}
        for run in self.runs:
            if run.status == "done" and run.summary is not None:
                out.setdefault(run.variant, {})[run.seed] = run.summary.final.test_acc
        return out

    def runs_of(self, variant: str, status: str = "done") -> list[RunResult]:
        return [r for r in self.runs if r.variant == variant and r.status == status]

    def to_dataframe(self, kind: str = "runs") -> Any:
        """A pandas DataFrame: one row per run (``"runs"``: settings, final metrics, times,
        provenance) or per epoch of every run (``"epochs"``). Needs pandas."""
        if kind not in ("runs", "epochs"):
            raise ValueError(f"kind must be 'runs' or 'epochs', not {kind!r}")
        columns, rows = run_rows(self.runs) if kind == "runs" else epoch_rows(self.name, self.runs)
        return require_pandas().DataFrame(rows, columns=columns)


def require_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise CnnlabError(
            "to_dataframe() needs pandas: pip install -e '.[pandas]' (or pip install pandas)"
        ) from None
    return pandas
