"""`cnnlab run --dry-run`: the study's runs and what the rest will cost here, in a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from cnnlab.cli.common import console
from cnnlab.stats.formatting import counted

if TYPE_CHECKING:
    from cnnlab.study.plan.study_plan import Study
    from cnnlab.study.run.executor import Executor


def _layout(executor: Executor) -> tuple[int, int]:
    """(runs at once, threads each) of the executor."""
    import os

    from cnnlab.study.run.local_executor import LocalExecutor

    if isinstance(executor, LocalExecutor):
        return executor.layout.workers, executor.layout.threads
    threads = getattr(executor, "threads", None) or os.cpu_count() or 1
    return 1, threads


def _duration(seconds: float) -> str:
    from cnnlab.study.run.study_progress import format_duration

    return format_duration(seconds)


def print_cost(study: Study, out: Path, executor: Executor) -> int:
    from cnnlab.study.run.study_cost import study_cost, wall_seconds

    workers, threads = _layout(executor)
    with console.status("timing a few steps of each variant..."):
        costs = study_cost(study, out, workers, threads)
    table = Table(title=f"{study.name}: what is left, measured here ({threads} thread(s) a run)")
    for label in ("variant", "runs to do", "done", "s / epoch", "epochs", "a run"):
        table.add_column(label, justify="left" if label == "variant" else "right",
                         overflow="fold" if label == "variant" else "ellipsis")  # fmt: skip
    for c in costs:
        per_epoch = f"{c.seconds_per_epoch:.1f}" if c.runs_todo else "—"
        table.add_row(c.variant, str(c.runs_todo), str(c.runs_done), per_epoch, str(c.epochs),
                      _duration(c.run_seconds) if c.runs_todo else "—")  # fmt: skip
    console.print(table)
    runs = [c.run_seconds for c in costs for _ in range(c.runs_todo)]
    wall = wall_seconds(runs, workers)
    line = (
        f"{counted(len(runs), 'run')} to train: about {_duration(wall)} on {workers} "
        f"worker(s) x {threads} thread(s) (training steps; evaluation and start-up add a "
        "few percent)"
    )
    if study.design is not None:
        most = wall * study.design.looks[-1] / study.design.looks[0]
        line += f"; seeds until decided may add looks, up to about {_duration(most)} in all"
    console.print(escape(line), highlight=False, soft_wrap=True)
    return 0
