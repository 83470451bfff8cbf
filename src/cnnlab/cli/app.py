"""The `cnnlab` command line: argument parsing and dispatch, nothing else.

Every command turns a CnnlabError, and argparse turns a usage mistake, into one line
on stderr. Exit status: 0 done, 1 tried and failed (a run diverged, a file could not be
read), 2 bad input (nothing was started), 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from cnnlab import __version__
from cnnlab.cli import data, evaluate, export, models, predict, report, run, train
from cnnlab.cli.common import err_console, print_error
from cnnlab.errors import CnnlabError

# In the order `cnnlab --help` lists them.
COMMANDS = (data, models, train, evaluate, report, run, predict, export)

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

Exit status: 0 done, 1 tried and failed (a run diverged, a file could not be read),
2 bad input (nothing was started or changed), 130 interrupted.

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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except CnnlabError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("cnnlab: interrupted")
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
