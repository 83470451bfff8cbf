"""Seeds until decided: the group-sequential boundaries, their Holm family, and the
family-wise error of the whole procedure, proven by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from cnnlab.claims.claim import Claim
from cnnlab.claims.sequential_verdicts import OPEN, family, judge_sequential, variants_needing_seeds
from cnnlab.claims.verdicts import CONTRADICTED, NOT_SUPPORTED, SUPPORTED
from cnnlab.stats.sequential import (
    SequentialDesign,
    boundaries,
    look_schedule,
    sequential_holm,
    spent,
)

ALPHA = 0.05
DESIGN = SequentialDesign(look_schedule(3, 12))


def test_looks_grow_by_half_and_end_at_the_maximum():
    assert look_schedule(3, 12) == (3, 5, 8, 12)
    assert look_schedule(2, 12) == (2, 3, 5, 8, 12)
    assert look_schedule(3, 9) == (3, 5, 9)  # a last step of one seed is merged
    assert look_schedule(4, 4) == (4,)
    with pytest.raises(ValueError, match="starts at 2"):
        look_schedule(1, 5)
    with pytest.raises(ValueError, match="below the start"):
        look_schedule(5, 3)


def test_one_look_is_the_fixed_test_and_the_first_boundary_spends_its_share():
    assert boundaries((1.0,), ALPHA, "obrien-fleming")[0] == pytest.approx(sps.norm.isf(0.025))
    c = boundaries((0.25, 0.5, 0.75, 1.0), ALPHA, "obrien-fleming")
    assert c[0] == pytest.approx(sps.norm.isf(0.025) / 0.5)  # z / sqrt(t) at the first look
    assert list(c) == sorted(c, reverse=True)  # O'Brien-Fleming: strict early, near z at the end
    pocock = boundaries((0.25, 0.5, 0.75, 1.0), ALPHA, "pocock")
    assert max(pocock) - min(pocock) < 0.05  # Pocock: about flat
    assert spent(1.0, ALPHA, "pocock") == pytest.approx(ALPHA)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_the_boundaries_spend_exactly_alpha_on_the_canonical_process(spending):
    """Brownian motion observed at the looks: the chance of crossing any boundary is alpha
    (200,000 paths: Monte-Carlo standard error 0.0005)."""
    rng = np.random.default_rng(7)
    design = SequentialDesign(look_schedule(3, 12), spending=spending)
    paths = np.cumsum(rng.standard_normal((200_000, 12)), axis=1)
    c = boundaries(design.fractions, ALPHA, spending)
    crossed = np.zeros(len(paths), bool)
    for k, n in enumerate(design.looks):
        crossed |= np.abs(paths[:, n - 1] / math.sqrt(n)) >= c[k]
    assert crossed.mean() == pytest.approx(ALPHA, abs=0.0015)


def test_holm_recycles_the_level_of_a_rejected_hypothesis_at_every_look():
    design = SequentialDesign((3, 6))
    half, full = design.nominal(ALPHA / 2), design.nominal(ALPHA)
    between = (half[1] + full[1]) / 2  # crosses look 2 at alpha, not at alpha / 2
    out = sequential_holm([[1e-9, None], [0.5, between]], design)
    assert out[0].rejected_at == 0 and out[0].level == ALPHA / 2
    assert out[1].rejected_at == 1 and out[1].level == ALPHA
    alone = sequential_holm([[0.5, 0.5], [0.5, between]], design)
    assert alone[1].rejected_at is None  # without the first rejection it stays at alpha / 2


def _welch_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return sps.ttest_ind(a, b, equal_var=False, axis=-1).pvalue


def _family_wise_errors(noise: str, claims: int, studies: int, seed: int) -> np.ndarray:
    """Studies with no true difference: ``claims`` variants each against one shared baseline
    (correlated tests, as in a real study), every look of the design. Whether each study
    rejected any hypothesis at any look, by the product's sequential Holm."""
    rng = np.random.default_rng(seed)
    shape = (studies, claims + 1, DESIGN.looks[-1])
    x = rng.standard_normal(shape) if noise == "normal" else rng.standard_t(3, shape)
    base = x[:, claims]
    p = np.stack(
        [np.stack([_welch_p(x[:, i, :n], base[:, :n]) for n in DESIGN.looks], 1)
         for i in range(claims)],
        axis=1,
    )  # fmt: skip
    return np.array(
        [any(d.rejected_at is not None for d in sequential_holm(p[s].tolist(), DESIGN))
         for s in range(studies)]
    )  # fmt: skip


