"""The report in words: summary sentences and warnings from the numbers.

A variant is called better or worse ONLY when its verdict says so, and verdicts come
from :func:`cnnlab.stats.verdict_for` (Holm-adjusted p < alpha); the sentences
only repeat them.
"""

from __future__ import annotations

from cnnlab import stats
from cnnlab.analysis.numbers import StudyNumbers, VariantNumbers
from cnnlab.stats.formatting import counted, fmt_pct, fmt_pts, p_phrase


def _diff_text(c: stats.Comparison) -> str:
    text = f"{fmt_pts(c.diff)} points"
    if c.diff_ci_low is not None:
        ci = f"{100 * c.confidence:.4g}% CI"
        text += f" ({ci} {fmt_pts(c.diff_ci_low)} to {fmt_pts(c.diff_ci_high)})"
    return text


def _power_text(v: VariantNumbers) -> str:
    """What a within-noise test could have seen, and what it would take."""
    p = v.power
    if p is None:
        return ""
    seeds = (
        "no practical number of seeds would show the observed difference"
        if p.seeds_to_detect is None
        else f"{p.seeds_to_detect} seeds a side would detect the observed one"
    )
    return (
        f" (with these seeds only differences of {100 * p.minimum_detectable:.2f} points or "
        f"more had an 80% chance to show; {seeds})"
    )


def _verdict_sentences(numbers: StudyNumbers) -> list[str]:
    alpha = numbers.alpha
    adjusted = "sequentially adjusted" if numbers.sequential else "Holm-adjusted"
    correction = "the sequential boundaries" if numbers.sequential else "Holm's correction"
    sentences: list[str] = []
    noise: list[str] = []
    for v in numbers.variants:
        c = v.vs_baseline
        if c is None or v.is_baseline:
            continue
        if c.verdict in (stats.BETTER, stats.WORSE):
            assert c.p_holm is not None and c.p_holm < alpha  # the only way to get here
            sentences.append(
                f"'{v.name}' is {c.verdict} than the baseline: {_diff_text(c)} of accuracy "
                f"({adjusted} {p_phrase(c.p_holm)}, below alpha {alpha:g})."
            )
        elif c.verdict == stats.WITHIN_NOISE:
            noise.append(
                f"'{v.name}' {_diff_text(c)}, adjusted {p_phrase(c.p_holm)}{_power_text(v)}"
            )
        elif c.verdict == stats.NOT_ENOUGH_RUNS:
            observed = (
                f" The observed difference, {fmt_pts(c.diff)} points, is not evidence either way."
                if c.diff is not None
                else ""
            )
            sentences.append(
                f"'{v.name}' cannot be tested: it has {c.n_variant} finished "
                f"run{'s' if c.n_variant != 1 else ''} and the baseline {c.n_baseline}; a test "
                f"needs at least {stats.MIN_RUNS} on each side." + observed
            )
    if noise:
        sentences.append(
            "Within noise (no evidence of a difference from the baseline at alpha "
            f"{alpha:g} after {correction}): " + "; ".join(noise) + "."
        )
    return sentences


def _baseline_sentences(numbers: StudyNumbers) -> tuple[list[str], list[str]]:
    baseline = numbers.baseline
    if baseline is None:
        if numbers.declared_baseline:
            return [], [
                f"The baseline '{numbers.declared_baseline}' has no runs in this study: nothing "
                "can be compared."
            ]
        return [], ["No baseline is set: the variants are described but not tested against one."]
    b = numbers.variant(baseline).final_test_acc
    if b.n == 0:
        return [f"The baseline '{baseline}' has no finished runs yet."], []
    spread = f" ± {100 * b.std:.2f}" if b.std is not None else ""
    return [
        f"Baseline '{baseline}': final test accuracy {fmt_pct(b.mean)}{spread} "
        f"(mean ± std over {counted(b.n, 'seed')})."
    ], []


