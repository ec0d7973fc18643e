"""Confidence verdicts: intervals, tests, the "more traffic" search, family adjustments.

Reference values are independent of SciPy: Newcombe (1998), "Two-sided confidence intervals
for the single proportion: comparison of seven methods", Statistics in Medicine 17, Table II
(the score interval, method 3, and the exact Clopper-Pearson one, method 5, at 95 %); closed
forms for 0 of n and n of n; and a brute-force Clopper-Pearson written here with math.comb
and bisection, and Wilson's closed form with the standard library's NormalDist. A seeded
simulation checks the error rates the docs promise.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import Sample
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Baseline, Bounds, Change, Confidence
from pytest_rollout_slo.verdict import stats
from pytest_rollout_slo.verdict.confidence import (
    MORE_CAP,
    adjust_family,
    judge_baseline_counts,
    judge_shares,
    more_needed,
    share_p_values,
)
from pytest_rollout_slo.verdict.gates import pair_baseline
from pytest_rollout_slo.verdict.instant import (
    Observation,
    UnjudgeableAnswer,
    Verdict,
    observe_ratio,
)

EXACT = Confidence(0.95)
WILSON = Confidence(0.95, "wilson")

# Newcombe (1998), Table II: (k, n) -> (score interval, exact interval), 4 decimals.
NEWCOMBE = [
    ((81, 263), (0.2553, 0.3662), (0.2527, 0.3676)),
    ((15, 148), (0.0624, 0.1605), (0.0578, 0.1617)),
    ((0, 20), (0.0, 0.1611), (0.0, 0.1684)),
    ((1, 29), (0.0061, 0.1718), (0.0009, 0.1776)),
]


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


def _bisect(f: object, low: float, high: float) -> float:
    assert callable(f)
    for _ in range(200):
        middle = (low + high) / 2
        if f(middle):
            high = middle
        else:
            low = middle
    return (low + high) / 2


def brute_clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    """By definition: the p at which each one-sided tail is (1 - level) / 2."""
    alpha = (1 - level) / 2
    low = 0.0 if k == 0 else _bisect(lambda p: 1 - _binomial_cdf(k - 1, n, p) >= alpha, 0, 1)
    high = 1.0 if k == n else _bisect(lambda p: _binomial_cdf(k, n, p) <= alpha, 0, 1)
    return low, high


def wilson_closed_form(k: int, n: int, level: float) -> tuple[float, float]:
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# -- intervals -----------------------------------------------------------------------------


@pytest.mark.parametrize(("counts", "score", "exact"), NEWCOMBE)
def test_intervals_match_newcombe_1998(counts: tuple[int, int], score: tuple[float, float],
                                       exact: tuple[float, float]) -> None:
    assert [round(v, 4) for v in stats.interval(*counts, 0.95, "wilson")] == list(score)
    assert [round(v, 4) for v in stats.interval(*counts, 0.95, "clopper-pearson")] == list(exact)


@pytest.mark.parametrize("n", [1, 10, 100, 1000])
def test_clopper_pearson_of_none_and_all_have_closed_forms(n: int) -> None:
    # 0 of n: upper = 1 - (alpha/2)^(1/n); n of n: lower = (alpha/2)^(1/n).
    assert stats.interval(0, n, 0.95, "clopper-pearson") == pytest.approx(
        (0.0, 1 - 0.025 ** (1 / n)), abs=1e-12)
    assert stats.interval(n, n, 0.95, "clopper-pearson") == pytest.approx(
        (0.025 ** (1 / n), 1.0), abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 100), (7, 50), (1, 2), (0, 1),
                                      (1, 1), (250, 400)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_intervals_against_brute_force_and_closed_form(k: int, n: int, level: float) -> None:
    exact = stats.interval(k, n, level, "clopper-pearson")
    wilson = stats.interval(k, n, level, "wilson")
    assert exact == pytest.approx(brute_clopper_pearson(k, n, level), abs=1e-9)
    assert wilson == pytest.approx(wilson_closed_form(k, n, level), abs=1e-9)
    # Both hold the estimate (neither nests in the other in general: 3 of 100 at 99 %).
    assert exact[0] <= k / n <= exact[1] and wilson[0] <= k / n <= wilson[1]


def test_huge_counts_agree_with_the_normal_approximation() -> None:
    k, n = 1_000_000, 1_000_000_000
    p = k / n
    half = NormalDist().inv_cdf(0.975) * math.sqrt(p * (1 - p) / n)
    for method in stats.METHODS:
        low, high = stats.interval(k, n, 0.95, method)
        assert low == pytest.approx(p - half, rel=1e-3)
        assert high == pytest.approx(p + half, rel=1e-3)


def test_the_3_of_100_example_of_the_issue() -> None:
    low, high = stats.interval(3, 100, 0.95, "clopper-pearson")
    assert (round(low * 100, 1), round(high * 100, 1)) == (0.6, 8.5)


# -- adjustments --------------------------------------------------------------------------------


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03]
    # Holm: sorted 0.01*3, 0.03*2, 0.04*1, made monotone.
    assert stats.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    # BH: 0.01*3/1, 0.03*3/2, 0.04*3/3, made monotone from the top.
    assert stats.adjust(p, "bh") == pytest.approx([0.03, 0.04, 0.04])
    assert stats.adjust(p, "none") == p
    assert stats.adjust([0.5], "holm") == [0.5]


# -- verdicts -----------------------------------------------------------------------------------


def ratio(k: float, n: float, labels: tuple[tuple[str, str], ...] = ()) -> Observation:
    return observe_ratio([Sample(labels, k)], [Sample(labels, n)], 0)[0][0]


MAX_5 = Bounds(None, 0.05)


def test_too_little_traffic_is_inconclusive_and_says_how_much_more() -> None:
    evaluation = judge_shares([ratio(3, 100)], MAX_5, Bounds(None, None), EXACT, unit="percent")
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert evaluation.headline.startswith(
        "3.00% (95% CI 0.62% to 8.52%) cannot be told from max 5.00%; about ")
    assert evaluation.headline.endswith(" more requests would decide")
    extra, exact = more_needed(3, 100, [("max", 0.05)], EXACT)
    assert exact
    # At the current rate, that much more traffic decides (the interval clears 5 %).
    total = 100 + extra
    assert stats.interval(round(0.03 * total), total, 0.95, "clopper-pearson")[1] < 0.05
    assert stats.interval(round(0.03 * (100 + extra // 2)), 100 + extra // 2, 0.95,
                          "clopper-pearson")[1] > 0.05


def test_more_traffic_decides() -> None:
    passed = judge_shares([ratio(30, 1000)], MAX_5, Bounds(None, None), EXACT, unit="percent")
    assert passed.verdict is Verdict.PASS
    assert passed.headline.startswith("3.00% (95% CI 2.03% to 4.26%) holds max 5.00% (p = ")
    failed = judge_shares([ratio(90, 1000)], MAX_5, Bounds(None, None), EXACT, unit="percent")
    assert failed.verdict is Verdict.FAIL
    assert "breaks max 5.00%" in failed.headline


def test_a_rate_at_the_bound_never_decides_and_says_more_than() -> None:
    evaluation = judge_shares([ratio(50, 1000)], MAX_5, Bounds(None, None), EXACT,
                              unit="percent")
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert f"more than {1000 * MAX_CAP_MINUS_ONE:,} more requests" in evaluation.headline


MAX_CAP_MINUS_ONE = MORE_CAP - 1


def test_counts_are_rounded_and_a_numerator_above_the_denominator_is_an_error() -> None:
    # increase() extrapolates: 29.6 of 1000.4 reads as 30 of 1000.
    evaluation = judge_shares([ratio(29.6, 1000.4)], MAX_5, Bounds(None, None), EXACT,
                              unit="percent")
    assert evaluation.tests[0].counts == (30, 1000)
    with pytest.raises(UnjudgeableAnswer, match="exceeds its denominator"):
        judge_shares([ratio(12, 10)], MAX_5, Bounds(None, None), EXACT, unit="percent")
    # Beyond 2**53 a float holds no whole count (and SciPy takes 64-bit integers only).
    with pytest.raises(UnjudgeableAnswer, match="where counts stop being whole numbers"):
        judge_shares([ratio(1e18, 2.0 ** 64)], MAX_5, Bounds(None, None), EXACT,
                     unit="percent")


def test_missing_values_are_no_data_never_a_pass() -> None:
    evaluation = judge_shares([ratio(0, 0)], MAX_5, Bounds(None, None), EXACT, unit="percent")
    assert evaluation.verdict is Verdict.NO_DATA
    assert judge_shares([], MAX_5, Bounds(None, None), EXACT,
                        unit="percent").verdict is Verdict.NO_DATA


def test_a_min_bound_and_both_bounds() -> None:
    both = Bounds(0.9, 0.99)
    assert judge_shares([ratio(950, 1000)], both, Bounds(None, None), EXACT,
                        unit="percent").verdict is Verdict.PASS
    assert judge_shares([ratio(800, 1000)], both, Bounds(None, None), EXACT,
                        unit="percent").verdict is Verdict.FAIL
    assert judge_shares([ratio(9, 10)], both, Bounds(None, None), EXACT,
                        unit="percent").verdict is Verdict.INCONCLUSIVE


def test_one_failing_series_fails_the_objective() -> None:
    eu, us = (("region", "eu"),), (("region", "us"),)
    evaluation = judge_shares([ratio(1, 1000, eu), ratio(200, 1000, us)], MAX_5,
                              Bounds(None, None), EXACT, unit="percent")
    assert evaluation.verdict is Verdict.FAIL
    assert 'region="us"' in "\n".join(evaluation.details)


# -- canary against control ----------------------------------------------------------------------

INCREASE_20 = Baseline({"cohort": "control"}, None, "", Change(0.2, True, "20%", "percent"),
                       None)


def compare(canary: tuple[int, int], control: tuple[int, int]) -> Verdict:
    now, before = [ratio(*canary)], [ratio(*control)]
    return judge_baseline_counts(now, before, pair_baseline(now, before, ("cohort",)),
                                 Bounds(None, None), Bounds(None, None), INCREASE_20, EXACT,
                                 unit="percent").verdict


def test_a_real_regression_fails_by_significance() -> None:
    assert compare((200, 5000), (100, 5000)) is Verdict.FAIL


def test_a_noisy_but_equal_canary_passes() -> None:
    assert compare((1000, 50_000), (1000, 50_000)) is Verdict.PASS


def test_a_difference_chance_explains_is_inconclusive() -> None:
    # The issue's example: 4.5 % against 3.2 % "fails max_increase 20 %" on points only.
    assert compare((45, 1000), (32, 1000)) is Verdict.INCONCLUSIVE
    assert compare((0, 1000), (0, 1000)) is Verdict.INCONCLUSIVE


def test_the_more_traffic_a_canary_needs_decides_at_the_same_rates() -> None:
    now, before = [ratio(45, 1000)], [ratio(32, 1000)]
    evaluation = judge_baseline_counts(now, before, pair_baseline(now, before, ()),
                                       Bounds(None, None), Bounds(None, None), INCREASE_20,
                                       EXACT, unit="percent")
    more = evaluation.tests[0].more
    assert more.startswith("about ") and "canary requests" in more
    extra = int(more.split()[1].replace(",", ""))
    factor = (1000 + extra) / 1000 * 1.02  # the text rounds to two significant digits
    assert compare((round(45 * factor), round(1000 * factor)),
                   (round(32 * factor), round(1000 * factor))) is not Verdict.INCONCLUSIVE


def test_the_rate_ratio_interval_is_the_conditional_binomial_one() -> None:
    now, before = [ratio(200, 5000)], [ratio(100, 5000)]
    evaluation = judge_baseline_counts(now, before, pair_baseline(now, before, ()),
                                       Bounds(None, None), Bounds(None, None), INCREASE_20,
                                       EXACT, unit="percent")
    test = evaluation.tests[0]
    low, high = brute_clopper_pearson(200, 300, 0.95)
    assert (test.low, test.high) == pytest.approx((low / (1 - low), high / (1 - high)),
                                                  rel=1e-6)
    assert test.estimate == pytest.approx(2.0)


# -- the family -----------------------------------------------------------------------------------


def test_holm_turns_a_borderline_fail_into_inconclusive() -> None:
    # 70 of 1000 against max 5 %: p for a breach about 0.008 alone.
    borderline = judge_shares([ratio(70, 1000)], MAX_5, Bounds(None, None), EXACT,
                              unit="percent")
    assert borderline.verdict is Verdict.FAIL
    p = borderline.tests[0].p_fail
    assert p < 0.05
    others = [judge_shares([ratio(40, 1000)], MAX_5, Bounds(None, None), EXACT, unit="percent")
              for _ in range(9)]
    adjusted = adjust_family([borderline, *others], "holm", ["percent"] * 10)
    assert adjusted[0].tests[0].adjusted == pytest.approx(min(1.0, 10 * p))
    assert adjusted[0].verdict is Verdict.INCONCLUSIVE
    assert adjusted[0].adjustment == "Holm" and adjusted[0].family == 10
    none = adjust_family([borderline, *others], "none", ["percent"] * 10)
    assert none[0].verdict is Verdict.FAIL


# -- error rates: a seeded simulation ------------------------------------------------------------

STAGES = 4000


def _verdicts(rate: float, n: int, bounds: Bounds, confidence: Confidence,
              seed: int) -> list[Verdict]:
    rng = np.random.default_rng(seed)
    alpha = 1 - confidence.level
    result = []
    for k in rng.binomial(n, rate, STAGES):
        p_fail, p_pass = share_p_values(int(k), n, bounds, confidence)
        result.append(Verdict.FAIL if p_fail < alpha else
                      Verdict.PASS if p_pass < alpha else Verdict.INCONCLUSIVE)
    return result


@pytest.mark.parametrize("confidence", [EXACT, WILSON], ids=["exact", "wilson"])
def test_false_fails_and_false_passes_stay_below_the_level(confidence: Confidence) -> None:
    # The worst case for both errors: the true rate on the bound itself.
    on_bound = _verdicts(0.05, 400, MAX_5, confidence, seed=15)
    false_fails = on_bound.count(Verdict.FAIL) / STAGES
    # A two-sided 95 % interval errs 2.5 % on each side; Clopper-Pearson never more.
    limit = 0.025 if confidence is EXACT else 0.035
    assert false_fails <= limit
    breach = _verdicts(0.0525, 400, MAX_5, confidence, seed=16)
    assert breach.count(Verdict.PASS) / STAGES <= limit
    # Far from the bound, the test decides.
    assert _verdicts(0.01, 2000, MAX_5, confidence, seed=17).count(Verdict.PASS) > 0.95 * STAGES


def test_holm_keeps_the_family_false_fail_rate() -> None:
    rng = np.random.default_rng(42)
    runs, size = 400, 10
    any_false = 0
    for _ in range(runs):
        # Ten objectives of one run, each with its true rate on its bound.
        p_values = [share_p_values(int(k), 400, MAX_5, EXACT)[0]
                    for k in rng.binomial(400, 0.05, size)]
        any_false += min(stats.adjust(p_values, "holm")) < 0.05
    assert any_false / runs <= 0.05
    # Without it, a false fail in some objective of the run is far more likely.
    unadjusted = sum(min(share_p_values(int(k), 400, MAX_5, EXACT)[0]
                         for k in rng.binomial(400, 0.05, size)) < 0.05 for _ in range(runs))
    assert unadjusted > any_false


# -- properties ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(k=st.integers(0, 10_000), extra=st.integers(0, 10_000),
       bound=st.floats(0.001, 0.999), side=st.sampled_from(["min", "max"]),
       method=st.sampled_from(["clopper-pearson", "wilson"]))
def test_never_passes_when_the_value_breaks_the_bound(k: int, extra: int, bound: float,
                                                      side: str, method: str) -> None:
    n = k + extra
    bounds = Bounds(None, bound) if side == "max" else Bounds(bound, None)
    confidence = Confidence(0.95, method)  # type: ignore[arg-type]
    evaluation = judge_shares([ratio(k, n)], bounds, Bounds(None, None), confidence,
                              unit="percent")
    value = k / n if n else None
    if value is None:
        assert evaluation.verdict is Verdict.NO_DATA
    elif (side == "max" and value > bound) or (side == "min" and value < bound):
        assert evaluation.verdict is not Verdict.PASS


@settings(max_examples=100, deadline=None)
@given(k=st.floats(0, 1e12), n=st.floats(0, 1e12))
def test_never_throws_on_non_negative_counts(k: float, n: float) -> None:
    try:
        evaluation = judge_shares([ratio(min(k, n), n)], MAX_5, Bounds(None, None), EXACT,
                                  unit="percent")
    except UnjudgeableAnswer as exc:  # a numerator that rounds above its denominator
        assert "exceeds" in str(exc)
        return
    assert evaluation.verdict in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE,
                                  Verdict.NO_DATA)


# -- the spec -----------------------------------------------------------------------------------


def test_confidence_without_scipy_is_a_spec_error_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_rollout_slo.backends.registry import BUILTIN_TYPES

    spec = tmp_path / "x.yaml"
    spec.write_text(
        "version: 1\nservice: s\nbackends:\n  db: {type: sqlite, path: x.db}\n"
        "stages:\n  beta: {}\nobjectives:\n  - name: e\n    confidence: 95%\n    max: 5%\n"
        "    ratio: {numerator: SELECT 1, denominator: SELECT 2}\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(SpecError) as info:
        load_spec(spec, {t.name: t for t in BUILTIN_TYPES})
    assert "pip install 'pytest-rollout-slo[stats]'" in str(info.value)
    assert ":9:" in str(info.value) or "line 9" in str(info.value)
