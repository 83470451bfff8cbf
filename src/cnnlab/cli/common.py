"""What every command shares: the consoles, common flags and argument types."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from cnnlab.config.schema import TrainConfig

console = Console()
err_console = Console(stderr=True)

# The dataset setting's own description (one text for `train`, `data show` and `run`).
DATASET_HELP = str(TrainConfig.model_fields["dataset"].description)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding <name>/<canonical files> (default: $CNNLAB_DATA, else ~/.cache/cnnlab/data)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download a missing built-in dataset with torchvision (needs a network)",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small; use 1 or more")
    return value


def print_error(message: object) -> None:
    """``cnnlab: error: <message>`` on stderr, the message printed literally: study-file
    errors name tables like [defaults] that rich would otherwise read as markup."""
    err_console.print(
        f"[bold red]cnnlab: error:[/bold red] {escape(str(message))}",
        highlight=False,
        soft_wrap=True,
    )


def output_folder(path: Path, flag: str = "--out") -> Path:
    """``path`` when it is a folder or can become one; a CnnlabError naming it otherwise."""
    from cnnlab.errors import CnnlabError

    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise CnnlabError(
                    f"{flag} {path}: {part} is a file, not a folder; choose another {flag}"
                )
            break
    return path