@pytest.mark.parametrize("noise", ["normal", "t3"])
@pytest.mark.parametrize("claims", [1, 5])
def test_the_family_wise_error_over_every_look_and_claim_stays_at_alpha(noise, claims):
    """4,000 simulated null studies per case: false positives <= alpha + 3 Monte-Carlo
    standard errors."""
    studies = 4_000
    errors = _family_wise_errors(noise, claims, studies, seed=claims * 10 + len(noise))
    limit = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / studies)
    assert errors.mean() <= limit


def test_the_judge_decides_what_the_simulated_procedure_decides():
    """The report's replay (Welch through the claims' own tests, look by look) rejects the
    same hypotheses as the vectorised simulation above, on the same data."""
    rng = np.random.default_rng(3)
    seeds = list(range(12))
    agreed = 0
    for _ in range(60):
        shift = rng.choice([0.0, 0.5, 1.5])
        by_seed = {
            "base": dict(zip(seeds, 0.9 + 0.01 * rng.standard_normal(12), strict=True)),
            "a": dict(zip(seeds, 0.9 + 0.01 * (shift + rng.standard_normal(12)), strict=True)),
            "b": dict(zip(seeds, 0.9 + 0.01 * rng.standard_normal(12), strict=True)),
        }
        hypotheses = family([], ["base", "a", "b"], "base")
        verdicts = judge_sequential(hypotheses, by_seed, seeds, DESIGN, len(DESIGN.looks))
        p = [
            [_welch_p(np.array([by_seed[v][s] for s in seeds[:n]]),
                      np.array([by_seed["base"][s] for s in seeds[:n]])).item()
             for n in DESIGN.looks]
            for v in ("a", "b")
        ]  # fmt: skip
        expected = sequential_holm(p, DESIGN)
        for verdict, decision in zip(verdicts, expected, strict=True):
            assert verdict.decided == (decision.rejected_at is not None)
        agreed += 1
    assert agreed == 60


def _by_seed(means: dict[str, float], spread: float, rng: np.random.Generator) -> dict:
    return {v: {s: m + spread * rng.standard_normal() for s in range(12)} for v, m in means.items()}


def test_a_large_effect_is_decided_at_the_first_look_and_a_null_runs_to_the_maximum():
    rng = np.random.default_rng(0)
    by_seed = _by_seed({"base": 0.5, "big": 0.9, "same": 0.5}, 0.001, rng)
    hypotheses = family([], ["base", "big", "same"], "base")
    first = judge_sequential(hypotheses, by_seed, list(range(12)), DESIGN, 1)
    assert [v.verdict for v in first] == [SUPPORTED, OPEN]
    assert first[0].look == 0 and first[0].seeds == 3
    assert variants_needing_seeds(first) == ["same", "base"]  # not 'big'
    last = judge_sequential(hypotheses, by_seed, list(range(12)), DESIGN, 4)
    assert last[1].verdict == NOT_SUPPORTED and last[1].seeds == 12
    assert variants_needing_seeds(last) == []


def test_a_decided_claim_keeps_its_verdict_and_its_interval_agrees_with_its_boundary():
    rng = np.random.default_rng(1)
    by_seed = _by_seed({"a": 0.90, "b": 0.93}, 0.004, rng)
    claim = Claim(says="a is better", form="better", variants=("a", "b"))
    verdicts = [
        judge_sequential([claim], by_seed, list(range(12)), DESIGN, k)[0] for k in (1, 2, 3, 4)
    ]
    decided = [v for v in verdicts if v.decided]
    assert decided and all(v.verdict == CONTRADICTED for v in decided)
    assert len({(v.look, v.p) for v in decided}) == 1  # sticky: later looks change nothing
    v = decided[0]
    assert v.p < v.nominal and v.ci_high < 0  # the interval at 1 - nominal excludes 0


def test_a_same_claim_beyond_its_margin_is_contradicted_and_within_it_supported():
    rng = np.random.default_rng(2)
    far = _by_seed({"a": 0.90, "b": 0.95}, 0.001, rng)
    near = _by_seed({"a": 0.90, "b": 0.9001}, 0.0002, rng)
    claim = Claim(says="same", form="same", variants=("a", "b"), margin=0.5)
    assert judge_sequential([claim], far, list(range(12)), DESIGN, 1)[0].verdict == CONTRADICTED
    assert judge_sequential([claim], near, list(range(12)), DESIGN, 4)[0].verdict == SUPPORTED
