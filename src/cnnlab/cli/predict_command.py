"""`cnnlab predict`: top-k labels for image files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cnnlab.cli.common import (
    console,
    err_console,
    positive_int,
)

PREDICT_EPILOG = """\
examples:
  cnnlab predict runs/lenet5/checkpoint.pt digit.png          top 3 labels with probabilities
  cnnlab predict runs/lenet5/checkpoint.pt photos/ scan.jpg   folders are searched recursively
  cnnlab predict ckpt.pt photos/ --json > predictions.jsonl   one JSON object per file
  cnnlab predict ckpt.pt chalkboard.jpg --invert no --top-k 1

Any PNG, JPEG, BMP, GIF (first frame) or WebP, of any size and colour mode, is turned
upright by its EXIF orientation, made opaque on white, scaled to fit the model's input
keeping its aspect ratio, padded, and converted to the model's channels (gray <-> RGB).
For gray (MNIST-like) models the picture is also made to look like the training data:
a light figure on black, background at 0 and strokes at full white; --invert auto
inverts dark-on-light pictures (ink on paper), yes and no force it (colour models
are inverted only with yes). A picture is judged as the run judged its test images:
with the run's test-time augmentation (its `tta` setting: mirror images, 1-pixel shifts).
More than 1,000 files are listed as tab-separated lines instead of a table.
--json prints per file {"file": ..., "top": [{"label": "7", "probability": 0.98}, ...],
"inverted": true}, or {"file": ..., "error": "..."} for a file that could not be read.
Exit status: 0 all files predicted, 1 some could not be read (each named on stderr),
2 a usage problem (e.g. no such checkpoint).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k labels with probabilities for image files or folders of them",
        description="Classify image files with a trained checkpoint.",
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    p.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE_OR_FOLDER", help="image files or folders"
    )
    p.add_argument(
        "--top-k", type=positive_int, default=3, metavar="K", help="labels per image (default 3)"
    )
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per file")
    p.add_argument(
        "--invert",
        choices=["auto", "yes", "no"],
        default="auto",
        help="gray models: make dark-on-light pictures light-on-dark like MNIST (default auto)",
    )
    p.add_argument(
        "--locate",
        choices=["auto", "on", "off"],
        default="auto",
        help="crop each picture to its largest figure (the biggest blob that stands out "
        "from the border's colour) before scaling it to the model's input, so a digit "
        "filling a fifth of a photo is not shrunk to a few pixels; a picture the figure "
        "already mostly fills is left whole. auto (default): on for digit models (mnist, "
        "digits-wild, svhn), off for the rest",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per batch (default 256)"
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_predict)


TABLE_ROWS = 1000


def cmd_predict(args: argparse.Namespace) -> int:
    import json
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from cnnlab.inference.predict import Prediction, find_images, predict_files
    from cnnlab.training.checkpoint import load_checkpoint

    # Pillow warns about blemishes it reads past (corrupt EXIF, palette transparency):
    # thousands of files would bury the one line per unreadable file that matters.
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    ckpt = load_checkpoint(args.checkpoint)
    files = find_images(args.images)
    show_bar = not args.json and console.is_terminal
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show_bar,
    )
    task = progress.add_task("predicting", total=len(files))
    # Rich lays a table out at about 1 ms a row: fine for a screenful, 10 s for 10,000
    # files. Past TABLE_ROWS the rows stream out as they are predicted instead, as
    # tab-separated lines (file, then "label probability%" per rank).
    as_table = not args.json and len(files) <= TABLE_ROWS
    done: list[Prediction] = []
    failed = 0
    with progress:
        for pred in predict_files(
            ckpt,
            files,
            top_k=args.top_k,
            invert=args.invert,
            locate=args.locate,
            batch_size=args.batch_size,
            device=args.device,
            on_batch=lambda n: progress.advance(task, n),
        ):
            if pred.error is not None:
                failed += 1
                err_console.print(f"cnnlab: {escape(pred.error)}", highlight=False, soft_wrap=True)
            if args.json:
                sys.stdout.write(json.dumps(pred.to_json()) + "\n")
            elif pred.error is not None:
                continue
            elif as_table:
                done.append(pred)
            else:
                cells = (f"{label} {100 * p:.1f}%" for label, p in pred.top)
                sys.stdout.write("\t".join((str(pred.path), *cells)) + "\n")
    if done:
        k = len(done[0].top)
        table = Table(
            title=f"{ckpt.model_spec.get('name', 'model')}: top {k} of {len(ckpt.classes)}"
        )
        table.add_column("file", overflow="fold")
        for rank in range(1, k + 1):
            table.add_column(f"#{rank}", justify="right")
        for pred in done:
            cells = [f"{label} [dim]{100 * p:5.1f}%[/dim]" for label, p in pred.top]
            table.add_row(str(pred.path), *cells)
        console.print(table)
    if failed:
        err_console.print(
            f"cnnlab: {failed} of {len(files)} files could not be read", highlight=False
        )
        return 1
    return 0
