"""cnnlab.stats against scipy and against numbers worked out by hand."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from cnnlab import stats

A = [1.0, 2.0, 3.0, 4.0]
B = [2.0, 4.0, 6.0, 8.0, 10.0]


# --- describe -------------------------------------------------------------------------------


def test_describe_matches_numpy_and_scipy_t_interval():
    xs = [0.981, 0.979, 0.983, 0.980, 0.982]
    d = stats.describe(xs)
    assert d.n == 5
    assert d.mean == pytest.approx(np.mean(xs))
    assert d.std == pytest.approx(np.std(xs, ddof=1))
    lo, hi = sps.t.interval(0.95, 4, loc=np.mean(xs), scale=sps.sem(xs))
    assert (d.ci_low, d.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert d.half_width == pytest.approx((hi - lo) / 2)


def test_describe_by_hand():
    # mean 2.5, s^2 = (2.25+0.25+0.25+2.25)/3 = 5/3, t(0.975, 3) = 3.182446
    d = stats.describe(A)
    assert d.mean == 2.5
    assert d.std == pytest.approx(math.sqrt(5 / 3))
    assert d.half_width == pytest.approx(3.182446305 * math.sqrt(5 / 3) / 2, rel=1e-8)
    assert stats.t_quantile(0.95, 1) == pytest.approx(12.7062047)


def test_describe_one_or_no_value_is_undefined_not_a_crash():
    one = stats.describe([0.9])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 0.9, None, None, None)
    assert "one run" in one.note
    none = stats.describe([])
    assert (none.n, none.mean) == (0, None) and none.note
    # None and nan (e.g. a missing metric) are dropped, not averaged.
    assert stats.describe([0.5, None, float("nan"), 0.7]).mean == pytest.approx(0.6)


def test_describe_constant_sample_has_exactly_zero_spread():
    d = stats.describe([0.95, 0.95, 0.95])  # np.std would give ~1e-17 here
    assert (d.mean, d.std, d.ci_low, d.ci_high) == (0.95, 0.0, 0.95, 0.95)


def test_describe_clips_the_interval_to_the_feasible_range():
    d = stats.describe([1.0, 1.0, 0.9], bounds=(0.0, 1.0))
    free = stats.describe([1.0, 1.0, 0.9])
    assert free.ci_high > 1.0
    assert d.ci_high == 1.0 and d.ci_low == pytest.approx(free.ci_low)


def test_describe_other_confidence_levels():
    d = stats.describe(B, confidence=0.99)
    lo, hi = sps.t.interval(0.99, 4, loc=6, scale=sps.sem(B))
    assert (d.ci_low, d.ci_high) == (pytest.approx(lo), pytest.approx(hi))


# --- Welch -----------------------------------------------------------------------------------


def test_welch_matches_scipy_ttest_ind_unequal_variances():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.normal(0.9, rng.uniform(0.001, 0.02), size=rng.integers(2, 9))
        b = rng.normal(0.9, rng.uniform(0.001, 0.02), size=rng.integers(2, 9))
        w = stats.welch(a, b)
        ref = sps.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert w.method == "welch"
        assert w.t == pytest.approx(ref.statistic, rel=1e-9)
        assert w.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert w.dof == pytest.approx(ref.df, rel=1e-9)
        assert (w.ci_low, w.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert w.diff == pytest.approx(np.mean(a) - np.mean(b))


def test_welch_by_hand():
    # var(A) = 5/3, var(B) = 10; se^2 = (5/3)/4 + 10/5 = 29/12
    # t = (2.5 - 6) / sqrt(29/12) = -2.2514363
    # dof = (29/12)^2 / ((5/12)^2/3 + 2^2/4) = 5.5207877
    w = stats.welch(A, B)
    se2 = 29 / 12
    assert w.diff == -3.5
    assert w.se == pytest.approx(math.sqrt(se2))
    assert w.t == pytest.approx(-2.2514363231593695, rel=1e-12)
    assert w.dof == pytest.approx(se2**2 / ((5 / 12) ** 2 / 3 + 1.0), rel=1e-12)
    assert w.dof == pytest.approx(5.520787746170677, rel=1e-12)
    assert w.p == pytest.approx(2 * sps.t.sf(2.2514363231593695, w.dof), rel=1e-12)
    assert w.p == pytest.approx(0.0691336, abs=1e-6)
    half = sps.t.ppf(0.975, w.dof) * math.sqrt(se2)
    assert (w.ci_low, w.ci_high) == (pytest.approx(-3.5 - half), pytest.approx(-3.5 + half))


def test_welch_interval_can_be_clipped_without_changing_the_test():
    a, b = [1.0, 0.6], [0.5, 0.9]
    free, clipped = stats.welch(a, b), stats.welch(a, b, bounds=(-1.0, 1.0))
    assert free.ci_low < -1 and free.ci_high > 1
    assert (clipped.ci_low, clipped.ci_high) == (-1.0, 1.0)
    assert clipped.p == free.p and clipped.t == free.t


def test_welch_needs_two_values_each_side():
    assert stats.welch([0.9], [0.8, 0.85]) is None
    assert stats.welch([0.9, 0.91], []) is None
    assert stats.welch([0.9, None, float("nan")], [0.8, 0.85]) is None


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
def test_welch_one_side_constant_still_matches_scipy():
    a, b = [0.95, 0.95, 0.95], [0.90, 0.92, 0.91]
    w = stats.welch(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w.method == "welch"
    assert w.p == pytest.approx(ref.pvalue) and w.dof == pytest.approx(ref.df)
    assert w.dof == pytest.approx(2.0)  # all the variance is b's: n_b - 1


def test_zero_variance_identical_constants_is_within_noise():
    w = stats.welch([0.9, 0.9, 0.9], [0.9, 0.9])
    assert (w.diff, w.p, w.method) == (0.0, 1.0, "permutation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(sps.ttest_ind([0.9, 0.9, 0.9], [0.9, 0.9], equal_var=False).pvalue)
    c = stats.compare_to_baseline({"base": [0.9, 0.9], "v": [0.9, 0.9, 0.9]}, "base")
    assert c["v"].verdict == stats.WITHIN_NOISE


@pytest.mark.parametrize(
    ("n_a", "n_b", "expected"),
    [
        (2, 2, 2 / 6),  # 2 of the C(4,2) = 6 relabellings are as extreme (the two "pure" ones)
        (3, 3, 2 / 20),
        (4, 4, 2 / 70),
        (5, 5, 2 / 252),
        (2, 3, 1 / 10),  # unequal sizes: only the observed labelling is as extreme
    ],
)
def test_zero_variance_different_constants_uses_the_exact_permutation_test(n_a, n_b, expected):
    a, b = [0.95] * n_a, [0.90] * n_b
    w = stats.welch(a, b)
    assert w.method == "permutation"
    assert w.p == pytest.approx(expected)
    assert w.diff == pytest.approx(0.05)
    assert w.ci_low == w.ci_high == w.diff
    assert w.t is None and w.dof is None


def test_zero_variance_permutation_p_matches_brute_force():
    import itertools

    a, b = [0.8] * 3, [0.7] * 4
    pooled = a + b
    observed = abs(np.mean(a) - np.mean(b))
    hits = total = 0
    for idx in itertools.combinations(range(7), 3):
        ga = [pooled[i] for i in idx]
        gb = [pooled[i] for i in range(7) if i not in idx]
        total += 1
        hits += abs(np.mean(ga) - np.mean(gb)) >= observed - 1e-12
    assert stats.welch(a, b).p == pytest.approx(hits / total)


def test_two_constant_runs_each_are_never_significant():
    # 2 + 2 runs, each side constant: scipy's limit says p = 0; we say 1/3: within noise.
    c = stats.compare_to_baseline({"base": [0.90, 0.90], "v": [0.95, 0.95]}, "base")
    assert c["v"].p == pytest.approx(1 / 3)
    assert c["v"].verdict == stats.WITHIN_NOISE
    # With 5 + 5 perfectly separated runs the evidence is real.
    c = stats.compare_to_baseline({"base": [0.90] * 5, "v": [0.95] * 5}, "base")
    assert c["v"].verdict == stats.BETTER


# --- Holm ------------------------------------------------------------------------------------


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04)
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_skips_untested_and_keeps_order():
    assert stats.holm([0.5, None, 0.6]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert stats.holm([None, 0.02]) == [None, pytest.approx(0.02)]  # family of one
    assert stats.holm([]) == []


def test_holm_is_at_least_bonferroni_free_and_monotone():
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 8))
        adj = np.array(stats.holm(list(p)))
        assert np.all(adj >= p - 1e-15) and np.all(adj <= 1)
        assert np.all(adj <= np.minimum(1, p * len(p)) + 1e-15)  # never worse than Bonferroni
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in the raw p-values


# --- verdicts --------------------------------------------------------------------------------


def test_verdicts_direction_and_the_alpha_boundary():
    assert stats.verdict_for(0.01, 0.001) == stats.BETTER
    assert stats.verdict_for(-0.01, 0.001) == stats.WORSE
    assert stats.verdict_for(0.01, 0.05) == stats.WITHIN_NOISE  # not strictly below alpha
    assert stats.verdict_for(0.01, 0.0499) == stats.BETTER
    assert stats.verdict_for(0.01, None) == stats.NOT_ENOUGH_RUNS
    assert stats.verdict_for(0.01, 0.02, alpha=0.01) == stats.WITHIN_NOISE


def test_holm_turns_a_nominal_win_into_within_noise():
    base = [0.900, 0.905, 0.910, 0.895, 0.900]
    samples = {
        "base": base,
        "a": [0.910, 0.915, 0.920, 0.905, 0.908],  # nominal p ~ 0.04
        "b": [0.901, 0.904, 0.911, 0.896, 0.899],
        "c": [0.899, 0.906, 0.909, 0.894, 0.901],
    }
    c = stats.compare_to_baseline(samples, "base")
    assert c["a"].p < 0.05 <= c["a"].p_holm
    assert c["a"].verdict == stats.WITHIN_NOISE
    assert c["base"].verdict == stats.BASELINE
    assert not any(x.significant for x in c.values())


def test_not_enough_runs_is_never_significant_and_not_in_the_holm_family():
    samples = {
        "base": [0.90, 0.91, 0.905],
        "one": [0.99],  # huge gain, one seed
        "two": [0.95, 0.951],
    }
    c = stats.compare_to_baseline(samples, "base")
    assert c["one"].verdict == stats.NOT_ENOUGH_RUNS and c["one"].p is None
    assert c["one"].diff == pytest.approx(0.99 - 0.905)
    # "two" is the only test made, so Holm leaves its p alone.
    assert c["two"].p_holm == pytest.approx(c["two"].p)
    assert c["two"].verdict == stats.BETTER
    single_base = stats.compare_to_baseline({"base": [0.9], "v": [0.95, 0.96]}, "base")
    assert single_base["v"].verdict == stats.NOT_ENOUGH_RUNS


def test_clear_differences_are_found_both_ways():
    c = stats.compare_to_baseline(
        {
            "base": [0.90, 0.91, 0.905, 0.90],
            "up": [0.95, 0.96, 0.955, 0.95],
            "down": [0.80, 0.81, 0.805, 0.80],
        },
        "base",
    )
    assert c["up"].verdict == stats.BETTER and c["down"].verdict == stats.WORSE
    assert c["up"].diff_ci_low > 0 and c["down"].diff_ci_high < 0


# --- curves ----------------------------------------------------------------------------------


def test_mean_curve_over_runs_of_different_lengths():
    epochs, mean, std, counts = stats.mean_curve([[0.5, 0.7, 0.8], [0.6, 0.8], [0.4, None, 0.9]])
    assert epochs == [1, 2, 3]
    assert mean == pytest.approx([0.5, 0.75, 0.85])
    assert counts == [3, 2, 2]
    assert std[0] == pytest.approx(0.1)
    assert stats.mean_curve([[0.5]])[2] == [None]


def test_time_to_target_uses_the_mean_curve():
    curves = [[0.5, 0.8, 0.9], [0.7, 0.9, 0.95]]
    seconds = [[10, 20, 30], [12, 24, 36]]
    hit = stats.time_to_target(curves, seconds, 0.85)  # means 0.6, 0.85, 0.925
    assert (hit.epoch, hit.seconds) == (2, pytest.approx(22.0))
    assert stats.time_to_target(curves, seconds, 0.6).epoch == 1
    never = stats.time_to_target(curves, seconds, 0.99)
    assert (never.epoch, never.seconds) == (None, None)


def test_counts_say_their_noun_in_the_singular_for_one():
    from cnnlab.stats.formatting import counted

    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
