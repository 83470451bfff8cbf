"""`cnnlab runs`: list a study folder's runs, or forget some (their results and folders)
so that the next `cnnlab run` trains them afresh."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cnnlab.cli.common import console
from cnnlab.errors import CnnlabError
from cnnlab.stats.formatting import counted

EPILOG = """\
examples:
  cnnlab runs ls runs/quick-fashion                      every run: id, variant, seed, status
  cnnlab runs rm runs/quick-fashion --variant MLP --seed 2   forget one run
  cnnlab runs rm runs/quick-fashion --status failed      forget the failed runs
  cnnlab runs rm runs/quick-fashion 3f2a9c1e             by run id (a prefix will do)

`rm` deletes the runs' folders and their results in study.sqlite; they stay in the plan,
pending, so the next `cnnlab run` of the study trains them again. Refused while a
`cnnlab run` works in the folder.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list a study folder's runs, or forget some so they train again",
        description="List the runs of a study folder, or remove some: their results and folders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="{ls,rm}")
    ls = actions.add_parser("ls", help="every run of the folder, with its status and result")
    ls.add_argument("study_dir", type=Path, help="a study folder (written by cnnlab run)")
    rm = actions.add_parser("rm", help="forget runs: delete their folders and stored results")
    rm.add_argument("study_dir", type=Path, help="a study folder (written by cnnlab run)")
    rm.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="run ids (or prefixes)")
    rm.add_argument("--variant", help="the runs of this variant")
    rm.add_argument("--seed", type=int, help="the runs of this seed")
    rm.add_argument("--status", choices=["done", "failed", "interrupted", "pending"],
                    help="the runs with this status")  # fmt: skip
    p.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    from cnnlab.study.store.database import load_results

    results = load_results(args.study_dir, all_runs=True)
    if args.action == "ls":
        root = Path(args.study_dir).absolute()
        table = Table(title=f"{results.name}: {counted(len(results.runs), 'run')} in {root}")
        for label in ("run id", "variant", "seed", "status", "final test acc", "folder"):
            table.add_column(label, overflow="fold")
        for r in results.runs:
            acc = "—" if r.final_test_acc is None else f"{100 * r.final_test_acc:.2f}%"
            folder = r.run_dir.relative_to(root) if r.run_dir.is_relative_to(root) else r.run_dir
            table.add_row(r.run_id, r.variant, str(r.seed), r.status, acc, str(folder))
        console.print(table)
        return 0
    chosen = [
        r for r in results.runs
        if (not args.run_ids or any(r.run_id.startswith(i) for i in args.run_ids))
        and (args.variant is None or r.variant == args.variant)
        and (args.seed is None or r.seed == args.seed)
        and (args.status is None or r.status == args.status)
    ]  # fmt: skip
    if not (args.run_ids or args.variant or args.seed is not None or args.status):
        raise CnnlabError("runs rm: say which runs (run ids, --variant, --seed or --status)")
    if not chosen:
        raise CnnlabError(f"runs rm: no run of {args.study_dir} matches; see cnnlab runs ls")
    _forget(args.study_dir, chosen)
    for r in chosen:
        console.print(escape(f"forgot {r.run_id} ({r.variant} seed {r.seed}, was {r.status})"),
                      highlight=False, soft_wrap=True)  # fmt: skip
    console.print(f"{counted(len(chosen), 'run')} will train again at the next `cnnlab run`")
    return 0


def _forget(study_dir: Path, runs: list) -> None:
    from cnnlab.study.store.database import Store
    from cnnlab.study.store.lock import study_lock

    with study_lock(study_dir), Store(study_dir) as store:  # refused while a run works there
        store.forget_runs([r.run_id for r in runs])
        for r in runs:
            if r.run_dir.is_dir() and r.run_dir.resolve().is_relative_to(Path(study_dir).resolve()):
                shutil.rmtree(r.run_dir)
