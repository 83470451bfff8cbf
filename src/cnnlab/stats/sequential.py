"""Group-sequential tests: look at the seeds so far, stop when a hypothesis is decided.

A sequential design fixes its looks in advance (seeds per variant at each look, e.g.
3, 5, 8, 12) and spends its level ``alpha`` over them with a Lan-DeMets spending
function, so the chance of a false rejection *at any look* stays at ``alpha``:

* ``obrien-fleming`` (the default): alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)); almost
  nothing is spent at the early looks, so the last look is tested at nearly ``alpha``
  and a study that runs to the maximum loses little power, while a large effect still
  stops early.
* ``pocock``: alpha(t) = alpha ln(1 + (e - 1) t); more at the early looks, less at the
  last.

``t`` is the information fraction, seeds at the look over seeds at the last. The
boundaries are two-sided z values ``c_k`` such that, for the canonical joint
distribution of the looks' statistics (independent increments, Jennison & Turnbull,
*Group Sequential Methods*, 2000, ch. 7 and 19), the first crossing falls at look k
with probability alpha(t_k) - alpha(t_{k-1}); they are found by numerical integration
over the continuation region, look after look. Each look's own test (Welch's t, TOST,
Kendall's tau) is then read through its p-value: look k rejects when p < 2 (1 - Phi(c_k)),
the *nominal level* of that look (the usual way to use normal-theory boundaries with
t statistics). The tests' simulation (tests/test_sequential.py) shows the family-wise
error of the whole procedure at or below ``alpha`` for 3 to 12 seeds, normal and
heavy-tailed noise.

Several hypotheses are one Holm family (:func:`sequential_holm`): each is first tested
with boundaries at alpha / m; once one is rejected, the rest are tested at
alpha / (m - 1), at every look so far, and so on: Holm's procedure as the graphical
approach of Maurer & Bretz (2013, *Statistics in Biopharmaceutical Research* 5:311)
applies it to group-sequential tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

SPENDING = ("obrien-fleming", "pocock")
GROWTH = 1.5  # each look has about half again the seeds of the one before
GRID = 801  # points over a continuation region: boundaries to ~1e-7 in level


def look_schedule(start: int, maximum: int) -> tuple[int, ...]:
    """Seeds per variant at each look: ``start``, then about 1.5 times the one before,
    ending at ``maximum`` (3, 5, 8, 12 for 3 and 12)."""
    if start < 2:
        raise ValueError(f"a sequential design starts at 2 seeds or more, not {start}")
    if maximum < start:
        raise ValueError(f"the maximum ({maximum}) is below the start ({start})")
    looks = [start]
    while looks[-1] < maximum:
        looks.append(min(maximum, max(looks[-1] + 1, math.ceil(looks[-1] * GROWTH))))
    if len(looks) > 2 and looks[-1] - looks[-2] < (looks[-2] - looks[-3]) / 2:
        looks.pop(-2)  # a last step much smaller than the one before: merged into the last
    return tuple(looks)


def spent(t: float, alpha: float, spending: str) -> float:
    """alpha(t): the level spent by information fraction ``t``."""
    if t <= 0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * min(t, 1.0))
    z = float(ndtri(1 - alpha / 2))
    return float(2 - 2 * ndtr(z / math.sqrt(min(t, 1.0))))


def _exit_probability(grid: np.ndarray, density: np.ndarray, ratio: float, sd: float, c: float):
    """P(|Z_next| >= c, still in at this look): ``density`` over ``grid`` is this look's
    sub-density of Z; Z_next | z ~ N(ratio z, sd^2)."""
    mean = ratio * grid
    inside = ndtr((c - mean) / sd) - ndtr((-c - mean) / sd)
    return float(np.trapezoid(density * (1 - inside), grid))


def _boundary(grid: np.ndarray, density: np.ndarray, t0: float, t1: float, spend: float) -> float:
    """The boundary at the look with fraction ``t1`` whose first crossings have chance
    ``spend``, given the continuation sub-density at ``t0`` (none before the first look)."""
    if grid.size == 0:
        return float(ndtri(1 - spend / 2)) if spend > 0 else math.inf
    ratio, sd = math.sqrt(t0 / t1), math.sqrt(1 - t0 / t1)

    def excess(c: float) -> float:
        return _exit_probability(grid, density, ratio, sd, c) - spend

    if excess(50.0) >= 0:
        return math.inf  # nothing left to spend at this look
    return float(brentq(excess, 0.0, 50.0, xtol=1e-10))


@cache
def boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    """Two-sided z boundaries, one per look, for information ``fractions`` (increasing,
    ending at 1) and level ``alpha`` spent by ``spending``."""
    if spending not in SPENDING:
        raise ValueError(f"spending '{spending}': use one of {', '.join(SPENDING)}")
    out: list[float] = []
    previous_t = 0.0
    grid = density = np.empty(0)
    for t in fractions:
        increment = spent(t, alpha, spending) - spent(previous_t, alpha, spending)
        out.append(_boundary(grid, density, previous_t, t, increment))
        grid, density = _next_density(grid, density, previous_t, t, out[-1])
        previous_t = t
    return tuple(out)


def _next_density(grid: np.ndarray, density: np.ndarray, t0: float, t1: float, c: float):
    """The sub-density of Z at the look with fraction ``t1`` over its continuation region
    (|z| < c), from the one at ``t0`` (none at the first look)."""
    edge = min(c, 12.0)
    new_grid = np.linspace(-edge, edge, GRID)
    if grid.size == 0:
        return new_grid, np.exp(-(new_grid**2) / 2) / math.sqrt(2 * math.pi)
    ratio, sd = math.sqrt(t0 / t1), math.sqrt(1 - t0 / t1)
    kernel = np.exp(-(((new_grid[:, None] - ratio * grid[None, :]) / sd) ** 2) / 2)
    kernel /= sd * math.sqrt(2 * math.pi)
    return new_grid, np.trapezoid(kernel * density[None, :], grid, axis=1)


@dataclass(frozen=True)
class SequentialDesign:
    """Looks fixed in advance, and how the level is spent over them."""

    looks: tuple[int, ...]  # seeds per variant at each look, increasing
    alpha: float = 0.05
    spending: str = "obrien-fleming"

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.looks[-1] for n in self.looks)

    def nominal(self, level: float | None = None) -> tuple[float, ...]:
        """Each look's two-sided nominal p level, for a test at ``level`` (alpha)."""
        c = boundaries(self.fractions, level if level is not None else self.alpha, self.spending)
        return tuple(float(2 * (1 - ndtr(x))) for x in c)

    def look_of(self, seeds: int) -> int | None:
        """The look (0-based) at which a variant has ``seeds`` seeds, None if at none."""
        return self.looks.index(seeds) if seeds in self.looks else None

    def describe(self) -> str:
        looks = ", ".join(str(n) for n in self.looks)
        return (
            f"looks at {looks} seeds; {self.spending.replace('-', '–')}-type Lan–DeMets alpha "
            f"spending (nominal levels {', '.join(f'{p:.3g}' for p in self.nominal())})"
        )


