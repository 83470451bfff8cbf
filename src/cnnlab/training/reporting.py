"""How a training run reports progress: a rich bar on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cnnlab.records import EpochRow


class Reporter(Protocol):
    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None: ...
    def end_epoch(self, row: EpochRow) -> None: ...
    def close(self) -> None: ...


def format_epoch(row: EpochRow, epochs: int) -> str:
    parts = [f"epoch {row.epoch}/{epochs}"]
    parts.append(f"train loss {row.train_loss:.4f} acc {100 * (row.train_acc or 0):.2f}%")
    if row.val_acc is not None:
        parts.append(f"val loss {row.val_loss:.4f} acc {100 * row.val_acc:.2f}%")
    if row.test_acc is not None:  # None: the test split waits for the end (evaluate = "end")
        parts.append(f"test loss {row.test_loss:.4f} acc {100 * row.test_acc:.2f}%")
    parts.append(f"lr {row.lr:.2e}  {row.images_per_s:,.0f} img/s  {row.epoch_seconds:.1f}s")
    return " | ".join(parts)


class QuietReporter:
    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        pass

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        pass

    def end_epoch(self, row: EpochRow) -> None:
        pass

    def close(self) -> None:
        pass


class LineReporter(QuietReporter):
    """One line per epoch: for logs, CI and pipes."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(file=sys.stdout)
        self.epochs = 0

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs

    def end_epoch(self, row: EpochRow) -> None:
        self.console.print(format_epoch(row, self.epochs), highlight=False, soft_wrap=True)


class BarReporter(LineReporter):
    """A live bar per epoch (step, running loss and accuracy, images/s), then its summary line."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f} acc {task.fields[acc]:.2%} {task.fields[ips]:,.0f} img/s"
            ),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task: int | None = None
        self.progress.start()

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        super().start_epoch(epoch, epochs, steps)
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            "train", total=steps, epoch=f"{epoch}/{epochs}", loss=0.0, acc=0.0, ips=0.0
        )

    def step(self, done: int, loss: float, acc: float, images_per_s: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=done, loss=loss, acc=acc, ips=images_per_s)

    def end_epoch(self, row: EpochRow) -> None:
        self.progress.console.print(format_epoch(row, self.epochs), highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool, console: Console | None = None) -> Reporter:
    if quiet:
        return QuietReporter()
    console = console or Console(file=sys.stdout)
    return BarReporter(console) if console.is_terminal else LineReporter(console)
