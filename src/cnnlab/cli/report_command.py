"""`cnnlab report` and `cnnlab compare`: a study's statistics, figures and verdicts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cnnlab.cli.common import (
    console,
)
from cnnlab.cli.verdict_view import print_verdicts, verdict_markup

REPORT_EPILOG = """\
examples:
  cnnlab report studies/out/bn-vs-plain             writes report.html, report.md, report.json
  cnnlab report studies/out/bn-vs-plain --format json > numbers.json   numbers only, no files
  cnnlab report studies/out/bn-vs-plain --format csv > runs.csv   one row per run, for pandas
  cnnlab report studies/out/bn-vs-plain --format epochs-csv > epochs.csv   one row per epoch
  cnnlab report runs/lenet5-s0 runs/lenet5-s1 runs/mlp-s0 --out runs/report
                                                    `cnnlab train` run folders as one study
  cnnlab compare studies/out/cpu studies/out/gpu    the matching variants of two studies

A variant is called better or worse than the baseline only when Welch's t-test,
Holm-adjusted over all the variants, gives p < 0.05; otherwise "within noise".
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="statistics, figures and a report (HTML, Markdown, JSON) of a study's runs",
        description="Analyse a study: mean ± CI per variant, Welch tests against the baseline "
        "with Holm's correction, curves, confusion matrix and sample predictions.",
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "study_dir",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="a study's output folder, or `cnnlab train` run folders (or a folder holding "
        "them): runs that differ only in the seed form one variant, the first is the baseline",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the report (default: DIR; needed with several DIRs)",
    )
    p.add_argument(
        "--format",
        choices=["html", "md", "json", "csv", "epochs-csv"],
        default=None,
        help="print this form to stdout: json prints the numbers, csv one row per run "
        "(variant, seed, every setting, final metrics, times, provenance), epochs-csv one "
        "row per epoch of every run (study, variant, seed, run id, epoch, every metric); "
        "these write nothing; html/md write the report and print that file (default: "
        "write it, print a table)",
    )
    p.add_argument(
        "--no-predictions",
        action="store_true",
        help="skip loading the best checkpoint (no confusion matrix or image grids)",
    )
    p.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="the matching variants of two studies side by side, with Welch tests",
        description="Compare two studies (or folders of `cnnlab train` runs): variants are "
        "paired by their settings, then by name; B's final test accuracy is tested against "
        "A's (Welch, Holm-adjusted). Refused when the two are on different data.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument(
        "study_a",
        type=Path,
        metavar="DIR_A",
        help="a study folder, a `cnnlab train` run folder or a folder of them",
    )
    c.add_argument("study_b", type=Path, metavar="DIR_B", help="the same for B")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.add_argument(
        "--allow-different-data",
        action="store_true",
        help="compare even when A and B train or test on different datasets or measure "
        "differently (the verdicts then compare the data as much as the variants)",
    )
    c.set_defaults(func=cmd_compare)


COMPARE_EPILOG = """\
examples:
  cnnlab compare runs/study-cpu runs/study-gpu            two runs of one study file
  cnnlab compare runs/lenet5-seeds runs/lenet5-bn-seeds   folders of `cnnlab train` runs

A run present in both (the same run id, e.g. a copy made before more seeds
finished) is counted once. Exit status 2 when A and B are on different data.
"""


def cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.analysis.numbers import to_json
    from cnnlab.analysis.study_analysis import analyze
    from cnnlab.errors import CnnlabError
    from cnnlab.study.store.folders import load_any

    results = load_any(args.study_dir)
    if args.format in ("csv", "epochs-csv"):
        from cnnlab.analysis.tidy import epochs_csv, runs_csv

        sys.stdout.write((runs_csv if args.format == "csv" else epochs_csv)(results))
        return 0
    if args.format == "json":  # the numbers alone: no figures, so no matplotlib
        sys.stdout.write(to_json(analyze(results)))
        return 0
    from cnnlab.analysis.render import write_report

    if args.out is None and len(args.study_dir) > 1:
        raise CnnlabError("several folders make one report: say where with --out DIR")
    out = args.out or args.study_dir[0]
    if args.format is None:
        with console.status("writing the report..."):
            paths = write_report(results, out, predictions=not args.no_predictions)
    else:
        paths = write_report(results, out, predictions=not args.no_predictions)
        sys.stdout.write(paths[0 if args.format == "html" else 1].read_text())
        return 0
    print_verdicts(analyze(results))
    console.print(f"report: {paths[0]}  (also {paths[1].name}, {paths[2].name})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from cnnlab.analysis.compare import compare_studies
    from cnnlab.stats.formatting import fmt_p, fmt_pct, fmt_pts
    from cnnlab.study.store.folders import load_any

    a, b = load_any([args.study_a]), load_any([args.study_b])
    result = compare_studies(a, b, allow_different_data=args.allow_different_data)
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2, allow_nan=False) + "\n")
        return 0

    def cell(d: dict | None) -> str:
        if d is None or d["mean"] is None:
            return "—"
        text = fmt_pct(d["mean"])
        if d["ci_low"] is not None:
            text += f" [{fmt_pct(d['ci_low'])}, {fmt_pct(d['ci_high'])}]"
        return f"{text} (n={d['n']})"

    table = Table(title=f"final test accuracy: A = {a.name}, B = {b.name} (mean [95% CI])")
    for label in ("variant", "A", "B", "B − A, points [CI]", "p (Welch)", "p (Holm)"):
        table.add_column(label, justify="left" if label == "variant" else "right")
    table.add_column("verdict")
    for row in result["variants"]:
        t = row["b_minus_a"]
        diff = p = p_holm = verdict = "—"
        if t is not None:
            verdict = verdict_markup(t["verdict"])
            if t.get("diff") is not None:
                diff = f"{fmt_pts(t['diff'])} [{fmt_pts(t['ci_low'])}, {fmt_pts(t['ci_high'])}]"
                p, p_holm = fmt_p(t["p"]), fmt_p(t["p_holm"])
        table.add_row(row["variant"], cell(row["a"]), cell(row["b"]), diff, p, p_holm, verdict)
    console.print(table)
    for note in result["notes"]:
        console.print(f"[yellow]! {escape(note)}[/yellow]", highlight=False, soft_wrap=True)
    return 0
