"""Statistics over repeated runs: is a variant really better than the baseline?

Every number here comes from a handful of seeds, so every helper says what it
cannot know instead of crashing or guessing:

* ``describe``: mean, sample standard deviation (n-1) and a two-sided t
  confidence interval for the mean (n-1 degrees of freedom). With one value
  the std and the interval are undefined: ``None``, with ``note`` saying why.
* ``welch``: Welch's unequal-variance t-test of ``a`` vs ``b`` and the
  confidence interval of the difference of means (Welch-Satterthwaite dof).
  It agrees with ``scipy.stats.ttest_ind(a, b, equal_var=False)``.
* ``holm``: Holm-Bonferroni step-down adjustment of a family of p-values.
* ``compare_to_baseline``: the above for every variant against the baseline,
  adjusted over all the comparisons actually made, with a verdict.

Verdicts (``VERDICTS``): "better" / "worse" only when the Holm-adjusted
p-value is below ``alpha``; otherwise "within noise"; "not enough runs" when
either side has fewer than two finished runs (no test is made, and the
comparison is left out of the Holm family).

Zero variance on both sides (every seed gave exactly the same number on each
side, which happens with quantised accuracies on small test sets or with
fully deterministic training) makes Welch's t 0/0 or x/0: scipy returns nan
for identical constants and t = inf, p = 0 for different ones. (A sample is
treated as constant when all its values are equal, so floating-point noise in
the variance, ~1e-33, cannot fake an enormous t.) Two cases:

* identical constants: the difference is exactly 0: p = 1, "within noise".
* different constants: the samples are perfectly separated, but reading the
  limit p -> 0 as certainty would let 2 + 2 runs "prove" anything. We fall
  back to the exact two-sided permutation test of the difference of means,
  which needs no variance estimate and respects the sample size: for
  perfectly separated samples of n + n runs p = 2 / C(2n, n), i.e. 0.33 for
  2 + 2 runs, 0.10 for 3 + 3, 0.029 for 4 + 4, 0.0079 for 5 + 5. The
  interval of the difference is then the single point (diff, diff). The
  comparison's ``method`` says "permutation" so the report can show it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Student's t from scipy.special: the same functions scipy.stats.t calls, without the
# second of importing scipy.stats that every report would otherwise pay.
from scipy.special import stdtr, stdtrit

ALPHA = 0.05
CONFIDENCE = 0.95
MIN_RUNS = 2

BETTER = "better"
WORSE = "worse"
WITHIN_NOISE = "within noise"
NOT_ENOUGH_RUNS = "not enough runs"
BASELINE = "baseline"
VERDICTS = (BETTER, WORSE, WITHIN_NOISE, NOT_ENOUGH_RUNS, BASELINE)


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


@dataclass(frozen=True)
class Description:
    """Mean, sample std and confidence interval of one sample."""

    n: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1); None when n < 2
    ci_low: float | None  # two-sided t interval for the mean; None when n < 2
    ci_high: float | None
    confidence: float = CONFIDENCE
    note: str = ""  # why std or the interval is missing, when they are

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided critical value of Student's t, e.g. 12.706 for 95% and 1 dof."""
    return float(stdtrit(dof, 0.5 + confidence / 2))


def describe(
    values: Sequence[float | None],
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] | None = None,
) -> Description:
    """Mean, sample std and t confidence interval of the finite ``values`` (None/nan dropped).

    ``bounds`` clips the interval to the values the quantity can take (an
    accuracy's (0, 1)): a t interval of 0.99 ± 0.03 would otherwise reach 102%.
    Clipping to the feasible range keeps the interval's coverage.
    """
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Description(0, None, None, None, None, confidence, "no finished runs")
    mean = xs[0] if min(xs) == max(xs) else float(np.mean(xs))  # exact for constants
    if n == 1:
        return Description(
            1, mean, None, None, None, confidence, "one run: spread and interval are undefined"
        )
    std = 0.0 if min(xs) == max(xs) else float(np.std(xs, ddof=1))
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Description(n, mean, std, low, high, confidence)


