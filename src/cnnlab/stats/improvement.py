"""Probability of improvement: P(a run of the variant beats a run of the baseline).

Over independent seeds, ``P(X > Y) + P(X = Y) / 2``, estimated by the share of
(variant, baseline) run pairs the variant wins (ties half): the Mann-Whitney U over
``n_x n_y``. Recommended next to tests of means by Bouthillier et al. (2021,
"Accounting for variance in machine learning benchmarks") and by rliable (Agarwal et
al. 2021), because it says how often the change helps, not only by how much on average.

The interval is a stratified percentile bootstrap (each side resampled on its own,
``RESAMPLES`` times, a fixed seed so the report is reproducible). With 3-5 seeds a
side it is wide, and narrower than it should be: the bootstrap cannot see values
beyond the few it has. When the two sides do not overlap at all (common with 3
seeds) every resample gives the same 0 or 1 and the bootstrap interval collapses to
a point, which would claim certainty; the interval is then Newcombe's score interval
for the Mann-Whitney statistic (2006, "Confidence intervals for an effect size measure
based on the Mann-Whitney statistic", method 5), which stays honest at 0 and 1.
Measured by ``benchmarks/interval_coverage.py`` (1,000 simulated studies a row): the
95% interval covers the true P 80% of the time at 3 seeds a side and 90% at 5 when the
variants are equal, 96-100% when they differ by 1-2.5 standard deviations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtri

RESAMPLES = 2000
SEED = 20210301


@dataclass(frozen=True)
class Improvement:
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    method: str  # "bootstrap" or "score" (Newcombe, where the bootstrap collapses)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """Share of pairs (x_i, y_j) with x_i > y_j, ties counted half."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    wins = (xs[:, None] > ys[None, :]).mean() + 0.5 * (xs[:, None] == ys[None, :]).mean()
    return float(wins)


def _batched(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """probability_of_improvement of each row pair: (B, n) against (B, m)."""
    greater = (xs[:, :, None] > ys[:, None, :]).mean(axis=(1, 2))
    ties = (xs[:, :, None] == ys[:, None, :]).mean(axis=(1, 2))
    return greater + 0.5 * ties


def improvement(
    x: Sequence[float],
    y: Sequence[float],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Improvement | None:
    """P(x > y) with its bootstrap interval; None when a side has fewer than two values."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) < 2 or len(ys) < 2:
        return None
    rng = np.random.default_rng(seed)
    bx = xs[rng.integers(0, len(xs), size=(resamples, len(xs)))]
    by = ys[rng.integers(0, len(ys), size=(resamples, len(ys)))]
    draws = _batched(bx, by)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    estimate = probability_of_improvement(xs, ys)
    if low == high:
        low, high = score_interval(estimate, len(xs), len(ys), confidence)
        return Improvement(estimate, low, high, confidence, resamples, "score")
    return Improvement(estimate, float(low), float(high), confidence, resamples, "bootstrap")


def score_interval(estimate: float, m: int, n: int, confidence: float) -> tuple[float, float]:
    """Newcombe's (2006) method 5: the thetas with (estimate - theta)^2 = z^2 V(theta)."""
    z = float(ndtri(0.5 + confidence / 2))
    half = (m + n) / 2 - 1

    def gap(theta: float) -> float:
        variance = (
            theta * (1 - theta) / (m * n)
            * (1 + half * (1 - theta) / (2 - theta) + half * theta / (1 + theta))
        )  # fmt: skip
        return (estimate - theta) ** 2 - z * z * variance

    # gap is 0 at theta = 0 and 1 (no variance there) and negative just inside the estimate
    inside = 1e-12
    low = 0.0 if estimate <= inside else float(brentq(gap, 0.0, estimate - inside))
    high = 1.0 if estimate >= 1 - inside else float(brentq(gap, estimate + inside, 1.0))
    return low, high
