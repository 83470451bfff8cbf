"""What every benchmark shares: the result row, the machine description, timing and the table.

Every benchmark measures cnnlab and its reference in the same process, interleaved where
it can, and reports the ratio: on a shared machine the absolute numbers move with the
load from other processes, the ratio much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from cnnlab.errors import CnnlabError
from cnnlab.evaluation.precision import cpu_has_native_bf16, resolve_device

# CPU flags that decide which precision and kernels are fast.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclass
class Result:
    """One row of the final table: cnnlab's figure, the reference's, and how they compare."""

    benchmark: str
    case: str
    ours: float | None = None  # cnnlab's figure, in ``unit``
    reference: float | None = None  # the reference's figure, in ``unit``
    unit: str = "img/s"
    ratio: float | None = None  # ours / reference unless set (then a utilisation or share)
    percent: bool = False  # ratio is a fraction: show it as a percentage
    target: float | None = None
    at_most: bool = False  # the target is an upper bound (an overhead), not a lower one
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours and self.reference:
            self.ratio = self.ours / self.reference

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio <= self.target if self.at_most else self.ratio >= self.target


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="dataset folder (default $CNNLAB_DATA)"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def device_of(name: str) -> torch.device:
    return resolve_device(name)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer stopped after this counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_rate(work: Callable[[], int], rounds: int, device: torch.device) -> float:
    """Items/s of the fastest of ``rounds`` calls of ``work`` (which returns items done).

    The fastest round is the one least disturbed by other processes on the machine."""
    best = 0.0
    for _ in range(rounds):
        sync(device)
        start = time.perf_counter()
        items = work()
        sync(device)
        best = max(best, items / (time.perf_counter() - start))
    return best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in FLAGS if f in have]
    except OSError:
        pass
    return []


def machine_info(device: torch.device) -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cores": usable,
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "native_bf16": cpu_has_native_bf16(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info: dict[str, Any]) -> str:
    flags = ", ".join(info["cpu_flags"]) or "none of " + ", ".join(FLAGS)
    load = info.get("load_average")
    parts = [
        f"{info['cores']} cores, {info['cpu']}",
        f"CPU flags: {flags}; native bf16: {'yes' if info['native_bf16'] else 'no'}",
        f"torch {info['torch']}, {info['threads']} threads, device {info['device']}"
        + (f" ({info['gpu']})" if "gpu" in info else ""),
    ]
    if load:
        parts.append(f"load average at start: {load[0]:.1f} (others share these cores)")
    return "\n".join(parts)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{100 * value:.1f}%"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "acc":
        return f"{100 * value:.2f}%"
    return f"{value:,.0f} {unit}" if abs(value) >= 100 else f"{value:,.3g} {unit}"


def _ratio(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.2f}x"


def _target(r: Result) -> str:
    if r.target is None:
        return ""
    return ("<= " if r.at_most else ">= ") + _ratio(r.target, r.percent)


def results_table(results: Sequence[Result], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for name in ("benchmark", "case"):
        table.add_column(name)
    for name in ("cnnlab", "reference", "ratio / util.", "target"):
        table.add_column(name, justify="right")
    table.add_column("met?", justify="center")
    table.add_column("notes")
    for r in results:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[r.met]
        table.add_row(
            r.benchmark,
            r.case,
            _number(r.ours, r.unit),
            _number(r.reference, r.unit),
            _ratio(r.ratio, r.percent),
            _target(r),
            met,
            r.note,
        )
    return table


def report(
    results: Sequence[Result],
    title: str,
    info: dict[str, Any],
    json_path: Path | None = None,
    seconds: float | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print the machine header (``machine_info`` taken at the start) and the table; write
    JSON when asked."""
    console = Console(width=max(160, Console().width))
    console.print(describe_machine(info), highlight=False)
    console.print(results_table(results, title))
    if seconds is not None:
        console.print(f"total {seconds:.0f} s", highlight=False)
    if json_path is not None:
        rows = [asdict(r) | {"met": r.met} for r in results]
        data = {"machine": info, "seconds": seconds, **(extra or {}), "results": rows}
        json_path.write_text(json.dumps(data, indent=2) + "\n")


def run_main(
    measure: Callable[..., list[Result]], title: str, args: argparse.Namespace, **kwargs: Any
) -> None:
    """A script's main(): measure with the common flags, then print the table. A problem
    cnnlab names (a dataset not found, a bad setting) is one line and the CLI's exit status
    (2 for bad input)."""
    device = device_of(args.device)
    info = machine_info(device)
    start = time.perf_counter()
    try:
        results = measure(quick=args.quick, data_dir=args.data_dir, device=device, **kwargs)
    except CnnlabError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    report(results, title, info, args.json, time.perf_counter() - start)


def script_main(measure: Callable[..., list[Result]], title: str, doc: str | None) -> None:
    """The whole main() of a script that takes only the common flags."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    run_main(measure, title, parser.parse_args())
