"""`cnnlab evaluate`: a checkpoint on a test split."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from cnnlab.cli.common import (
    console,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="loss, accuracy, per-class accuracy and a confusion matrix for a checkpoint",
    )
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    p.add_argument("--dataset", help="dataset to test on (default: the one it was trained on)")
    p.add_argument("--data-dir", type=Path, default=None, help="default $CNNLAB_DATA")
    p.add_argument("--out", type=Path, help="confusion matrix PNG (default: beside the checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default=None,
        help="numeric precision (default: the one the run was trained with, so the figures "
        "match its summary.json)",
    )
    p.set_defaults(func=cmd_evaluate)


def _accuracy_table(title: str, what: str, rows: Sequence[tuple[str, float, int]]) -> Table:
    table = Table(title=title)
    table.add_column(what)
    table.add_column("accuracy", justify="right")
    table.add_column("images", justify="right")
    for name, acc, count in rows:
        table.add_row(name, f"{100 * acc:.2f}%", str(count))
    return table


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.inference.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint, args.dataset, args.data_dir, args.out, args.device, args.precision
    )
    title = f"{report.dataset}: accuracy {100 * report.accuracy:.2f}%, loss {report.loss:.4f}"
    console.print(_accuracy_table(title, "class", report.per_class))
    if report.per_domain:
        console.print(_accuracy_table("accuracy per domain", "domain", report.per_domain))
    console.print(f"confusion matrix: {report.confusion_png}")
    return 0