@dataclass(frozen=True)
class WelchResult:
    """Welch's test of mean(a) - mean(b) and the interval of that difference."""

    diff: float  # mean(a) - mean(b)
    se: float  # standard error of the difference
    dof: float | None  # Welch-Satterthwaite degrees of freedom (None: zero variance)
    t: float | None  # None when both samples have zero variance
    p: float  # two-sided
    ci_low: float
    ci_high: float
    method: str  # "welch", or "permutation" when both variances are zero (see module doc)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def permutation_p_constant(n_a: int, n_b: int, x: float, y: float) -> float:
    """Exact two-sided permutation p of the difference of means for ``n_a`` copies of ``x``
    against ``n_b`` copies of ``y``.

    Relabelling puts ``k`` of the ``x`` values in group a (hypergeometric
    weights); count the relabellings whose |difference of means| is at least
    the observed one.
    """
    if x == y:
        return 1.0
    n = n_a + n_b
    observed = abs(x - y)
    extreme = 0
    for k in range(max(0, n_a - n_b), n_a + 1):  # x values landing in group a
        sum_a = k * x + (n_a - k) * y
        sum_b = (n_a - k) * x + (n_b - n_a + k) * y
        diff = abs(sum_a / n_a - sum_b / n_b)
        if diff >= observed * (1 - 1e-12):
            extreme += math.comb(n_a, k) * math.comb(n_b, n_a - k)
    return min(1.0, extreme / math.comb(n, n_a))


