"""The claims and the variant-vs-baseline comparisons of a study as one family of tests,
in the report's own types: looked at once (fixed seeds: Holm's step-down procedure) or
look by look (seeds until decided: :mod:`cnnlab.claims.sequential_verdicts`).

A decided hypothesis shows its numbers at the look that decided it. Its "adjusted p" is
Holm's with one look; with several, the look's p scaled to the boundary it was held to,
``p * alpha / nominal`` (at most 1): below alpha exactly when the boundary was crossed.
Its interval is at confidence ``1 - nominal`` (the level it was held to), so it excludes
0 exactly when the test rejects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cnnlab import stats
from cnnlab.claims.claim import Claim
from cnnlab.claims.sequential_verdicts import (
    OPEN,
    SequentialVerdict,
    comparison_claim,
    family,
    judge_sequential,
)
from cnnlab.claims.verdicts import ClaimVerdict, explain, judge_claims
from cnnlab.stats.sequential import SequentialDesign
from cnnlab.study.store.results import StudyResults

PENDING = ("pending", "running", "interrupted")


def design_of(stored: Mapping[str, Any]) -> SequentialDesign:
    return SequentialDesign(tuple(stored["looks"]), stored["alpha"], stored["spending"])


def looks_complete(results: StudyResults, stored: Mapping[str, Any]) -> int:
    """The looks planned so far whose runs have all ended: a report made while the last
    look's seeds still train judges the looks before it."""
    looks, pool = stored["looks"], stored["seeds"]
    planned = min(int(stored["looks_planned"]), len(looks))
    for k in range(planned):
        new = set(pool[(looks[k - 1] if k else 0) : looks[k]])
        if any(r.seed in new and r.status in PENDING for r in results.runs):
            return k
    return planned


def scaled_p(v: SequentialVerdict, alpha: float) -> float | None:
    """The look's p scaled to the boundary it was held to: below ``alpha`` exactly when it
    crossed; with one look, Holm's adjusted p (``adjusted``)."""
    if v.adjusted is not None:
        return v.adjusted
    if v.p is None or v.nominal is None:
        return None
    return min(1.0, v.p * alpha / v.nominal) if v.nominal > 0 else 1.0


def _look_text(v: SequentialVerdict, design: SequentialDesign) -> str:
    total = len(design.looks)
    where = f"look {(v.look or 0) + 1} of {total}, {v.seeds} seeds a variant"
    bar = f"p {v.p:.3g} against its boundary {v.nominal:.3g}" if v.p and v.nominal else ""
    if v.decided:
        return f"Decided at {where} ({bar})."
    if v.verdict == OPEN:
        return f"Open after {where}: more seeds to come."
    return f"Still open at the last look ({where}{'; ' + bar if bar else ''})."


def claim_verdict(
    v: SequentialVerdict, design: SequentialDesign | None, alpha: float, runs: dict[str, int]
) -> ClaimVerdict:
    """The report's verdict of a claim; ``design``: the looks that decided it (None: fixed
    seeds, one look at all of them)."""
    seeds = {name: v.seeds for name in v.claim.variants} if design else {
        name: runs.get(name, 0) for name in v.claim.variants
    }  # fmt: skip
    out = ClaimVerdict(
        v.claim, v.verdict, "", "", p=v.p, p_holm=scaled_p(v, alpha), direction=v.direction,
        diff=v.diff, ci_low=v.ci_low, ci_high=v.ci_high, means=v.means, seeds=seeds,
        confidence=1 - (v.nominal or 0.05),
    )  # fmt: skip
    _, out.reason = explain(out, alpha)
    out.test = v.test
    if design is not None:
        out.reason += " " + _look_text(v, design)
    return out


def _comparison(
    v: SequentialVerdict | None,
    variant: str,
    baseline: str,
    by_seed: Mapping[str, Mapping[int, float]],
    alpha: float,
) -> Any:
    """The variant-vs-baseline row of a hypothesis on that pair (its sign made variant
    minus baseline); untested (a side with fewer than two runs): the observed difference."""
    n = {k: len(xs) for k, xs in by_seed.items()}
    if v is None or v.p is None or v.diff is None:
        means = [np.mean(list(by_seed[k].values())) for k in (variant, baseline) if n.get(k)]
        diff = float(means[0] - means[1]) if len(means) == 2 else None
        return stats.Comparison(
            variant, baseline, n.get(variant, 0), n.get(baseline, 0), diff, None, None, None,
            None, None, None, None, stats.NOT_ENOUGH_RUNS,
        )  # fmt: skip
    flip = v.claim.variants[0] != variant
    diff = -v.diff if flip else v.diff
    low, high = (v.ci_low, v.ci_high) if not flip else (
        None if v.ci_high is None else -v.ci_high, None if v.ci_low is None else -v.ci_low
    )  # fmt: skip
    verdict = (stats.BETTER if diff > 0 else stats.WORSE) if v.decided else stats.WITHIN_NOISE
    return stats.Comparison(
        variant, baseline, n.get(variant, 0), n.get(baseline, 0), diff, low, high, None, None,
        v.p, scaled_p(v, alpha), v.method, verdict, 1 - (v.nominal or 0.05),
    )  # fmt: skip


