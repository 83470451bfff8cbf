"""One run of a study as the store gives it back: settings, status, metrics, files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
