"""The study report rendered: a Markdown page, a self-contained HTML page and JSON.

``write_report(results, out_dir)`` analyses the results (:mod:`cnnlab.analysis.numbers`),
draws the figures (PNG files beside the Markdown, base64 data URIs inside the HTML) and
writes ``report.html``, ``report.md`` and ``report.json`` atomically.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab import stats
from cnnlab.analysis.factorial_numbers import ANOVA_NOTE, anova_rows
from cnnlab.analysis.figures import Figure, make_figures, prediction_numbers
from cnnlab.analysis.numbers import StudyNumbers, json_safe, to_json
from cnnlab.analysis.search_figures import SEARCH_PREFIX, search_figures
from cnnlab.analysis.search_numbers import SearchNumbers
from cnnlab.analysis.selection import peeking_figures
from cnnlab.analysis.study_analysis import analyze
from cnnlab.analysis.tables import (
    COLUMNS,
    DOMAIN_NOTE,
    PRIMARY_COLUMNS,
    PROVENANCE_COLUMNS,
    SECONDARY_COLUMNS,
    baseline_settings_text,
    claim_rows,
    display_rows,
    domain_rows,
    provenance_rows,
    settings_rows,
)
from cnnlab.atomic import atomic_write_text
from cnnlab.stats.formatting import fmt_p, fmt_pct, fmt_pts, fmt_seconds
from cnnlab.study.store.predictions import Predictions, best_predictions
from cnnlab.study.store.results import StudyResults

METHOD_NOTES = [
    "Each variant is trained once per seed; the metric is the final (last-epoch) test accuracy.",
    "Mean ± sample standard deviation over seeds; the 95% confidence interval of the mean uses "
    "the t distribution with n−1 degrees of freedom (clipped to 0–100%).",
    "Each variant is compared with the baseline by Welch's t-test (no equal-variance "
    "assumption); Δ is the difference of means in percentage points with its Welch interval "
    "at the level its test was held to (clipped to ±100 points).",
    "The p-values are adjusted over the claims and the comparisons together; a variant is "
    "called better or worse only when the adjusted p is below alpha. Otherwise the difference "
    "is within noise: not shown to be zero, but not distinguishable from seed-to-seed variation.",
    "P(run beats baseline run) is the probability that one seed of the variant scores above "
    "one seed of the baseline (ties count half: the Mann-Whitney U over all pairs), with a "
    "stratified percentile-bootstrap 95% interval (2,000 resamples; Newcombe's score "
    "interval where the two sides do not overlap and every resample agrees). With 3 to 5 "
    "seeds a side it is wide and still too narrow when the variants are equal: simulated, "
    "it covers the truth 80% of the time at 3 seeds and 90% at 5.",
    "'Detectable with 80% power' is the smallest true difference that Welch's test, at the "
    "level Holm's correction sets for the first comparison (alpha over the number of "
    "comparisons), finds 4 times in 5 with the observed spreads and seeds (noncentral t); "
    "beside it, how many seeds per side would find the observed difference that often. A "
    "'within noise' verdict says nothing about differences smaller than that.",
    "Claims ([[claim]] in the study file) are tested on the final test accuracy, in one "
    "family with the comparisons: better/worse by Welch's t-test; same by two one-sided "
    "Welch tests against the claim's margin (equivalence); increasing/decreasing by "
    "Kendall's tau between the position in the list and each run's accuracy "
    "(Jonckheere-Terpstra); a peak by that trend test on both sides of it, both required "
    "(a side going the wrong way contradicts it when its p, doubled for the two sides, "
    "stays below alpha after Holm's correction).",
    "The best-epoch test accuracy picks the epoch by looking at the test set and is therefore "
    "optimistic; it is shown for reference, never compared.",
    "The train − test gap uses the running train accuracy of the last epoch (augmentation and "
    "dropout on), so it can be negative.",
    "'Reaches baseline final acc' is the first epoch at which the variant's mean test-accuracy "
    "curve reaches the baseline's final mean accuracy, with the wall time at that epoch.",
]


def method_notes(numbers: StudyNumbers) -> list[str]:
    """The notes on method; a study with seeds until decided says how it decided first."""
    first = [n for n in (numbers.family_note, *numbers.epoch_notes) if n]
    return [*first, *METHOD_NOTES]


def _factorial_md(numbers: StudyNumbers) -> list[str]:
    f = numbers.factorial
    if f is None:
        return []
    out = ["## Factorial analysis", "", f"Factors: {' x '.join(f.factors)}.", ""]
    if f.anova is None:
        return [*out, f"No table: {f.why_not}.", ""]
    rows = anova_rows(f)
    out += _md_table(["effect", "df", "sum of squares", "F", "p"],
                     [[r["effect"], r["df"], r["ss"], r["f"], r["p"]] for r in rows])  # fmt: skip
    return [*out, "", ANOVA_NOTE, ""]


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(
    numbers: StudyNumbers, figures: Sequence[Figure] = (), generated: str = ""
) -> str:
    study = numbers.study
    out = [f"# Study report: {study.name}", ""]
    meta = f"Dataset **{study.dataset}**"
    if numbers.baseline:
        meta += f", baseline **{numbers.baseline}**"
    meta += f", alpha {numbers.alpha:g}. {numbers.metric.capitalize()} is compared."
    out += [meta, ""]
    if study.description:
        out += [study.description, ""]
    out += ["## Summary", ""]
    out += [f"- {s}" for s in numbers.summary] or ["- No finished runs yet."]
    out.append("")
    if numbers.warnings:
        out += ["**Warnings**", ""] + [f"- ⚠ {w}" for w in numbers.warnings] + [""]
    if numbers.claims:
        out += ["## Claims", ""]
        out += _md_table(
            ["the claim", "its evidence", "measured here", "verdict", "why", "at"],
            [
                [c["says"], c["evidence"], c["measured"], c["verdict"], c["reason"], c["scale"]]
                for c in claim_rows(numbers)
            ],
        )
        out.append("")
    out += _factorial_md(numbers)
    searched = [f for f in figures if f.file.startswith(SEARCH_PREFIX)]
    figures = [f for f in figures if not f.file.startswith(SEARCH_PREFIX)]
    if numbers.search:
        out += _search_md(numbers.search)
        for fig in searched:
            out += [f"![{fig.title}]({fig.file})", "", fig.caption, ""]
    out += ["## Variants", ""]
    rows = display_rows(numbers)
    out += _md_table([c[1] for c in COLUMNS], [[r[k] for k, _ in COLUMNS] for r in rows])
    peeks = "; ".join(peeking_figures(numbers.best_variant_by))
    out += ["", f"These figures looked at the test set to choose something: {peeks}.", ""]
    out += ["## What each variant is", ""]
    out += _md_table(
        ["variant", "settings that differ from the baseline"],
        [[r["variant"], r["what"]] for r in settings_rows(numbers)],
    )
    if numbers.baseline_settings:
        out += ["", "<details><summary>The baseline's settings</summary>", "", "```"]
        out += [*baseline_settings_text(numbers), "```", "", "</details>"]
    if study.file_text:
        out += ["", f"<details><summary>The study file as it was run: {study.file_path}</summary>"]
        out += ["", "```toml", study.file_text.rstrip("\n"), "```", "", "</details>"]
    out.append("")
    if numbers.domains:
        out += ["## Accuracy per domain", ""]
        out += _md_table(
            ["variant", *numbers.domains],
            [[r["variant"], *(r[d] for d in numbers.domains)] for r in domain_rows(numbers)],
        )
        out += ["", DOMAIN_NOTE, ""]
    if figures:
        out += ["## Figures", ""]
        for fig in figures:
            out += [f"### {fig.title}", "", f"![{fig.title}]({fig.file})", "", fig.caption, ""]
    pred = numbers.predictions
    if pred and not pred.get("available"):
        out += [f"Predictions of the best variant are not shown: {pred['reason']}.", ""]
    if numbers.failed_runs:
        out += ["## Failed runs", ""]
        out += _md_table(
            ["variant", "seed", "error", "run folder"],
            [
                [r.variant, r.seed, r.error or "(no error recorded)", r.run_dir]
                for r in numbers.failed_runs
            ],
        )
        out.append("")
    out += ["## Runs", ""]
    out += _md_table(
        ["variant", "seed", "status", "final test acc", "best epoch (optimistic)", "time"],
        [
            [
                r.variant,
                r.seed,
                r.status,
                fmt_pct(r.final_test_acc),
                "—"
                if r.best_test_acc_optimistic is None
                else f"{fmt_pct(r.best_test_acc_optimistic)} @ {r.best_test_epoch}",
                fmt_seconds(r.wall_seconds),
            ]
            for r in numbers.runs
        ],
    )
    out += ["", "## Provenance", ""]
    out += _md_table(
        [label for _, label in PROVENANCE_COLUMNS],
        [[r[k] for k, _ in PROVENANCE_COLUMNS] for r in provenance_rows(numbers)],
    )
    out += ["", "## Method", ""] + [f"- {n}" for n in method_notes(numbers)] + [""]
    out.append(f"_cnnlab {numbers.cnnlab_version}{', ' + generated if generated else ''}._")
    return "\n".join(out) + "\n"


def _search_md(search: SearchNumbers) -> list[str]:
    out = ["## Search", "", search_note(search), ""]
    out += [f"- {w['verdict']}" for w in search.winners] or ["- No trial finished."]
    out += ["", f"Best trials by {search.objective} (the validation split):", ""]
    out += _md_table(
        ["trial", "values", search.objective, "state"],
        [
            [t["number"], t["values"], f"{t['objective']:.4f}", t["state"]]
            for t in search.best_trials
        ],
    )
    return [*out, ""]


def search_note(search: SearchNumbers) -> str:
    c = search.counts
    return (
        f"Optuna's {search.sampler} sampler ({search.pruner} pruner) proposed "
        f"{sum(c.values())} of {search.trials_asked} trials: {c['complete']} complete, "
        f"{c['pruned']} pruned, {c['failed']} failed; each trial is one run on one seed, chosen "
        f"on {search.objective}. The best were then trained over the study's seeds and tested "
        "once, below, against the baseline."
    )


def _jinja_env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("cnnlab.analysis", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(numbers: StudyNumbers, figures: Sequence[Figure] = (), generated: str = "") -> str:
    env = _jinja_env()
    env.filters.update(pct=fmt_pct, pts=fmt_pts, pval=fmt_p, seconds=fmt_seconds)
    verdict_class = {
        stats.BETTER: "better",
        stats.WORSE: "worse",
        stats.WITHIN_NOISE: "noise",
        stats.NOT_ENOUGH_RUNS: "few",
        stats.BASELINE: "base",
    }
    return env.get_template("report.html.j2").render(
        a=numbers,
        primary_columns=PRIMARY_COLUMNS,
        secondary_columns=SECONDARY_COLUMNS,
        rows=display_rows(numbers),
        domain_rows=domain_rows(numbers),
        domain_note=DOMAIN_NOTE,
        settings_rows=settings_rows(numbers),
        claim_rows=claim_rows(numbers),
        factorial=numbers.factorial,
        anova_rows=anova_rows(numbers.factorial) if numbers.factorial else [],
        anova_note=ANOVA_NOTE,
        search=numbers.search,
        search_note=search_note(numbers.search) if numbers.search else "",
        search_figures=[f for f in figures if f.file.startswith(SEARCH_PREFIX)],
        claim_tests=sorted({c.test for c in numbers.claims if c.test != "—"}),
        claim_class={
            "supported": "better",
            "contradicted": "worse",
            "not supported (within noise)": "noise",
            "not measured": "few",
        },
        peeks=peeking_figures(numbers.best_variant_by),
        baseline_settings=baseline_settings_text(numbers),
        provenance_columns=PROVENANCE_COLUMNS,
        provenance_rows=provenance_rows(numbers),
        verdict_class=verdict_class,
        figures=[f for f in figures if not f.file.startswith(SEARCH_PREFIX)],
        method_notes=method_notes(numbers),
        generated=generated,
    )


def write_report(
    results: StudyResults, out_dir: Path, predictions: bool | Predictions | str = True
) -> list[Path]:
    """Write report.html, report.md and report.json (and the PNG figures) into ``out_dir``.

    Returns [report.html, report.md, report.json]. ``predictions``: True shows those of the
    best variant's first finished seed (:func:`cnnlab.study.store.predictions.best_predictions`);
    False skips them (no confusion matrix or image grids); a Predictions (or the reason
    there are none) shows that.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = analyze(results)
    shown: Predictions | str | None = None
    if predictions is True:
        shown = best_predictions(results, numbers.best_variant)
    elif predictions is not False:
        shown = predictions
    if isinstance(shown, Predictions):
        numbers.predictions = json_safe(prediction_numbers(shown))
    else:
        reason = "skipped on request" if shown is None else shown
        numbers.predictions = {"available": False, "reason": reason}
    figures = make_figures(numbers, out_dir, shown)
    if numbers.search is not None:
        figures += search_figures(
            results.study_dir, results.name, numbers.search.objective, out_dir
        )
    numbers.figures = [f.file for f in figures]
    generated = _dt.datetime.now().astimezone().strftime("generated %Y-%m-%d %H:%M %Z")
    paths = [out_dir / "report.html", out_dir / "report.md", out_dir / "report.json"]
    atomic_write_text(paths[0], render_html(numbers, figures, generated))
    atomic_write_text(paths[1], render_markdown(numbers, figures, generated))
    atomic_write_text(paths[2], to_json(numbers))
    return paths