@dataclass
class SequentialDecision:
    """One hypothesis of the family after the looks so far."""

    rejected_at: int | None = None  # the look that rejected it
    level: float | None = None  # the family level it was tested at (alpha / remaining)
    nominal: float | None = None  # the nominal p level it crossed
    levels: list[float] = field(default_factory=list)  # nominal levels it was last held to


def sequential_holm(
    p_values: Sequence[Sequence[float | None]], design: SequentialDesign
) -> list[SequentialDecision]:
    """Holm over hypotheses, each a group-sequential test: ``p_values[i][k]`` is hypothesis
    i's p at look k (None: not tested there, e.g. too few runs). Which are rejected, at
    which look and level."""
    m = len(p_values)
    out = [SequentialDecision() for _ in range(m)]
    rejected = 0
    while True:
        level = design.alpha / max(1, m - rejected)
        nominal = design.nominal(level)
        newly = []
        for i, history in enumerate(p_values):
            if out[i].rejected_at is not None:
                continue
            out[i].levels = list(nominal[: len(history)])
            out[i].level = level
            for k, p in enumerate(history):
                if p is not None and p < nominal[k]:
                    out[i].rejected_at, out[i].nominal = k, nominal[k]
                    newly.append(i)
                    break
        if not newly:
            return out
        rejected += len(newly)
