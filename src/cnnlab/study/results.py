"""What a study's analysis reads: every run of a study with its settings and metrics.

The store produces it; statistics and the report consume it. Nothing here
touches the database or the file system beyond holding paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.records import EpochRow, Provenance, RunSummary

RUN_STATUSES = ("pending", "running", "done", "failed", "interrupted", "pruned")


@dataclass
class RunResult:
    """One (variant, seed) run."""

    run_id: str  # hash of the fully resolved TrainConfig: settings change -> new run
    variant: str
    seed: int
    status: str  # one of RUN_STATUSES
    config: dict[str, Any]  # TrainConfig.model_dump(mode="json")
    run_dir: Path  # config.json, metrics.csv, summary.json, curves.png, checkpoint.pt, test_predictions.npz
    history: list[EpochRow] = field(default_factory=list)
    summary: RunSummary | None = None  # summary.json
    error: str | None = None
    device: str = ""
    started_at: float | None = None  # unix time
    ended_at: float | None = None
    attempts: int = 0  # times the runner started it (a resume or a retry is another attempt)
    identity: dict[str, Any] | None = None  # the location-free settings the run id hashes
    provenance: Provenance | None = None  # of the latest attempt, taken when it started

    @property
    def settings(self) -> dict[str, Any] | None:
        """What the run is, without its seed: runs of one variant share it."""
        if self.identity is None:
            return None
        return {k: v for k, v in self.identity["settings"].items() if k != "seed"}

    @property
    def final_test_acc(self) -> float | None:
        return None if self.summary is None else self.summary.final.test_acc


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

    def runs_of(self, variant: str, status: str = "done") -> list[RunResult]:
        return [r for r in self.runs if r.variant == variant and r.status == status]

    def to_dataframe(self, kind: str = "runs") -> Any:
        """A pandas DataFrame: one row per run (``"runs"``: settings, final metrics, times,
        provenance) or per epoch of every run (``"epochs"``). Needs pandas."""
        from cnnlab.study.tables import epoch_rows, run_rows

        if kind not in ("runs", "epochs"):
            raise ValueError(f"kind must be 'runs' or 'epochs', not {kind!r}")
        columns, rows = (run_rows if kind == "runs" else epoch_rows)(self)
        return require_pandas().DataFrame(rows, columns=columns)


def require_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise CnnlabError(
            "to_dataframe() needs pandas: pip install 'cnnlab[pandas]' (or pip install pandas)"
        ) from None
    return pandas
