"""`cnnlab init`: a commented starter study to edit, instead of guessing the format."""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path

from rich.markup import escape

from cnnlab.atomic import atomic_write_text
from cnnlab.cli.common import console
from cnnlab.errors import CnnlabError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented starter study file to edit",
        description="Write a starter study: two variants, three seeds and a claim, each key "
        "explained in a comment. It runs as it is (on Fashion-MNIST); edit it into yours.",
        epilog="example:\n  cnnlab init my-study.toml && cnnlab run my-study.toml --epochs-scale 0.2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "path", type=Path, nargs="?", default=Path("study.toml"), help="default study.toml"
    )
    p.set_defaults(func=cmd_init)


def starter_text(path: Path) -> str:
    """The starter study, named after its file."""
    template = resources.files("cnnlab.cli").joinpath("templates/starter-study.toml")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "my-study"
    return template.read_text(encoding="utf-8").replace("{path}", str(path)).replace("{name}", name)


def cmd_init(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists():
        raise CnnlabError(
            f"{path} exists already; name another file, e.g. cnnlab init my-study.toml"
        )
    if path.suffix.lower() != ".toml":
        raise CnnlabError(f"{path}: a study file ends in .toml, e.g. cnnlab init my-study.toml")
    if not path.parent.is_dir():
        raise CnnlabError(f"{path.parent}: no such folder; create it or name a file in this one")
    atomic_write_text(path, starter_text(path))
    console.print(
        escape(
            f"wrote {path}: edit it, then `cnnlab run {path} --epochs-scale 0.2` for a quick look"
        ),
        highlight=False,
        soft_wrap=True,
    )
    return 0