def one_look(results: StudyResults, alpha: float) -> dict[str, Any]:
    """A study of fixed seeds as a design of one look at all its seeds: the family's tests
    are then Holm's step-down procedure, each held to alpha / (the tests left)."""
    seeds = sorted({r.seed for r in results.runs})
    return {"looks": [max(1, len(seeds))], "alpha": alpha, "spending": "obrien-fleming",
            "seeds": seeds, "looks_planned": 1}  # fmt: skip


def family_judgement(
    results: StudyResults, names: list[str], baseline: str | None, alpha: float
) -> tuple[list[ClaimVerdict], dict[str, stats.Comparison], str]:
    """The claims' verdicts, the comparisons with the baseline and the method's note: one
    family, looked at once (fixed seeds) or look by look (seeds until decided)."""
    sequential = results.sequential is not None
    stored = results.sequential if sequential else one_look(results, alpha)
    assert stored is not None
    design = design_of(stored)
    by_seed = results.finals_by_seed()
    # Only what can be tested is in the family (two finished runs a side, as Holm's count).
    testable = [v for v in names if len(by_seed.get(v, {})) >= stats.MIN_RUNS]
    measured = [c for c in results.claims if all(v in testable for v in c.variants)]
    hypotheses = family(measured, testable, baseline if baseline in testable else None)
    # Fixed seeds: the finished runs, whatever is still to run; a look waits for its runs.
    looks = looks_complete(results, stored) if sequential else 1
    paired = [f["variants"] for f in results.epoch_families if f["one_run"]]
    verdicts = judge_sequential(hypotheses, by_seed, stored["seeds"], design, looks, paired)
    if not sequential:  # one look: Holm's adjusted p, which agrees with the step-down
        for v, p in zip(verdicts, stats.holm([x.p for x in verdicts]), strict=True):
            v.adjusted = p
    of_claim = dict(zip(hypotheses, verdicts, strict=True))
    counts = {v: len(xs) for v, xs in by_seed.items()}
    claims = [
        claim_verdict(of_claim[c], design if sequential else None, alpha, counts)
        if c in of_claim
        else _unmeasured(c, by_seed)
        for c in results.claims
    ]
    comparisons: dict[str, stats.Comparison] = {}
    if baseline is not None:
        for v in names:
            if v == baseline:
                continue
            pair = [h for h in hypotheses if set(h.variants) == {v, baseline} and h.form != "same"]
            hypothesis = pair[0] if pair else comparison_claim(v, baseline)
            comparisons[v] = _comparison(of_claim.get(hypothesis), v, baseline, by_seed, alpha)
        comparisons[baseline] = stats.Comparison(
            baseline, baseline, counts.get(baseline, 0), counts.get(baseline, 0), 0.0, None,
            None, None, None, None, None, None, stats.BASELINE,
        )  # fmt: skip
    note = (
        method_note(design, looks, len(hypotheses)) if sequential else family_note(len(hypotheses))
    )
    return claims, comparisons, note


def _unmeasured(claim: Claim, by_seed: Mapping[str, Mapping[int, float]]) -> ClaimVerdict:
    """A claim a variant of which has no finished runs: not measured, saying which."""
    finals = {v: list(xs.values()) for v, xs in by_seed.items()}
    return judge_claims([claim], finals)[0]


def family_note(family_size: int) -> str:
    return (
        f"One family: the claims and the comparisons with the baseline ({family_size} tests) "
        "are adjusted together with Holm's method, so a comparison has one p-value and one "
        "verdict wherever it appears. Each interval of a difference is at the level its test "
        "was held to (1 − alpha / the tests left at its step), so it excludes zero exactly "
        "when the verdict is a difference."
    )


def method_note(design: SequentialDesign, looks: int, family_size: int) -> str:
    return (
        f"Seeds until decided: the claims and the comparisons with the baseline "
        f"({family_size} in all) are one Holm family of group-sequential tests, "
        f"{design.describe()}. After each look, what crossed its boundary is decided and "
        "gets no more seeds; the variants of what is open get the next look's seeds. The "
        "family-wise false-positive rate over every look and every test stays at alpha "
        "(Holm's procedure over the tests as Maurer and Bretz apply it to group-sequential "
        "designs). An adjusted p is the look's p scaled to its boundary (p x alpha / "
        "boundary: below alpha exactly when it crossed), and intervals of differences are at "
        f"the boundary's confidence. Looks done: {looks} of {len(design.looks)}."
    )