def welch(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] | None = None,
) -> WelchResult | None:
    """Welch's t-test of ``a`` against ``b``; None when either has fewer than two values.

    ``bounds`` clips the interval of the difference to the values it can take
    (-1 to 1 for a difference of accuracies); the test itself is unaffected.
    """
    xa, xb = _finite(a), _finite(b)
    na, nb = len(xa), len(xb)
    if na < MIN_RUNS or nb < MIN_RUNS:
        return None
    # A constant sample has exactly zero variance; floating-point np.var may say 1e-33,
    # and that must not turn into an astronomically large t.
    ma = xa[0] if min(xa) == max(xa) else float(np.mean(xa))
    mb = xb[0] if min(xb) == max(xb) else float(np.mean(xb))
    va = 0.0 if min(xa) == max(xa) else float(np.var(xa, ddof=1))
    vb = 0.0 if min(xb) == max(xb) else float(np.var(xb, ddof=1))
    diff = ma - mb
    qa, qb = va / na, vb / nb
    se2 = qa + qb
    if se2 == 0.0:
        p = permutation_p_constant(na, nb, ma, mb)
        return WelchResult(diff, 0.0, None, None, p, diff, diff, "permutation")
    se = math.sqrt(se2)
    # Welch-Satterthwaite; a side with zero variance contributes nothing.
    dof = se2**2 / ((qa**2 / (na - 1) if qa else 0.0) + (qb**2 / (nb - 1) if qb else 0.0))
    t = diff / se
    p = float(2 * stdtr(dof, -abs(t)))
    half = t_quantile(confidence, dof) * se
    low, high = diff - half, diff + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return WelchResult(diff, se, dof, t, min(1.0, p), low, high, "welch")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    ``None`` entries (tests not made) are passed through and do not count in
    the family size. Adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j))
    with the p-values sorted ascending: reject where the adjusted value < alpha.
    """
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Comparison:
    """A variant against the baseline on one metric (higher is better)."""

    variant: str
    baseline: str
    n_variant: int
    n_baseline: int
    diff: float | None  # mean(variant) - mean(baseline)
    diff_ci_low: float | None
    diff_ci_high: float | None
    t: float | None
    dof: float | None
    p: float | None  # unadjusted, two-sided
    p_holm: float | None  # Holm-adjusted over the comparisons made
    method: str | None  # "welch", "permutation" or None (no test)
    verdict: str  # one of VERDICTS
    confidence: float = CONFIDENCE  # of the interval (seeds until decided: its boundary's)

    @property
    def significant(self) -> bool:
        return self.verdict in (BETTER, WORSE)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_for(diff: float | None, p_holm: float | None, alpha: float = ALPHA) -> str:
    """The one place a difference gets called real: adjusted p strictly below alpha."""
    if p_holm is None or diff is None:
        return NOT_ENOUGH_RUNS
    if p_holm < alpha and diff != 0:
        return BETTER if diff > 0 else WORSE
    return WITHIN_NOISE


def compare_to_baseline(
    samples: dict[str, Sequence[float]],
    baseline: str,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Comparison]:
    """Each variant of ``samples`` (name -> per-seed values) against ``baseline``.

    Holm's adjustment runs over the variants that could be tested (two or more
    runs each side); the baseline's own entry has verdict "baseline".
    ``bounds`` clips the intervals of the differences (see ``welch``).
    """
    base = _finite(samples.get(baseline, []))
    others = [v for v in samples if v != baseline]
    tests = {v: welch(samples[v], base, confidence, bounds) for v in others}
    adjusted = holm([None if tests[v] is None else tests[v].p for v in others])
    out: dict[str, Comparison] = {}
    for v, p_adj in zip(others, adjusted, strict=True):
        w = tests[v]
        n_v = len(_finite(samples[v]))
        if w is None:
            diff = None
            xs = _finite(samples[v])
            if xs and base:
                diff = float(np.mean(xs)) - float(np.mean(base))
            out[v] = Comparison(
                v, baseline, n_v, len(base), diff, None, None, None, None, None, None, None,
                NOT_ENOUGH_RUNS,
            )  # fmt: skip
            continue
        out[v] = Comparison(
            v,
            baseline,
            n_v,
            len(base),
            w.diff,
            w.ci_low,
            w.ci_high,
            w.t,
            w.dof,
            w.p,
            p_adj,
            w.method,
            verdict_for(w.diff, p_adj, alpha),
        )
    if baseline in samples:
        n_b = len(base)
        out[baseline] = Comparison(
            baseline, baseline, n_b, n_b, 0.0 if base else None, None, None, None, None, None,
            None, None, BASELINE,
        )  # fmt: skip
    return out


def mean_curve(
    curves: Sequence[Sequence[float | None]],
) -> tuple[list[int], list[float | None], list[float | None], list[int]]:
    """Per-epoch mean and sample std over seeds: (epochs 1..L, mean, std, runs counted).

    Runs may have different lengths (early stopping): epoch e averages the runs
    that reached it. The std is None where fewer than two runs count.
    """
    length = max((len(c) for c in curves), default=0)
    epochs, means, stds, counts = [], [], [], []
    for e in range(length):
        xs = _finite(c[e] for c in curves if e < len(c))
        epochs.append(e + 1)
        counts.append(len(xs))
        means.append(float(np.mean(xs)) if xs else None)
        stds.append(float(np.std(xs, ddof=1)) if len(xs) >= 2 else None)
    return epochs, means, stds, counts


@dataclass(frozen=True)
class TimeToTarget:
    target: float
    epoch: int | None  # first epoch whose mean-over-seeds value reaches target; None: never
    seconds: float | None  # mean over seeds of the wall seconds elapsed at that epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_to_target(
    curves: Sequence[Sequence[float | None]],
    seconds: Sequence[Sequence[float | None]],
    target: float,
) -> TimeToTarget:
    """When the mean curve over seeds first reaches ``target`` (e.g. the baseline's final mean).

    ``curves[i][e]`` is run i's metric after epoch e+1 and ``seconds[i][e]``
    its cumulative wall seconds then.
    """
    epochs, means, _, _ = mean_curve(curves)
    for e, m in zip(epochs, means, strict=True):
        if m is not None and m >= target - 1e-12:
            secs = _finite(s[e - 1] for s in seconds if e - 1 < len(s))
            return TimeToTarget(target, e, float(np.mean(secs)) if secs else None)
    return TimeToTarget(target, None, None)
