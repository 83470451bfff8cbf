"""A run as a row, in each form it is shown: :class:`RunRow` (the report's run list and
``report.json``'s ``runs``), and flat rows, one per run (settings, final metrics, times,
provenance) or one per epoch of every run, from which the CSV forms (analysis.tidy) and
``StudyResults.to_dataframe`` are both made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.config.identity import flatten
from cnnlab.records import EPOCH_COLUMNS, Provenance, RunSummary
from cnnlab.study.store.run_result import RunResult

RUN_COLUMNS = ["variant", "seed", "run_id", "status", "attempts", "error", "run_dir"]
SUMMARY_COLUMNS = [
    "final_test_acc", "final_test_loss", "final_train_acc", "final_train_loss",
    "final_val_acc", "final_val_loss", "best_test_acc_optimistic", "best_test_epoch",
    "epochs_trained", "stopped_early", "params", "macs_per_image", "precision",
    "train_seconds", "step_seconds", "eval_seconds", "wall_seconds", "images_per_s",
]  # fmt: skip
PROVENANCE_COLUMNS = [f"provenance.{name}" for name in Provenance.__dataclass_fields__]
EPOCH_KEYS = ["study", "variant", "seed", "run_id", "status"]


def _summary_values(s: RunSummary | None) -> dict[str, Any]:
    if s is None:
        return {}
    f = s.final
    return {
        "final_test_acc": f.test_acc,
        "final_test_loss": f.test_loss,
        "final_train_acc": f.train_acc,
        "final_train_loss": f.train_loss,
        "final_val_acc": f.val_acc,
        "final_val_loss": f.val_loss,
        "best_test_acc_optimistic": s.best_test_acc_optimistic,
        "best_test_epoch": s.best_test_epoch,
        "epochs_trained": s.epochs,
        "stopped_early": s.stopped_early,
        "params": s.params,
        "macs_per_image": s.macs_per_image,
        "precision": s.precision,
        "train_seconds": s.train_seconds,
        "step_seconds": s.step_seconds,
        "eval_seconds": s.eval_seconds,
        "wall_seconds": s.wall_seconds,
        "images_per_s": s.images_per_s,
        **{f"final_test_acc.{d}": a for d, a in (f.test_acc_by_domain or {}).items()},
    }


def _settings(r: RunResult) -> dict[str, Any]:
    config = dict(r.config)
    args = config.pop("model_args", None) or {}
    flat = {f"setting.{k}": v for k, v in flatten(config).items()}
    flat.update({f"setting.model_args.{k}": v for k, v in sorted(args.items())})
    return flat


def run_rows(runs: Sequence[RunResult]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): the union of every run's columns, in a stable order."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "variant": r.variant,
            "seed": r.seed,
            "run_id": r.run_id,
            "status": r.status,
            "attempts": r.attempts,
            "error": r.error,
            "run_dir": str(r.run_dir),
        }
        row.update(_settings(r))
        row.update(_summary_values(r.summary))
        if r.provenance is not None:
            row.update({f"provenance.{k}": v for k, v in r.provenance.to_dict().items()})
        rows.append(row)
    settings = list(dict.fromkeys(k for row in rows for k in row if k.startswith("setting.")))
    domains = list(dict.fromkeys(k for row in rows for k in row if k.startswith("final_test_acc.")))
    return RUN_COLUMNS + settings + SUMMARY_COLUMNS + domains + PROVENANCE_COLUMNS, rows


def epoch_rows(study: str, runs: Sequence[RunResult]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): every finished epoch of every run, the run's keys first, then each
    EpochRow column and one ``test_acc.<domain>`` column per test domain."""
    domains = list(
        dict.fromkeys(d for r in runs for e in r.history for d in e.test_acc_by_domain or {})
    )
    columns = EPOCH_KEYS + list(EPOCH_COLUMNS) + [f"test_acc.{d}" for d in domains]
    rows = []
    for r in runs:
        keys = dict(zip(EPOCH_KEYS, [study, r.variant, r.seed, r.run_id, r.status], strict=True))
        for epoch in r.history:
            values = keys | {c: epoch.get(c) for c in EPOCH_COLUMNS}
            values |= {f"test_acc.{d}": a for d, a in (epoch.test_acc_by_domain or {}).items()}
            rows.append(values)
    return columns, rows


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
