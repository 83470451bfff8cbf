"""Typed run records: what a run produces, in one place, torch-free.

The trainer returns a :class:`RunRecord` (its epoch rows and its summary); the study
executor records it in the store once; ``metrics.csv`` and ``summary.json`` are written
from it; the store, the report and the CLI read attributes, not string keys. The file
names of a run folder are :data:`ARTIFACTS`. JSON forms are unchanged from the dicts
that earlier versions wrote, so existing run folders and study databases stay readable.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cnnlab.atomic import atomic_write_text
from cnnlab.errors import CnnlabError

# The per-epoch columns of metrics.csv and of the store's epochs table, in order.
EPOCH_COLUMNS = (
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
    "images_per_s", "epoch_seconds", "wall_seconds",
)  # fmt: skip


# What a run folder holds, by kind (the store's artifacts table uses the kinds).
def kept_checkpoint(epoch: int) -> str:
    """The file name of the checkpoint kept at ``epoch`` (``keep_checkpoints``)."""
    return f"checkpoint-epoch{epoch}.pt"


ARTIFACTS = {
    "config": "config.json",
    "metrics": "metrics.csv",
    "summary": "summary.json",
    "curves": "curves.png",
    "checkpoint": "checkpoint.pt",
    "predictions": "test_predictions.npz",
    "error": "error.txt",
}


def _number(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


@dataclass
class EpochRow:
    """One finished epoch: train figures are running averages during the epoch."""

    epoch: int
    lr: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    images_per_s: float | None = None
    epoch_seconds: float | None = None
    wall_seconds: float | None = None
    test_acc_by_domain: dict[str, float] | None = None  # composite datasets only

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochRow:
        """From a checkpoint's history, a metrics.csv row or a store row ("" reads as None)."""
        values = {c: _number(row.get(c)) for c in EPOCH_COLUMNS[1:]}
        by_domain = row.get("test_acc_by_domain")
        return cls(epoch=int(row["epoch"]), **values, test_acc_by_domain=by_domain or None)

    def to_dict(self) -> dict[str, Any]:
        """The plain form checkpoints carry (``test_acc_by_domain`` only when set)."""
        out = {c: getattr(self, c) for c in EPOCH_COLUMNS}
        if self.test_acc_by_domain is not None:
            out["test_acc_by_domain"] = dict(self.test_acc_by_domain)
        return out

    def get(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class FinalMetrics:
    """The last epoch's figures: what a study compares."""

    train_loss: float | None
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    test_loss: float
    test_acc: float
    test_acc_by_domain: dict[str, float] | None = None

    @classmethod
    def of(cls, row: EpochRow) -> FinalMetrics:
        assert row.test_loss is not None and row.test_acc is not None
        return cls(
            row.train_loss,
            row.train_acc,
            row.val_loss,
            row.val_acc,
            row.test_loss,
            row.test_acc,
            row.test_acc_by_domain,
        )


@dataclass
class Provenance:
    """Where and with what a run trained, taken when it starts (not when a report is made)."""

    cnnlab: str
    python: str
    torch: str | None
    cuda: str | None  # the CUDA torch was built with; None for a CPU build
    cudnn: str | None
    device: str  # e.g. "cpu fp32 channels_last" or "cuda bf16 (NVIDIA H100)"
    cpu: str
    host: str
    platform: str
    started: str  # ISO 8601, UTC
    git_commit: str | None = None  # of the working directory, when it is a repository
    git_dirty: bool | None = None  # uncommitted changes to tracked files

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunSummary:
    """A finished run in figures: ``summary.json`` and the store's ``finals`` row."""

    model: str
    dataset: str
    seed: int
    epochs: int  # epochs trained (fewer than configured after early stopping)
    stopped_early: bool
    final: FinalMetrics
    # Picking the best epoch by test accuracy peeks at the test set: an optimistic figure.
    best_test_acc_optimistic: float
    best_test_epoch: int
    params: int
    macs_per_image: int
    input_shape: list[int]
    classes: list[str]
    precision: str
    train_seconds: float
    step_seconds: float
    eval_seconds: float
    wall_seconds: float
    images_per_s: float
    # Since cnnlab 0.6; summaries written before lack them.
    run_id: str | None = None  # the hash of ``identity``: the same as the study's run id
    identity: dict[str, Any] | None = None  # the location-free settings (config.identity)
    provenance: Provenance | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        final = dict(data["final"])
        final.setdefault("test_acc_by_domain", None)
        # Summaries of earlier versions may lack the later fields.
        nested = ("final", "provenance")
        values = {f.name: data.get(f.name) for f in fields(cls) if f.name not in nested}
        for name in ("step_seconds", "eval_seconds"):
            values[name] = values[name] or 0.0
        provenance = data.get("provenance")
        return cls(
            final=FinalMetrics(**final),
            provenance=None if provenance is None else Provenance.from_dict(provenance),
            **values,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["final"]["test_acc_by_domain"] is None:
            del out["final"]["test_acc_by_domain"]
        for name in ("run_id", "identity", "provenance"):
            if out[name] is None:
                del out[name]
        return out


@dataclass
class RunRecord:
    """What one training run hands back: every epoch row and the summary."""

    summary: RunSummary
    history: list[EpochRow] = field(default_factory=list)
    run_dir: Path | None = None  # the run folder, when the caller sets it (the Python API)

    def to_dataframe(self) -> Any:
        """The epoch rows as a pandas DataFrame (one row per epoch). Needs pandas."""
        try:
            import pandas
        except ImportError:
            raise CnnlabError(
                "to_dataframe() needs pandas: pip install -e '.[pandas]' (or pip install pandas)"
            ) from None
        rows = []
        for row in self.history:
            values = {c: row.get(c) for c in EPOCH_COLUMNS}
            values |= {f"test_acc.{d}": a for d, a in (row.test_acc_by_domain or {}).items()}
            rows.append(values)
        return pandas.DataFrame(rows)


def summarize_history(history: list[EpochRow], **info: Any) -> RunSummary:
    """The summary of a run's rows; ``info`` gives the fields the rows do not hold."""
    last = history[-1]
    best = max(history, key=lambda r: r.test_acc or 0.0)
    return RunSummary(
        epochs=last.epoch,
        final=FinalMetrics.of(last),
        best_test_acc_optimistic=float(best.test_acc or 0.0),
        best_test_epoch=best.epoch,
        wall_seconds=float(last.wall_seconds or 0.0),
        images_per_s=sum(r.images_per_s or 0.0 for r in history) / len(history),
        **info,
    )


def metrics_csv_text(history: list[EpochRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EPOCH_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow(
            {c: "" if getattr(row, c) is None else getattr(row, c) for c in EPOCH_COLUMNS}
        )
    return buf.getvalue()


def write_run_files(folder: Path, record: RunRecord) -> None:
    """``metrics.csv`` and ``summary.json``, atomically, from the record."""
    atomic_write_text(folder / ARTIFACTS["metrics"], metrics_csv_text(record.history))
    atomic_write_text(
        folder / ARTIFACTS["summary"], json.dumps(record.summary.to_dict(), indent=2) + "\n"
    )
