"""The `cnnlab` command line: argument parsing and dispatch, nothing else.

Every command turns a CnnlabError, and argparse turns a usage mistake, into one line
on stderr. Exit status: 0 done, 1 tried and failed (a run diverged, a file could not be
read), 2 bad input (nothing was started), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM: a scheduler's or `kill`'s stop, which leaves runs resumable like Ctrl-C does).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from cnnlab import heartbeat
from cnnlab.cli import (
    data_command,
    evaluate_command,
    export_command,
    init_command,
    models_command,
    predict_command,
    report_command,
    run_command,
    runs_command,
    tracking_command,
    train_command,
)
from cnnlab.cli.common import console, err_console, print_error
from cnnlab.errors import CnnlabError, machine_refusal
from cnnlab.version import __version__

# In the order `cnnlab --help` lists them.
COMMANDS = (
    init_command, data_command, models_command, train_command, evaluate_command, report_command,
    run_command, runs_command, predict_command, export_command, tracking_command,
)  # fmt: skip

EPILOG = """\
examples:
  cnnlab data list                         which datasets are available, and where
  cnnlab data show fashion-mnist           class counts and a PNG grid of samples
  cnnlab data show folder:photos.tar.gz    any image folder or .tar(.gz) of one
  cnnlab models list                       the built-in models
  cnnlab models show lenet5 --input 1x32x32
  cnnlab run studies/quick-fashion.toml    a study: variants x seeds, resumable, then a report
  cnnlab predict runs/x/checkpoint.pt photos/   top-3 labels for every image in a folder
  cnnlab export runs/x/checkpoint.pt model.onnx  ONNX (or --format torchscript), checked
  cnnlab mlflow runs/quick-fashion --tracking-uri sqlite:///mlflow.db   runs into MLflow
  cnnlab runs ls runs/quick-fashion        a study's runs; runs rm ... forgets some

Exit status: 0 done, 1 tried and failed (a run diverged, a file could not be read),
2 bad input (nothing was started or changed), 3 the machine refused a write (disk full,
read-only folder: nothing lost), 130 interrupted, 143 terminated (SIGTERM).

In a pipe or a log, long work prints "still working: ..." when it has been quiet for
30 s ($CNNLAB_HEARTBEAT_SECONDS). -v / --verbose shows what cnnlab logs (cache use,
decode times), --log-file FILE keeps it (with debug detail) in a file; both go before
or after the command.

Datasets are looked for in --data-dir (or $CNNLAB_DATA), laid out as
<data dir>/<name>/<canonical files>, e.g. <data dir>/mnist/train-images-idx3-ubyte.gz.
"""


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one line naming the problem and where help is, like every other
    error, instead of argparse's usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        choice = re.match(r"argument .*: invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if choice:
            from cnnlab.config.suggest import did_you_mean

            options = re.findall(r"'([^']*)'", choice.group(2))
            message += did_you_mean(choice.group(1), options)
        if message.startswith("argument --epochs: invalid int value"):
            message += " (epochs are whole; for part of one: --limit-batches N or --max-steps N)"
        print_error(f"{message}; see `{self.prog} --help`")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cnnlab",
        description="Train and compare small image classifiers, with evidence: "
        "repeated seeds, error bars and significance tests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    add_logging_flags(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():
        _add_logging_everywhere(command_parser)
    return parser


def add_logging_flags(parser: argparse.ArgumentParser, default: object) -> None:
    # SUPPRESS: a flag not given leaves the attribute unset, so `cnnlab -v run` and
    # `cnnlab run -v` both count (a subcommand's default would overwrite the other).
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="show what cnnlab logs: -v informative messages, -vv debug detail",
    )
    group.add_argument(
        "--log-file",
        type=Path,
        default=default,
        metavar="FILE",
        help="also append every log message (debug detail included) to FILE",
    )


def _add_logging_everywhere(parser: argparse.ArgumentParser) -> None:
    add_logging_flags(parser, argparse.SUPPRESS)
    for action in parser._actions:  # nested commands: `cnnlab data show`
        if isinstance(action, argparse._SubParsersAction):
            for nested in action.choices.values():
                _add_logging_everywhere(nested)


def run_guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except CnnlabError as exc:
        print_error(exc)
        return exc.exit_code
    except (OSError, sqlite3.OperationalError) as exc:  # a full disk, a read-only folder
        refusal = machine_refusal(exc)
        if refusal is None:
            raise
        print_error(refusal)
        return refusal.exit_code
    except Terminated:
        err_console.print(f"cnnlab: terminated (SIGTERM){_how_to_continue(args)}", soft_wrap=True)
        return 143
    except KeyboardInterrupt:
        err_console.print(f"cnnlab: interrupted (Ctrl-C){_how_to_continue(args)}", soft_wrap=True)
        return 130


def _how_to_continue(args: argparse.Namespace) -> str:
    """What continues the work a stop cut short, for the commands that can."""
    if args.command == "train":
        return "; to continue: the same command with --resume (and the same --out)"
    if args.command == "run":
        return "; rerun the same command to continue (finished runs are kept)"
    return ""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is running like Ctrl-C's KeyboardInterrupt, so that
    every `except KeyboardInterrupt` that marks runs interrupted and releases the study's
    lock also covers a `kill` or a batch scheduler's stop."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Only the main thread may set a handler (an in-process caller on another thread
    keeps the default); the previous one comes back afterwards."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def configure_logging(verbose: int, log_file: Path | None) -> None:
    """Warnings always reach stderr (one line each); -v adds info, -vv debug."""
    root = logging.getLogger("cnnlab")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(level)
    to_stderr.setFormatter(logging.Formatter("cnnlab: %(levelname)s: %(message)s"))
    to_stderr.addFilter(_WarningsOnce())
    root.addHandler(to_stderr)
    root.setLevel(min(level, logging.DEBUG if log_file else level))
    root.propagate = False
    if log_file is not None:
        try:
            to_file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise CnnlabError(
                f"--log-file {log_file}: cannot be written ({exc.strerror or exc})"
            ) from None
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(to_file)


class _WarningsOnce(logging.Filter):
    """Each warning shown once a command: the driver and each of its workers load the
    same dataset and would say the same thing three times."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        text = record.getMessage()
        if text in self.shown:
            return False
        self.shown.add(text)
        return True


@contextlib.contextmanager
def refusals_said_once() -> Iterator[None]:
    """A background thread that hits a full disk or a read-only folder (TensorBoard's
    writer) stays quiet: the command meets the same refusal and says it in one line."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or machine_refusal(args.exc_value) is None:
            default(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = default


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(getattr(args, "verbose", 0) or 0, getattr(args, "log_file", None))
    except CnnlabError as exc:
        print_error(exc)
        return exc.exit_code
    beat = None
    if not getattr(args, "quiet", False) and not console.is_terminal:
        every = float(os.environ.get("CNNLAB_HEARTBEAT_SECONDS", heartbeat.DEFAULT_SECONDS))
        beat = heartbeat.start(sys.stdout, every)
        console.file = beat.wrap(sys.stdout)
    try:
        with sigterm_as_interrupt(), refusals_said_once():
            return run_guarded(args.func, args)
    finally:
        if beat is not None:
            heartbeat.stop()
            console.file = None  # type: ignore[assignment]  # back to the current sys.stdout


if __name__ == "__main__":
    sys.exit(main())
