"""Seeds until decided: the study's claims and variant-vs-baseline comparisons as one
group-sequential Holm family (:mod:`cnnlab.stats.sequential`), replayed look by look.

At look k every variant counts the runs of its first ``looks[k]`` seeds (the design's
seeds, in order). Each hypothesis still open is tested there as in
:mod:`cnnlab.claims.verdicts` (Welch, TOST, Kendall's tau), and the family decides:

* a hypothesis whose p crosses its look's boundary is *decided*: supported, or
  contradicted when the data go the other way; it gets no more seeds and its verdict
  stays, whatever later seeds of its variants (through other hypotheses) show;
* a ``same`` claim whose interval at the boundary's confidence lies wholly beyond its
  margin is decided as contradicted;
* every other hypothesis stays *open*: its variants get the next look's seeds. Open at
  the last look is "within noise".

The replay reads only stored results, so the report, a rerun after a kill and the
runner that plans the next round all reach the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cnnlab import stats
from cnnlab.claims.claim import Claim
from cnnlab.claims.verdicts import CONTRADICTED, NOT_SUPPORTED, SUPPORTED, judge_claims
from cnnlab.stats.sequential import SequentialDesign, sequential_holm

OPEN = "open"  # not decided yet: more seeds to come


def comparison_claim(variant: str, baseline: str) -> Claim:
    """A variant-vs-baseline comparison as a member of the family (two-sided)."""
    return Claim(
        says=f"'{variant}' differs from the baseline '{baseline}'",
        form="better",
        variants=(variant, baseline),
    )


def family(claims: Sequence[Claim], variants: Sequence[str], baseline: str | None) -> list[Claim]:
    """The claims, then each variant's comparison with the baseline that no better or worse
    claim already makes. A same claim does not make it: equivalence is another test, and
    the report's comparison row needs the difference test's verdict."""
    pairs = {
        frozenset(c.variants) for c in claims if c.form in ("better", "worse") and c.factor is None
    }
    out = list(claims)
    if baseline is not None:
        for v in variants:
            if v != baseline and frozenset((v, baseline)) not in pairs:
                out.append(comparison_claim(v, baseline))
    return out


@dataclass
class SequentialVerdict:
    """A hypothesis after the looks so far."""

    claim: Claim
    verdict: str  # SUPPORTED, CONTRADICTED, NOT_SUPPORTED (open at the last look) or OPEN
    look: int | None  # the look (0-based) that decided it, or the last one it was tested at
    seeds: int  # seeds per variant at that look
    p: float | None = None  # its test's p there
    nominal: float | None = None  # the boundary (nominal p level) it was held to there
    level: float | None = None  # its share of alpha in the Holm family
    direction: int = 0
    diff: float | None = None  # pairs: mean(first) - mean(second)
    ci_low: float | None = None  # at confidence 1 - nominal: agrees with the boundary
    ci_high: float | None = None
    means: dict[str, float | None] = field(default_factory=dict)
    test: str = ""  # the test, in words
    adjusted: float | None = None  # with one look: Holm's adjusted p, set by the caller
    method: str = "welch"  # pairs: "permutation" when neither side varies

    @property
    def decided(self) -> bool:
        return self.verdict in (SUPPORTED, CONTRADICTED)


def by_seed_at(by_seed: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> dict:
    """variant -> seed -> final accuracy, of its finite runs with one of ``seeds``."""
    return {
        v: {s: x for s, x in values.items() if s in seeds and math.isfinite(x)}
        for v, values in by_seed.items()
    }


@dataclass
class _Look:
    p: float | None  # the test's p (None: no test)
    direction: int  # of the data: +1 the claimed way, -1 the other, 0 neither (cannot decide)
    diff: float | None  # pairs: mean(first) - mean(second)
    means: dict[str, float | None]
    test: str
    method: str = "welch"


def _test(claim: Claim, seeds: Mapping[str, Mapping[int, float]], paired: Sequence) -> _Look:
    """One hypothesis at one look: its p, the direction of the data, its difference."""
    finals = {v: list(values.values()) for v, values in seeds.items()}
    (raw,) = judge_claims([claim], finals, by_seed=seeds, paired=paired)
    w = _pair_interval(claim, finals, stats.ALPHA) if raw.p is not None else None
    direction = raw.direction if raw.p is not None else 0
    method = "welch" if w is None else w.method
    return _Look(raw.p, direction, raw.diff, raw.means, raw.test, method)


def _pair_interval(
    claim: Claim, finals: Mapping[str, list[float]], nominal: float | None
) -> stats.WelchResult | None:
    """A pair's difference with its interval at confidence 1 - ``nominal`` (the level the
    hypothesis was held to: it excludes 0 exactly when the test rejects); None for a
    trend or a main effect."""
    if claim.form not in ("better", "worse", "same") or claim.factor is not None or nominal is None:
        return None
    a, b = (finals.get(v, []) for v in claim.variants)
    return stats.welch(a, b, 1 - nominal, (-1.0, 1.0))


def _beyond_margin(claim: Claim, finals: Mapping[str, list[float]], nominal: float) -> bool:
    w = _pair_interval(claim, finals, nominal)
    margin = (claim.margin or 0.0) / 100
    return w is not None and (w.ci_low > margin or w.ci_high < -margin)


def judge_sequential(
    hypotheses: Sequence[Claim],
    by_seed: Mapping[str, Mapping[int, float]],
    seed_order: Sequence[int],
    design: SequentialDesign,
    looks_done: int,
    paired: Sequence[Sequence[str]] = (),
) -> list[SequentialVerdict]:
    """Replay looks 0 .. ``looks_done - 1`` over the results ``by_seed`` (variant -> seed ->
    final test accuracy); ``seed_order``: the design's seeds, the first ``looks[k]`` of
    them counted at look k. ``paired``: families of variants read from one run per seed
    (nested epochs), whose trend claims pair their runs by seed."""
    m = len(hypotheses)
    histories: list[list[float | None]] = [[] for _ in range(m)]
    looks: list[list[_Look]] = [[] for _ in range(m)]
    out = [SequentialVerdict(h, OPEN, None, 0) for h in hypotheses]
    at_look: list[dict[str, list[float]]] = []
    for k in range(looks_done):
        seeds = by_seed_at(by_seed, seed_order[: design.looks[k]])
        finals = {v: list(values.values()) for v, values in seeds.items()}
        at_look.append(finals)
        open_now = [i for i in range(m) if out[i].verdict == OPEN]
        nominal_first = design.nominal(design.alpha / max(1, m))[k]
        for i in open_now:
            look = _test(hypotheses[i], seeds, paired)
            looks[i].append(look)
            histories[i].append(look.p if look.direction else None)  # no direction: no verdict
        decisions = sequential_holm(histories, design)
        for i in open_now:
            d, v = decisions[i], out[i]
            v.look, v.seeds, v.level = k, design.looks[k], d.level
            v.nominal = d.nominal if d.rejected_at is not None else (d.levels or [None])[-1]
            j = k if d.rejected_at is None else d.rejected_at  # looks[i][j] is look j
            crossed = looks[i][j]
            v.p, v.direction, v.means = crossed.p, crossed.direction, crossed.means
            v.test, v.method = crossed.test, crossed.method
            w = _pair_interval(hypotheses[i], at_look[j], v.nominal)
            v.diff, v.ci_low, v.ci_high = (crossed.diff, None, None) if w is None else (
                w.diff, w.ci_low, w.ci_high
            )  # fmt: skip
            if d.rejected_at is not None:
                v.verdict = SUPPORTED if crossed.direction > 0 else CONTRADICTED
            elif hypotheses[i].form == "same" and _beyond_margin(
                hypotheses[i], finals, nominal_first
            ):
                v.verdict = CONTRADICTED
            elif k == len(design.looks) - 1:
                v.verdict = NOT_SUPPORTED
    return out


def variants_needing_seeds(verdicts: Sequence[SequentialVerdict]) -> list[str]:
    """The variants an open hypothesis names (each once, first-named first)."""
    names = [v for s in verdicts if s.verdict == OPEN for v in s.claim.variants]
    return list(dict.fromkeys(names))
