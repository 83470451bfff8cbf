"""A verdict for each ``[[claim]]`` of a study, from the final test accuracies over seeds.

Each claim is one hypothesis test; the claims of a study are one family, Holm-adjusted:

* better / worse: Welch's t-test of the two variants (two-sided); *supported* when the
  adjusted p < alpha in the claimed direction, *contradicted* when in the other.
* same: equivalence within ``margin`` points by two one-sided Welch tests (TOST; its p is
  the larger one-sided p); *supported* when the adjusted p < alpha, *contradicted* when
  the 95% interval of the difference lies wholly beyond the margin.
* increasing / decreasing: Kendall's tau between a run's position in the list and its
  accuracy (the Jonckheere-Terpstra trend test), every seed of every variant a point.
* peak: the same trend test rising up to the peak and falling after it; both must hold,
  so its p is the larger of the two (an intersection-union test). When a side goes the
  wrong way, the claim's p is instead that side's p doubled (either side could have), so a
  *contradicted* peak, like every verdict, rests on a Holm-adjusted p below alpha.

Otherwise *not supported (within noise)*; a claim whose variants have fewer than two
finished runs each is *not measured*.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import stdtr

from cnnlab import stats
from cnnlab.claims.claim import Claim
from cnnlab.stats.factorial import contrast
from cnnlab.stats.formatting import fmt_pts
from cnnlab.stats.improvement import improvement

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported (within noise)"
CONTRADICTED = "contradicted"
NOT_MEASURED = "not measured"


@dataclass
class ClaimVerdict:
    claim: Claim
    verdict: str
    reason: str
    test: str  # the test used, in words
    p: float | None = None
    p_holm: float | None = None
    direction: int = 0  # +1 the claimed way, -1 the other way, 0 none
    wrong_side: str = ""  # peak: "before" or "after" it when that side goes the wrong way
    diff: float | None = None  # better/worse/same: mean(first) - mean(second)
    ci_low: float | None = None
    ci_high: float | None = None
    improvement: dict[str, Any] | None = None
    means: dict[str, float | None] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    confidence: float = stats.CONFIDENCE  # of the interval (sequential: the boundary's)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["claim"] = self.claim.model_dump(mode="json")
        return out


def _kendall(groups: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(tau, two-sided p) of position against value."""
    from scipy.stats import kendalltau  # scipy.stats is slow to import: only with claims

    x = [i for i, g in enumerate(groups) for _ in g]
    y = [v for g in groups for v in g]
    result = kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def _one_sided_welch(a: Sequence[float], b: Sequence[float], shift: float, upper: bool) -> float:
    """p of H0: mean(a) - mean(b) >= shift (upper) or <= shift (lower), Welch."""
    w = stats.welch(a, b)
    assert w is not None
    if w.se == 0:
        return 0.0 if (w.diff < shift if upper else w.diff > shift) else 1.0
    t = (w.diff - shift) / w.se
    return float(stdtr(w.dof, t)) if upper else float(stdtr(w.dof, -t))


def _pair(claim: Claim, a: list[float], b: list[float], confidence: float) -> ClaimVerdict:
    w = stats.welch(a, b, confidence, (-1.0, 1.0))
    assert w is not None
    verdict = ClaimVerdict(claim, "", "", test_name(claim), diff=w.diff, ci_low=w.ci_low,
                           ci_high=w.ci_high)  # fmt: skip
    better_first = claim.form != "worse"
    imp = improvement(a if better_first else b, b if better_first else a, confidence)
    verdict.improvement = None if imp is None else imp.to_dict()
    if claim.form == "same":
        m = (claim.margin or 0.0) / 100
        verdict.p = max(_one_sided_welch(a, b, m, True), _one_sided_welch(a, b, -m, False))
        beyond = w.ci_low > m or w.ci_high < -m
        verdict.direction = -1 if beyond else 1
    else:
        verdict.p = w.p
        sign = 1 if w.diff > 0 else -1 if w.diff < 0 else 0
        verdict.direction = sign if better_first else -sign
    return verdict


def _page(rows: np.ndarray) -> tuple[float, float]:
    """(the trend's sign, two-sided p) of Page's test for ordered alternatives: rows are
    blocks (seeds), columns the variants in order. With two variants it is the sign test
    (exact binomial, ties dropped), which Page's L reduces to there."""
    from scipy.stats import binomtest, page_trend_test

    if rows.shape[1] == 2:
        diff = rows[:, 1] - rows[:, 0]
        up, down = int((diff > 0).sum()), int((diff < 0).sum())
        if up + down == 0:
            return 0.0, 1.0
        return float(np.sign(up - down)), float(binomtest(up, up + down).pvalue)
    p_up = float(page_trend_test(rows).pvalue)
    p_down = float(page_trend_test(rows[:, ::-1]).pvalue)
    sign = 1.0 if p_up < p_down else -1.0 if p_down < p_up else 0.0
    return sign, min(1.0, 2 * min(p_up, p_down))


