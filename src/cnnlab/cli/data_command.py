"""`cnnlab data list` and `cnnlab data show`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from cnnlab.cli.common import (
    DATASET_HELP,
    add_data_dir,
    console,
)


def cmd_data_list(args: argparse.Namespace) -> int:
    from cnnlab.data.datasets import ENTRIES
    from cnnlab.data.sources import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    table = Table(title=f"datasets (data dir: {data_dir})")
    table.add_column("name")
    table.add_column("available")
    table.add_column("where / expected", overflow="fold")  # a path whole, over lines
    table.add_column("what")
    for name, entry in ENTRIES.items():
        found, searched = entry.locate(data_dir)
        if found is None:
            where = f"{searched[0]}/: {entry.expected}" if searched else entry.expected
            table.add_row(name, "[red]no[/red]", where, entry.description)
        else:
            table.add_row(name, "[green]yes[/green]", str(found.location), entry.description)
    table.add_row(
        "folder:PATH", "-", "PATH/<class>/*.png|jpg, or a .tar/.tar.gz of it", "your own images"
    )
    console.print(table)
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from cnnlab.data.datasets import load_dataset
    from cnnlab.data.preview import class_counts, save_sample_grid

    with console.status(f"loading {args.name}..."):
        data = load_dataset(args.name, args.data_dir, download=args.download)
    c, h, w = data.shape
    table = Table(
        title=f"{data.name}: {len(data.train)} train / {len(data.test)} test, {c}x{h}x{w}"
    )
    table.add_column("class")
    table.add_column("name")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    for i, (name, n_train, n_test) in enumerate(class_counts(data)):
        table.add_row(str(i), name, str(n_train), str(n_test))
    console.print(table)
    console.print(f"source: {data.source}")
    safe = data.name.replace("/", "_").replace(":", "_")
    out = args.out or Path(f"{safe}-samples.png")
    save_sample_grid(data, out, per_class=args.per_class)
    console.print(f"sample grid: {out}")
    if args.name.split(":")[0] == "digits-wild":
        _show_fonts(out.with_name(f"{safe}-fonts.csv"), args.fonts)
    return 0


def _show_fonts(listing: Path, print_all: bool) -> None:
    """Which fonts the printed digits use, on which side of the split, and which were left
    out and why: a CSV beside the grid, a summary (or with --fonts every face) here."""
    import csv
    import io

    from cnnlab.atomic import atomic_write_text
    from cnnlab.data.font_pool import font_rows, load_pool, side_counts

    pool = load_pool()
    rows = font_rows(pool)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(listing, buffer.getvalue())
    kept = len(pool.atlas.fonts)
    sides = "; ".join(
        f"{side} ({domain}): {faces} figure sets in {groups} family groups"
        for side, domain, faces, groups in side_counts(pool)
    )
    console.print(
        f"fonts: {len({r['font'] for r in rows})} faces, {kept} figure sets draw digits "
        f"(lining and old-style: the 'figures' column); {sides}; "
        f"{len(pool.atlas.rejected)} faces left out. Every face and why: {listing}"
    )
    if print_all:
        table = Table(title="fonts of the printed digits")
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*row.values())
        console.print(table)


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="list datasets, show class counts and sample images")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    dl = data_sub.add_parser(
        "list", help="each built-in dataset, whether it is available and where"
    )
    add_data_dir(dl)
    dl.set_defaults(func=cmd_data_list)
    ds = data_sub.add_parser(
        "show",
        help="class counts per split and a PNG grid of sample images",
        description="Load a dataset, print its counts per class and save a grid of samples.",
    )
    ds.add_argument("name", help=DATASET_HELP)
    ds.add_argument(
        "--out", type=Path, default=None, help="PNG to write (default: <name>-samples.png)"
    )
    ds.add_argument("--per-class", type=int, default=8, help="sample images per class (default 8)")
    ds.add_argument(
        "--fonts",
        action="store_true",
        help="digits-wild: print every font face, its family group and side (seen or "
        "unseen), and each face left out with the reason (always written to a CSV)",
    )
    add_data_dir(ds)
    ds.set_defaults(func=cmd_data_show)
