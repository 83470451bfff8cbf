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

REPORT_EPILOG = """\
examples:
  cnnlab report studies/out/bn-vs-plain             writes report.html, report.md, report.json
  cnnlab report studies/out/bn-vs-plain --format json > numbers.json   numbers only, no files
  cnnlab compare studies/out/cpu studies/out/gpu    same-named variants of two studies

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
    p.add_argument("study_dir", type=Path, metavar="DIR", help="a study's output folder")
    p.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: DIR)"
    )
    p.add_argument(
        "--format",
        choices=["html", "md", "json"],
        default=None,
        help="print this form to stdout: json prints the numbers and writes nothing; "
        "html/md write the report and print that file (default: write it, print a table)",
    )
    p.add_argument(
        "--no-predictions",
        action="store_true",
        help="skip loading the best checkpoint (no confusion matrix or image grids)",
    )
    p.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="the variants of two studies side by side, with Welch tests between same names",
    )
    c.add_argument("study_a", type=Path, metavar="DIR_A")
    c.add_argument("study_b", type=Path, metavar="DIR_B")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.set_defaults(func=cmd_compare)


def verdict_markup(verdict: str) -> str:
    color = {"better": "green", "worse": "red", "higher in B": "green", "lower in B": "red"}.get(
        verdict, "dim" if verdict == "within noise" else "yellow"
    )
    return f"[{color}]{verdict}[/{color}]"


def cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.analysis.numbers import analyze, to_json
    from cnnlab.study.store import load_results

    results = load_results(args.study_dir)
    if args.format == "json":  # the numbers alone: no figures, so no matplotlib
        sys.stdout.write(to_json(analyze(results)))
        return 0
    from cnnlab.analysis.render import write_report
    from cnnlab.analysis.tables import display_rows

    out = args.out or args.study_dir
    if args.format is None:
        with console.status("writing the report..."):
            paths = write_report(results, out, predictions=not args.no_predictions)
    else:
        paths = write_report(results, out, predictions=not args.no_predictions)
        sys.stdout.write(paths[0 if args.format == "html" else 1].read_text())
        return 0
    analysis = analyze(results)
    table = Table(title=f"{results.name} on {results.dataset}: final test accuracy")
    for label in ("variant", "runs", "mean ± std", "95% CI", "Δ vs baseline [CI]", "p (Holm)"):
        table.add_column(label, justify="left" if label == "variant" else "right")
    table.add_column("verdict")
    for row in display_rows(analysis):
        table.add_row(
            row["variant"],
            row["runs"],
            row["acc"],
            row["ci"],
            row["diff"],
            row["p_holm"],
            verdict_markup(row["verdict"]),
        )
    console.print(table)
    for sentence in analysis.summary:
        console.print(f"- {escape(sentence)}", highlight=False)
    for warning in analysis.warnings:
        console.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False)
    console.print(f"report: {paths[0]}  (also {paths[1].name}, {paths[2].name})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from cnnlab.analysis.compare import compare_studies
    from cnnlab.analysis.formatting import fmt_p, fmt_pct, fmt_pts
    from cnnlab.study.store import load_results

    a, b = load_results(args.study_a), load_results(args.study_b)
    result = compare_studies(a, b)
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
    return 0