def _run_count_warnings(numbers: StudyNumbers) -> list[str]:
    variants = numbers.variants
    warnings: list[str] = []
    n_done = [v.runs.done for v in variants]
    if n_done and max(n_done) == 1:  # none finished: said below
        warnings.append(
            "Only one run per variant: no spread, no confidence intervals and no significance "
            "test are possible. Repeat each variant over several seeds (3 to 5 at least)."
        )
    else:
        few = [v.name for v in variants if v.runs.done == 1]
        if few:
            warnings.append(f"Only one finished run for: {', '.join(few)}; they are not tested.")
        two = [v.name for v in variants if v.runs.done == 2]
        if two:
            warnings.append(
                f"Only two finished runs for: {', '.join(two)}. With one degree of freedom the "
                "95% interval is ±12.7 standard errors wide, so only huge differences can "
                "show; 3 to 5 seeds give useful intervals."
            )
    failed = numbers.failed_runs
    if failed:
        warnings.append(
            f"{counted(len(failed), 'run')} failed (listed below with their errors); the statistics "
            "use the finished runs only, which may bias them if failures depend on the variant."
        )
    unfinished = sum(v.runs.unfinished for v in variants)
    if unfinished:
        warnings.append(
            f"{counted(unfinished, 'run')} not finished yet (pending, running or interrupted): this report is partial."
        )
    empty = [v.name for v in variants if v.runs.done == 0]
    if empty:
        warnings.append(f"No finished runs for: {', '.join(empty)}.")
    return warnings


def _method_warnings(numbers: StudyNumbers) -> list[str]:
    variants = numbers.variants
    warnings: list[str] = []
    perm = [
        v.name
        for v in variants
        if v.vs_baseline is not None and v.vs_baseline.method == "permutation"
    ]
    if perm:
        warnings.append(
            f"Every seed gave exactly the same accuracy for {', '.join(perm)} and the baseline, "
            "so Welch's test is undefined; an exact permutation test was used instead."
        )
    ceiling = [
        v.name
        for v in variants
        if v.final_test_acc.mean is not None and v.final_test_acc.mean >= 0.999
    ]
    if ceiling:
        warnings.append(
            f"{', '.join(ceiling)} reach{'es' if len(ceiling) == 1 else ''} 99.9% or more: at this "
            "ceiling the test set cannot show which variant is better; use a harder dataset."
        )
    epochs = {v.epochs.configured for v in variants if v.epochs.configured}
    if len(epochs) > 1:
        warnings.append(
            "The variants train for different numbers of epochs "
            f"({', '.join(str(e) for e in sorted(epochs))}): differences may come from "
            "training length alone."
        )
    return warnings


def summarize(numbers: StudyNumbers) -> tuple[list[str], list[str]]:
    """(summary sentences, warnings) of a study's numbers."""
    sentences, warnings = _baseline_sentences(numbers)
    if numbers.claims:
        counts = {}
        for c in numbers.claims:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        parts = [f"{n} {verdict}" for verdict, n in counts.items()]
        sentences.insert(0, f"Claims: {len(numbers.claims)}; " + ", ".join(parts) + ".")
    sentences += _verdict_sentences(numbers)
    best, baseline = numbers.best_variant, numbers.baseline
    on = "validation" if numbers.best_variant_by == "validation" else "test"
    if best is not None and best != baseline and baseline is not None:
        c = numbers.variant(best).vs_baseline
        if c is not None and c.verdict != stats.BETTER:
            sentences.append(
                f"'{best}' has the highest mean {on} accuracy, but that is not evidence that "
                "it is better than the baseline."
            )
    if best is not None and numbers.best_variant_by == "test" and len(numbers.variants) > 1:
        sentences.append(
            f"'{best}' was picked as the best variant by its test accuracy (no validation "
            "split): as a choice among variants that figure is optimistic; set val_fraction to "
            "choose on held-out training data instead."
        )
    return sentences, warnings + _run_count_warnings(numbers) + _method_warnings(numbers)
