"""Factorial questions: a grid over two or more settings, seeds as replicates.

``anova`` is the fixed-effects analysis of variance of a full factorial with the same
number of runs in every cell (balanced): for every main effect and interaction, its sum
of squares from the marginal means (each effect is the alternating sum of the marginal
means of its factors' subsets), degrees of freedom, F against the residual (within-cell)
mean square and p. It agrees with statsmodels' ``anova_lm`` on balanced data (the tests
check a case by hand). With unequal cells it returns None: the report then says why.

``contrast`` tests one factor's level against another averaged over the other factors
(each cell weighted equally: "batch norm helps, across optimizers"): the difference of
the two levels' mean of cell means, with the full model's residual mean square, a t
test on the residual degrees of freedom. It needs no balance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import fdtrc, stdtr

Cell = tuple[str, ...]  # one level of each factor, in the factors' order


@dataclass(frozen=True)
class Effect:
    name: str  # "optimizer" or "optimizer x batch_norm"
    factors: tuple[str, ...]
    df: int
    ss: float
    f: float | None
    p: float | None


@dataclass(frozen=True)
class Anova:
    factors: tuple[str, ...]
    levels: dict[str, list[str]]
    replicates: int  # runs per cell
    effects: list[Effect]
    residual_df: int
    residual_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _marginal_means(table: np.ndarray, keep: tuple[int, ...]) -> np.ndarray:
    """The cell means averaged over the factors not in ``keep``, broadcastable back."""
    others = tuple(i for i in range(table.ndim) if i not in keep)
    return table.mean(axis=others, keepdims=True) if others else table


def anova(
    cells: Mapping[Cell, Sequence[float]], factors: Sequence[str], levels: Mapping[str, list[str]]
) -> Anova | None:
    """None unless every cell of the full grid has the same number (two or more) of runs."""
    shape = tuple(len(levels[f]) for f in factors)
    counts = {len(cells.get(c, ())) for c in itertools.product(*(levels[f] for f in factors))}
    if len(counts) != 1 or (n := counts.pop()) < 2 or min(shape) < 2:
        return None
    data = np.empty((*shape, n))
    for index in itertools.product(*(range(k) for k in shape)):
        cell = tuple(levels[f][i] for f, i in zip(factors, index, strict=True))
        data[index] = cells[cell]
    means = data.mean(axis=-1)
    residual_ss = float(((data - means[..., None]) ** 2).sum())
    residual_df = int(np.prod(shape)) * (n - 1)
    residual_ms = residual_ss / residual_df
    effects = []
    dims = range(len(factors))
    for size in range(1, len(factors) + 1):
        for subset in itertools.combinations(dims, size):
            term = sum(
                (-1) ** (size - len(part)) * _marginal_means(means, part)
                for k in range(size + 1)
                for part in itertools.combinations(subset, k)
            )
            ss = float(n * (np.broadcast_to(term, shape) ** 2).sum())
            df = int(np.prod([shape[i] - 1 for i in subset]))
            f = (ss / df) / residual_ms if residual_ms > 0 else None
            p = float(fdtrc(df, residual_df, f)) if f is not None else None
            names = tuple(factors[i] for i in subset)
            effects.append(Effect(" x ".join(names), names, df, ss, f, p))
    return Anova(tuple(factors), {f: list(levels[f]) for f in factors}, n, effects,
                 residual_df, residual_ms)  # fmt: skip


@dataclass(frozen=True)
class Contrast:
    diff: float  # mean of level a's cell means minus level b's
    se: float
    df: int
    t: float | None
    p: float


def contrast(cells: Mapping[Cell, Sequence[float]], factor: int, a: str, b: str) -> Contrast | None:
    """Level ``a`` against level ``b`` of factor number ``factor``, each the mean of its
    cells' means; None without two runs in some cell or a cell of each level."""
    full = {c: [x for x in xs if math.isfinite(x)] for c, xs in cells.items()}
    if not full or any(len(xs) < 2 for xs in full.values()):
        return None
    side_a = [c for c in full if c[factor] == a]
    side_b = [c for c in full if c[factor] == b]
    if not side_a or not side_b:
        return None
    residual_df = sum(len(xs) - 1 for xs in full.values())
    residual_ms = sum(float(((np.array(xs) - np.mean(xs)) ** 2).sum()) for xs in full.values())
    residual_ms /= residual_df
    diff = float(np.mean([np.mean(full[c]) for c in side_a]))
    diff -= float(np.mean([np.mean(full[c]) for c in side_b]))
    weights = [1 / (len(side_a) ** 2 * len(full[c])) for c in side_a]
    weights += [1 / (len(side_b) ** 2 * len(full[c])) for c in side_b]
    se = math.sqrt(residual_ms * sum(weights))
    if se == 0:
        return Contrast(diff, 0.0, residual_df, None, 1.0 if diff == 0 else 0.0)
    t = diff / se
    return Contrast(diff, se, residual_df, t, float(2 * stdtr(residual_df, -abs(t))))
