"""What a "within noise" verdict could have seen: power of Welch's test over seeds.

For the observed spreads (sample stds) and numbers of runs, the two-sided Welch test at
``level`` detects a true difference ``delta`` with probability

    power(delta) = P(T > t*) + P(T < -t*),  T ~ noncentral t(dof, delta / se),

where ``se = sqrt(s_a^2 / n_a + s_b^2 / n_b)``, ``dof`` is Welch-Satterthwaite's and
``t* = t_{1 - level/2}(dof)``. The *minimum detectable difference* is the ``delta``
with power 0.8; *seeds to detect* is the smallest number of runs per side (same
spreads) whose power at the observed difference reaches 0.8. ``level`` is the level
the verdict needs: Holm's first step, alpha / m for m comparisons (the bar a lone real
difference among m must clear).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import nctdtr, stdtrit

POWER = 0.8
MAX_SEEDS = 10_000


def welch_dof(sa: float, na: int, sb: float, nb: int) -> float:
    qa, qb = sa * sa / na, sb * sb / nb
    denominator = (qa * qa / (na - 1) if qa else 0.0) + (qb * qb / (nb - 1) if qb else 0.0)
    return (qa + qb) ** 2 / denominator


def welch_power(delta: float, sa: float, na: int, sb: float, nb: int, level: float) -> float:
    """Probability that Welch's test at ``level`` rejects when the true difference is delta."""
    se = math.sqrt(sa * sa / na + sb * sb / nb)
    dof = welch_dof(sa, na, sb, nb)
    critical = float(stdtrit(dof, 1 - level / 2))
    shift = abs(delta) / se
    below = float(nctdtr(dof, shift, critical))
    # The opposite tail: scipy's series gives nan far out in it, where it is ~1e-15 or less.
    opposite = float(nctdtr(dof, shift, -critical))
    if not math.isfinite(below):
        below = 0.0 if shift > critical else 1.0
    return 1 - below + (opposite if math.isfinite(opposite) else 0.0)


@dataclass(frozen=True)
class Power:
    level: float  # the test's level these figures are for
    power: float  # the target power
    minimum_detectable: float  # the true difference detected with ``power``
    observed: float  # |mean difference| seen
    power_at_observed: float
    seeds_to_detect: int | None  # per side, same spreads; None: more than MAX_SEEDS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seeds_to_detect(delta: float, sa: float, sb: float, level: float) -> int | None:
    if delta == 0:
        return None
    low, high = 2, 2
    while welch_power(delta, sa, high, sb, high, level) < POWER:  # doubling, then bisection
        low, high = high, high * 2
        if high > MAX_SEEDS:
            return None
    while low < high:
        mid = (low + high) // 2
        if welch_power(delta, sa, mid, sb, mid, level) >= POWER:
            high = mid
        else:
            low = mid + 1
    return high


def power_of(observed: float, sa: float, na: int, sb: float, nb: int, level: float) -> Power | None:
    """None when a side has fewer than two runs or neither varies (no spread to use)."""
    if na < 2 or nb < 2 or sa == sb == 0 or not math.isfinite(sa + sb + observed):
        return None
    se = math.sqrt(sa * sa / na + sb * sb / nb)

    def short(delta: float) -> float:
        return welch_power(delta, sa, na, sb, nb, level) - POWER

    high = se
    while short(high) < 0:
        high *= 2
    mdd = float(brentq(short, 0.0, high, xtol=1e-12 * max(se, 1e-300), rtol=1e-10))
    return Power(
        level=level,
        power=POWER,
        minimum_detectable=mdd,
        observed=abs(observed),
        power_at_observed=welch_power(observed, sa, na, sb, nb, level),
        seeds_to_detect=seeds_to_detect(observed, sa, sb, level),
    )


def powers_against(
    samples: dict[str, list[float]], baseline: str, alpha: float
) -> dict[str, Power | None]:
    """:func:`power_of` for each variant against the baseline, at Holm's first-step level
    (alpha over the number of variants tested, as in the verdicts)."""
    base = samples.get(baseline, [])
    tested = [v for v, xs in samples.items() if v != baseline and len(xs) >= 2 and len(base) >= 2]
    level = alpha / max(1, len(tested))
    out: dict[str, Power | None] = {}
    for v in tested:
        xs = samples[v]
        out[v] = power_of(
            float(np.mean(xs)) - float(np.mean(base)),
            float(np.std(xs, ddof=1)),
            len(xs),
            float(np.std(base, ddof=1)),
            len(base),
            level,
        )
    return out