PAGE = "Page's test for ordered alternatives, blocked by seed"


def _main_effect(claim: Claim, groups: list[list[float]], confidence: float) -> ClaimVerdict:
    """A factor's level against another, each the mean of its grid points' means: a
    contrast t test on the residual of the full factorial (seeds as replicates)."""
    cells = {(level, i): g for i, (level, g) in enumerate(zip(claim.at, groups, strict=True))}
    first, second = claim.levels
    c = contrast(cells, 0, first, second)
    verdict = ClaimVerdict(claim, "", "", test_name(claim))
    if c is None:
        return verdict
    half = stats.t_quantile(confidence, c.df) * c.se
    verdict.p, verdict.diff = c.p, c.diff
    verdict.ci_low, verdict.ci_high = c.diff - half, c.diff + half
    sign = 1 if c.diff > 0 else -1 if c.diff < 0 else 0
    verdict.direction = -sign if claim.form == "worse" else sign
    return verdict


def _trend(claim: Claim, groups: list[list[float]], rows: np.ndarray | None) -> ClaimVerdict:
    """A trend or peak claim: Kendall's tau over every run, or with ``rows`` (seeds x
    variants: runs paired by seed, as nested epochs are) Page's test blocked by seed."""
    sign = -1 if claim.form == "decreasing" else 1

    def test(part: slice) -> tuple[float, float]:
        return _kendall(groups[part]) if rows is None else _page(rows[:, part])

    name = test_name(claim) if rows is None else PAGE
    if claim.form == "peak":
        k = claim.variants.index(claim.peak or "")
        tau_up, p_up = test(slice(0, k + 1))
        tau_down, p_down = test(slice(k, None))
        verdict = ClaimVerdict(claim, "", "", name)
        wrong = {"before": p_up} if tau_up < 0 else {}
        wrong |= {"after": p_down} if tau_down > 0 else {}
        if wrong:
            verdict.wrong_side = min(wrong, key=wrong.__getitem__)
            verdict.p = min(1.0, 2 * wrong[verdict.wrong_side])
            verdict.direction = -1
        else:
            verdict.p = max(p_up, p_down)
            verdict.direction = 1 if tau_up > 0 and tau_down < 0 else 0
        return verdict
    tau, p = test(slice(None))
    verdict = ClaimVerdict(claim, "", "", name)
    verdict.p = p
    verdict.direction = int(np.sign(tau)) * sign
    return verdict


def test_name(claim: Claim) -> str:
    """The test a claim's form gets, in words."""
    if claim.factor is not None:
        return (
            f"main effect of {claim.factor}: a contrast t-test over the grid's other settings "
            "(the factorial's residual variance)"
        )
    if claim.form == "same":
        return f"equivalence within ±{claim.margin:g} points (two one-sided Welch tests)"
    if claim.form == "peak":
        return "Kendall's tau trend tests up to and after the peak"
    if claim.form in ("increasing", "decreasing"):
        return "Kendall's tau trend test (Jonckheere-Terpstra)"
    return "Welch's t-test"


def explain(v: ClaimVerdict, alpha: float) -> tuple[str, str]:
    """(the test, the reason) of a verdict already reached."""
    return test_name(v.claim), _reason(v, alpha)


def _reason(v: ClaimVerdict, alpha: float) -> str:
    c = v.claim
    p = "—" if v.p_holm is None else f"{v.p_holm:.3g}"
    ci = f"{100 * v.confidence:.4g}% CI"
    if c.form in ("better", "worse"):
        a, b = c.levels if c.factor is not None else c.variants
        who = f"{c.factor} {a} minus {b}, over the grid's other settings," if c.factor else (
            f"'{a}' minus '{b}'"
        )  # fmt: skip
        gap = f"{who} is {fmt_pts(v.diff)} points ({ci} {fmt_pts(v.ci_low)} to "
        gap += f"{fmt_pts(v.ci_high)}), adjusted p = {p}"
        return {
            SUPPORTED: f"{gap}: {c.form} as claimed.",
            CONTRADICTED: f"{gap}: the opposite of the claim.",
        }.get(v.verdict, f"{gap}: not distinguishable from seed-to-seed noise at alpha {alpha:g}.")
    if c.form == "same":
        gap = f"the difference is {fmt_pts(v.diff)} points ({ci} {fmt_pts(v.ci_low)} to "
        gap += f"{fmt_pts(v.ci_high)}), margin ±{c.margin:g}"
        return {
            SUPPORTED: f"{gap}: equivalent within the margin (adjusted p = {p}).",
            CONTRADICTED: f"{gap}: they differ by more than the margin.",
        }.get(v.verdict, f"{gap}: neither equivalence nor a difference is shown.")
    means = " -> ".join("—" if m is None else f"{100 * m:.2f}" for m in v.means.values())
    shape = (
        "a peak"
        if c.form == "peak"
        else f"an {c.form} trend"
        if c.form[0] in "aeiou"
        else f"a {c.form} trend"
    )
    if v.verdict == SUPPORTED:
        return f"means {means}%: {shape} as claimed (adjusted p = {p})."
    if v.verdict == CONTRADICTED:
        how = {
            "after": f"after '{c.peak}' they rise instead of falling",
            "before": f"up to '{c.peak}' they fall instead of rising",
        }.get(v.wrong_side, "the trend goes the other way")
        return f"means {means}%: {how} (adjusted p = {p})."
    return f"means {means}%: no {shape.split(' ', 1)[1]} distinguishable from noise (adjusted p = {p})."


