"""The report's tables as display strings, shared by the Markdown, HTML and terminal forms."""

from __future__ import annotations

from cnnlab import stats
from cnnlab.analysis.numbers import Sample, StudyNumbers, VariantNumbers
from cnnlab.analysis.settings import show
from cnnlab.claims.verdicts import ClaimVerdict
from cnnlab.stats.formatting import fmt_count, fmt_p, fmt_pct, fmt_pts, fmt_seconds

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
    ("improvement", "P(beats baseline) [95% CI]"),
    ("detectable", "detectable with 80% power, points"),
    ("p", "p (Welch, unadjusted)"),
    ("best", "best-epoch test acc (optimistic)"),
    ("gap", "train − test gap, points"),
    ("reach", "reaches baseline final acc"),
    ("epochs", "epochs"),
    ("seconds", "time / run"),
    ("params", "parameters"),
    ("macs", "MACs / image"),
]


# The report's main table shows these; the rest fold away under it (a 1,400 px window
# shows the main table whole, a phone shows each variant as a card).
PRIMARY = ("variant", "runs", "acc", "ci", "diff", "p_holm", "verdict", "improvement")
PRIMARY_COLUMNS = [c for c in COLUMNS if c[0] in PRIMARY]
SECONDARY_COLUMNS = [COLUMNS[0]] + [c for c in COLUMNS if c[0] not in PRIMARY]


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


def _chance(estimate: float, low: float, high: float) -> str:
    return f"{100 * estimate:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def _improvement(v: VariantNumbers) -> str:
    i = v.improvement
    return "—" if i is None else _chance(i.estimate, i.ci_low, i.ci_high)


def _detectable(v: VariantNumbers) -> str:
    p = v.power
    if p is None:
        return "—"
    seeds = "—" if p.seeds_to_detect is None else str(p.seeds_to_detect)
    return f"≥ {100 * p.minimum_detectable:.2f} (observed needs {seeds} seeds)"


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
                "improvement": _improvement(v),
                "detectable": _detectable(v),
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


def settings_rows(numbers: StudyNumbers) -> list[dict[str, str]]:
    """What each variant is: the settings that differ from the baseline's."""
    rows = []
    for v in numbers.variants:
        if v.is_baseline:
            what = "the baseline (its settings are listed below)"
        elif numbers.baseline is None:
            what = "—"
        elif v.settings_vs_baseline:
            what = "; ".join(
                f"{d['key']}: {show(d['a'])} → {show(d['b'])}" for d in v.settings_vs_baseline
            )
        else:
            what = "the baseline's settings (no difference recorded)"
        rows.append({"variant": v.name, "what": what})
    return rows


def baseline_settings_text(numbers: StudyNumbers) -> list[str]:
    return [f"{key} = {show(value)}" for key, value in numbers.baseline_settings.items()]


PROVENANCE_COLUMNS = [
    ("variant", "variant"),
    ("seed", "seed"),
    ("started", "started (UTC)"),
    ("host", "host"),
    ("device", "device"),
    ("cpu", "CPU"),
    ("versions", "cnnlab · torch · Python · CUDA/cuDNN"),
    ("git", "git commit"),
]


def provenance_rows(numbers: StudyNumbers) -> list[dict[str, str]]:
    """Where and with what each run trained, as recorded when it started."""
    rows = []
    for r in numbers.runs:
        p = r.provenance
        if p is None:
            rows.append(
                {k: "—" for k, _ in PROVENANCE_COLUMNS}
                | {"variant": r.variant, "seed": str(r.seed), "device": r.device or "—"}
            )
            continue
        cuda = "no CUDA" if p["cuda"] is None else f"CUDA {p['cuda']} / cuDNN {p['cudnn'] or '—'}"
        git = "—" if p["git_commit"] is None else p["git_commit"][:10]
        if p["git_dirty"]:
            git += " (uncommitted changes)"
        rows.append(
            {
                "variant": r.variant,
                "seed": str(r.seed),
                "started": p["started"].replace("T", " ").removesuffix("+00:00"),
                "host": p["host"],
                "device": p["device"],
                "cpu": p["cpu"],
                "versions": f"{p['cnnlab']} · {p['torch']} · {p['python']} · {cuda}",
                "git": git,
            }
        )
    return rows


def _claim_measure(c: ClaimVerdict) -> str:
    if c.verdict == "not measured":
        return "—"
    p = fmt_p(c.p_holm)
    if c.claim.form in ("better", "worse", "same"):
        text = (
            f"Δ {fmt_pts(c.diff)} [{fmt_pts(c.ci_low)}, {fmt_pts(c.ci_high)}] points, p (Holm) {p}"
        )
        if c.improvement is not None:
            i = c.improvement
            # The chance is the claim's direction (for `worse`, the `than` variant winning):
            # name both sides, or it reads as the first variant's chance.
            a, b = c.claim.variants[:2]
            winner, loser = (b, a) if c.claim.form == "worse" else (a, b)
            chance = _chance(i["estimate"], i["ci_low"], i["ci_high"])
            text += f", P('{winner}' beats '{loser}') {chance}"
        return text
    means = " → ".join("—" if m is None else f"{100 * m:.2f}" for m in c.means.values())
    return f"means {means}%, p (Holm) {p}"


def claim_rows(numbers: StudyNumbers) -> list[dict[str, str]]:
    """Each claim: the words, the seed's evidence, the measurement, the verdict and why,
    and the scale it was measured at (a short run can rank variants differently)."""
    rows = []
    epochs = {v.name: v.epochs.configured for v in numbers.variants}
    scale = numbers.study.epochs_scale
    for c in numbers.claims:
        seeds = min(c.seeds.values(), default=0)
        spans = sorted({e for v in c.claim.variants if (e := epochs.get(v)) is not None})
        span = "—" if not spans else str(spans[0]) if len(spans) == 1 else f"{spans[0]}–{spans[-1]}"
        unit = "epoch" if span == "1" else "epochs"
        where = f"{seeds} seed{'s' if seeds != 1 else ''}, {span} {unit}" + (
            f" (×{scale:g} of the file's)" if scale else ""
        )
        if not set(c.claim.variants) <= epochs.keys():
            where = "—"  # a variant not run in this folder: it has no seeds or epochs here
        rows.append(
            {
                "says": c.claim.says,
                "evidence": c.claim.evidence or "—",
                "measured": _claim_measure(c),
                "verdict": c.verdict,
                "reason": c.reason,
                "scale": where,
                "test": c.test,
            }
        )
    return rows
