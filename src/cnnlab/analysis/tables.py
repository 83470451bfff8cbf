"""The report's tables as display strings, shared by the Markdown, HTML and terminal forms."""

from __future__ import annotations

from cnnlab.analysis import stats
from cnnlab.analysis.formatting import fmt_count, fmt_p, fmt_pct, fmt_pts, fmt_seconds
from cnnlab.analysis.numbers import Sample, StudyNumbers, VariantNumbers

DOMAIN_NOTE = (
    "Final test accuracy on each part of the composite test set (mean ± std over seeds); "
    "the overall figure above weights the parts by their test-set sizes."
)

COLUMNS = [  # the deciding columns first: a narrow screen shows them without scrolling
    ("variant", "variant"),
    ("runs", "runs done / total"),
    ("acc", "final test acc (mean ± std)"),
    ("ci", "95% CI"),
    ("diff", "Δ vs baseline, points [95% CI]"),
    ("p_holm", "p (Holm)"),
    ("verdict", "verdict"),
    ("p", "p (Welch, unadjusted)"),
    ("best", "best-epoch test acc (optimistic)"),
    ("gap", "train − test gap, points"),
    ("reach", "reaches baseline final acc"),
    ("epochs", "epochs"),
    ("seconds", "time / run"),
    ("params", "parameters"),
    ("macs", "MACs / image"),
]


def mean_std(sample: Sample) -> str:
    if sample.mean is None:
        return "—"
    if sample.std is None:
        return f"{fmt_pct(sample.mean)} (1 run)"
    return f"{fmt_pct(sample.mean)} ± {100 * sample.std:.2f}"


def _epochs(v: VariantNumbers) -> str:
    configured, ran = v.epochs.configured, v.epochs.run_mean
    text = "—" if configured is None else str(configured)
    if ran is not None and configured is not None and ran != configured:
        text += f" (ran {ran:.1f})"
    return text


def _runs(v: VariantNumbers) -> str:
    text = f"{v.runs.done}/{v.runs.total}"
    if v.runs.failed:
        text += f", {v.runs.failed} failed"
    if v.runs.unfinished:
        text += f", {v.runs.unfinished} unfinished"
    return text


def _comparison(v: VariantNumbers) -> tuple[str, str, str, str]:
    """(diff [CI], p, p_holm, verdict) against the baseline."""
    c = v.vs_baseline
    if v.is_baseline:
        return "baseline", "—", "—", stats.BASELINE
    if c is None:
        return "—", "—", "—", "—"
    diff = fmt_pts(c.diff)
    if c.diff_ci_low is not None:
        diff += f" [{fmt_pts(c.diff_ci_low)}, {fmt_pts(c.diff_ci_high)}]"
    p = fmt_p(c.p) + (" (perm.)" if c.method == "permutation" else "")
    return diff, p, fmt_p(c.p_holm), c.verdict


def _reach(v: VariantNumbers) -> str:
    ttt = v.time_to_baseline
    if ttt is None:
        return "—"
    if ttt.epoch is None:
        return "never"
    text = f"epoch {ttt.epoch}"
    if ttt.seconds is not None:
        text += f" ({fmt_seconds(ttt.seconds)})"
    return text


def display_rows(numbers: StudyNumbers) -> list[dict[str, str]]:
    """One dict of display strings per variant, keyed like ``COLUMNS``."""
    rows = []
    for v in numbers.variants:
        acc = v.final_test_acc
        diff, p, p_holm, verdict = _comparison(v)
        best = v.best_test_acc_optimistic
        rows.append(
            {
                "variant": v.name,
                "params": "—" if v.params is None else f"{v.params:,}",
                "macs": fmt_count(v.macs_per_image),
                "epochs": _epochs(v),
                "runs": _runs(v),
                "acc": mean_std(acc),
                "ci": f"{fmt_pct(acc.ci_low)} – {fmt_pct(acc.ci_high)}"
                if acc.ci_low is not None
                else "—",
                "diff": diff,
                "p": p,
                "p_holm": p_holm,
                "verdict": verdict,
                "best": f"{fmt_pct(best.mean)} (optimistic)" if best.mean is not None else "—",
                "gap": fmt_pts(v.train_test_gap.mean),
                "seconds": fmt_seconds(v.seconds_per_run.mean),
                "reach": _reach(v),
            }
        )
    return rows


def domain_rows(numbers: StudyNumbers) -> list[dict[str, str]]:
    """Per variant, final test accuracy on each domain of a composite dataset (mean ± std)."""
    rows = []
    for v in numbers.variants:
        row = {"variant": v.name}
        for domain in numbers.domains:
            sample = v.final_test_acc_by_domain.get(domain)
            row[domain] = "—" if sample is None else mean_std(sample)
        rows.append(row)
    return rows