def _unmeasured(few: Sequence[str], finals: Mapping[str, Sequence[float]]) -> str:
    absent = [f"'{v}'" for v in few if v not in finals]
    short = [f"'{v}'" for v in few if v in finals]
    parts = [f"fewer than {stats.MIN_RUNS} finished runs of " + ", ".join(short)] if short else []
    if absent:
        parts.append(
            f"{', '.join(absent)} not run in this folder (add it to --variants to measure it)"
        )
    return "; ".join(parts)


def paired_rows(
    claim: Claim, by_seed: Mapping[str, Mapping[int, float]], paired: Sequence[Collection[str]]
) -> np.ndarray | None:
    """A trend claim's runs as seeds x variants, when its variants are read from one run per
    seed (one of the ``paired`` families) and two or more seeds have them all."""
    if claim.form in ("better", "worse", "same"):
        return None
    if not any(set(claim.variants) <= set(family) for family in paired):
        return None
    seeds = set.intersection(*(set(by_seed.get(v, {})) for v in claim.variants))
    rows = [[by_seed[v][s] for v in claim.variants] for s in sorted(seeds)]
    finite = [r for r in rows if all(math.isfinite(x) for x in r)]
    return np.array(finite) if len(finite) >= stats.MIN_RUNS else None


def judge_claims(
    claims: Sequence[Claim],
    finals: Mapping[str, Sequence[float]],
    alpha: float = stats.ALPHA,
    confidence: float = stats.CONFIDENCE,
    by_seed: Mapping[str, Mapping[int, float]] | None = None,
    paired: Sequence[Collection[str]] = (),
) -> list[ClaimVerdict]:
    """A verdict for each claim; ``finals``: variant -> final test accuracy of each seed.
    ``by_seed`` (variant -> seed -> accuracy) and ``paired`` (families of variants read
    from one run per seed): trend claims within one family pair their runs by seed."""
    out: list[ClaimVerdict] = []
    for claim in claims:
        groups = [[x for x in finals.get(v, []) if math.isfinite(x)] for v in claim.variants]
        few = [v for v, g in zip(claim.variants, groups, strict=True) if len(g) < stats.MIN_RUNS]
        if few:
            verdict = ClaimVerdict(claim, NOT_MEASURED, _unmeasured(few, finals), "—")
        elif claim.factor is not None:
            verdict = _main_effect(claim, groups, confidence)
        elif claim.form in ("better", "worse", "same"):
            verdict = _pair(claim, groups[0], groups[1], confidence)
        else:
            verdict = _trend(claim, groups, paired_rows(claim, by_seed or {}, paired))
        verdict.means = {
            v: float(np.mean(g)) if g else None for v, g in zip(claim.variants, groups, strict=True)
        }
        verdict.seeds = {v: len(g) for v, g in zip(claim.variants, groups, strict=True)}
        out.append(verdict)
    adjusted = stats.holm([v.p for v in out])
    for v, p_holm in zip(out, adjusted, strict=True):
        if v.verdict == NOT_MEASURED:
            continue
        v.p_holm = p_holm
        significant = p_holm is not None and p_holm < alpha
        if v.claim.form == "same":
            v.verdict = (
                SUPPORTED if significant else CONTRADICTED if v.direction < 0 else NOT_SUPPORTED
            )
        elif significant:
            v.verdict = {1: SUPPORTED, -1: CONTRADICTED}.get(v.direction, NOT_SUPPORTED)
        else:
            v.verdict = NOT_SUPPORTED
        v.reason = _reason(v, alpha)
    return out
