"""`cnnlab models list` and `cnnlab models show`."""

from __future__ import annotations

import argparse

from rich.table import Table

from cnnlab.cli.common import (
    console,
)
from cnnlab.errors import CnnlabError


def cmd_models_list(args: argparse.Namespace) -> int:
    from cnnlab.models.catalogue import list_models

    table = Table(title="built-in models (or pass a model .toml file)")
    table.add_column("name")
    table.add_column("description")
    for name, description in list_models():
        table.add_row(name, description)
    console.print(table)
    return 0


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise CnnlabError(f"--input '{text}' is not a shape; write CxHxW, e.g. 1x28x28 or 3x32x32")
    c, h, w = (int(p) for p in parts)
    return c, h, w


def cmd_models_show(args: argparse.Namespace) -> int:
    from cnnlab.models.catalogue import BUILTIN_MODELS
    from cnnlab.models.registry import build_model, render_summary, resolve_model, summarize

    builtin = BUILTIN_MODELS.get(args.model.strip().lower().replace("_", "-"))
    if args.input is not None:
        shape = parse_shape(args.input)
    else:  # the input the model was built for; a model file says nothing of its channels
        shape = builtin.input_shape if builtin is not None else (3, 32, 32)
        console.print(f"input {'x'.join(map(str, shape))} (--input to change)", highlight=False)
    spec = resolve_model(args.model)
    model = build_model(spec, shape, args.classes)
    console.print(render_summary(summarize(model, shape)))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list built-in models, show a per-layer summary")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = models_sub.add_parser("list", help="the built-in model names")
    ml.set_defaults(func=cmd_models_list)
    ms = models_sub.add_parser(
        "show",
        help="per-layer table: output shapes, parameters, multiply-accumulates",
    )
    ms.add_argument("model", help="a built-in name or a model .toml file")
    ms.add_argument(
        "--input",
        default=None,
        help="input shape CxHxW (default: the input the model was built for, e.g. 1x32x32 "
        "for lenet5, 3x32x32 for the CIFAR models and for model files)",
    )
    ms.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    ms.set_defaults(func=cmd_models_show)
