"""One row per run, as the report lists them (and ``report.json``'s ``runs``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.study.results import RunResult


@dataclass
class RunRow:
    """One run as the report lists it."""

    variant: str
    seed: int
    status: str
    run_id: str
    final_test_acc: float | None
    best_test_acc_optimistic: float | None
    best_test_epoch: int | None
    epochs: int | None
    wall_seconds: float | None
    device: str
    run_dir: str
    error: str | None
    attempts: int
    provenance: dict[str, Any] | None  # records.Provenance, taken when the run started

    @classmethod
    def of(cls, r: RunResult) -> RunRow:
        s = r.summary
        return cls(
            variant=r.variant,
            seed=r.seed,
            status=r.status,
            run_id=r.run_id,
            final_test_acc=r.final_test_acc,
            best_test_acc_optimistic=None if s is None else s.best_test_acc_optimistic,
            best_test_epoch=None if s is None else s.best_test_epoch,
            epochs=None if s is None else s.epochs,
            wall_seconds=None if s is None else s.wall_seconds,
            device=r.device,
            run_dir=str(r.run_dir),
            error=r.error,
            attempts=r.attempts,
            provenance=None if r.provenance is None else r.provenance.to_dict(),
        )
