"""TensorBoard event files in each run folder (``tensorboard = true`` / ``--tensorboard``).

What goes in: the running training loss/accuracy and images/s every few steps, every
epoch's metrics and learning rate (at the optimizer step that ended the epoch: one x
axis, steps, for every curve), and at the end the run's settings with its final metrics
as hparams. The events sit in the run
folder itself, so ``tensorboard --logdir STUDY_DIR`` lists every run of a study by its
folder, side by side. A resumed run drops what the interrupted attempt logged after
its last checkpoint (``purge_step``), so no curve doubles back. The store stays the
record of a run; these files are a view of it for TensorBoard users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.config.identity import flatten
from cnnlab.errors import ConfigError
from cnnlab.records import EPOCH_COLUMNS, EpochRow, RunSummary
from cnnlab.training.reporting import Reporter

INSTALL_HINT = "pip install -e '.[tensorboard]' (or pip install tensorboard)"


def require_tensorboard() -> None:
    """Refuse in one line, before anything trains, when the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"tensorboard = true needs the tensorboard package: {INSTALL_HINT}"
        ) from None


def _hparam(value: Any) -> Any:
    """TensorBoard's hparams take numbers, text and booleans: the rest as text."""
    return value if isinstance(value, bool | int | float | str) else str(value)


class TensorBoardReporter:
    """Logs what the trainer reports to the run folder's event files, then passes it on."""

    def __init__(self, inner: Reporter, run_dir: Path, resumed_at_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.inner, self.run_dir = inner, run_dir
        # Steps after the checkpoint that a kill cut short are dropped; the checkpoint's
        # own epoch (logged at exactly its step) is kept.
        purge = resumed_at_step + 1 if resumed_at_step else None
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge)
        self.epoch, self.steps_per_epoch = 0, 0

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch, self.steps_per_epoch = epoch, steps
        self.inner.start_epoch(epoch, epochs, steps)

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        at = (self.epoch - 1) * self.steps_per_epoch + done
        self.writer.add_scalar("train_running/loss", loss, at)
        self.writer.add_scalar("train_running/acc", acc, at)
        self.writer.add_scalar("train_running/images_per_s", images_per_s, at)
        self.inner.step(done, loss, acc, images_per_s)

    def end_epoch(self, row: EpochRow) -> None:
        at = row.epoch * self.steps_per_epoch
        for column in EPOCH_COLUMNS:
            value = row.get(column)
            if value is not None:
                self.writer.add_scalar(f"epoch/{column}", value, at)
        for domain, acc in (row.test_acc_by_domain or {}).items():
            self.writer.add_scalar(f"epoch/test_acc.{domain}", acc, at)
        self.writer.flush()
        self.inner.end_epoch(row)

    def close(self) -> None:
        self.writer.close()
        self.inner.close()

    def finish(self, summary: RunSummary, identity: dict[str, Any]) -> None:
        """The run's settings and final metrics as one hparams entry, in the same folder."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        settings = {k: _hparam(v) for k, v in flatten(identity.get("settings")).items()}
        final = summary.final
        metrics = {
            f"hparam/{name}": value
            for name, value in (
                ("test_acc", final.test_acc), ("test_loss", final.test_loss),
                ("val_acc", final.val_acc), ("val_loss", final.val_loss),
            )
            if value is not None
        }  # fmt: skip
        experiment, start, end = hparams(settings, metrics)
        with SummaryWriter(log_dir=str(self.run_dir)) as writer:
            for event in (experiment, start, end):
                writer.file_writer.add_summary(event)
            for name, value in metrics.items():
                writer.add_scalar(name, value, summary.epochs * self.steps_per_epoch)
