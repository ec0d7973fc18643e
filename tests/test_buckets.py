"""A histogram_quantile judged by bucket counts (verdict/buckets.py).

Reference p-values are exact binomial tails summed here in rational arithmetic, independent
of SciPy; the simulation checks the stated error rates over seeded draws.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import Sample
from pytest_rollout_slo.spec.model import NO_BOUNDS, Baseline, Bounds, Change, Confidence
from pytest_rollout_slo.verdict.buckets import histograms, judge_buckets
from pytest_rollout_slo.verdict.instant import Evaluation, UnjudgeableAnswer, Verdict

CONFIDENCE = Confidence(0.95)
BOUNDS = ("0.1", "0.25", "0.5", "1", "+Inf")
# Bounds 10 % apart: fine enough to tell a change of 20 %.
FINE = (*(f"{0.1 * 1.1 ** i:.6g}" for i in range(40)), "+Inf")
INCREASE = Baseline({"cohort": "control"}, None, "", Change(0.2, True, "20%", "percent"), None)


def answer(counts: tuple[float, ...], bounds: tuple[str, ...] = BOUNDS,
           labels: tuple[tuple[str, str], ...] = ()) -> list[Sample]:
    return [Sample(tuple(sorted((("le", le), *labels))), float(c))
            for le, c in zip(bounds, counts, strict=True)]


def at_least(k: int, n: int, p: Fraction) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed exactly."""
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def at_most(k: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1)))


def gate(counts: tuple[float, ...], maximum: float, q: float = 0.95,
         bounds: tuple[str, ...] = BOUNDS) -> Evaluation:
    return judge_buckets(answer(counts, bounds), None, Bounds(None, maximum), NO_BOUNDS, None,
                         CONFIDENCE, q, unit="seconds")


def test_many_requests_under_the_bound_pass_by_the_exact_tail() -> None:
    evaluation = gate((100, 198, 199, 200, 200), 0.25)  # 198 of 200 at most 250 ms
    assert evaluation.verdict is Verdict.PASS
    (test,) = evaluation.tests
    assert test.test == "histogram buckets"
    assert test.buckets == (0.25,) and test.counts == (198, 200)
    assert test.p_pass == pytest.approx(2 * at_least(198, 200, Fraction(95, 100)), rel=1e-9)
    assert "holds max 250ms" in evaluation.headline


def test_too_many_above_the_bound_fail_by_the_exact_tail() -> None:
    evaluation = gate((100, 170, 199, 200, 200), 0.25)
    assert evaluation.verdict is Verdict.FAIL
    (test,) = evaluation.tests
    assert test.p_fail == pytest.approx(2 * at_most(170, 200, Fraction(95, 100)), rel=1e-9)
    assert "breaks max 250ms" in evaluation.headline


def test_a_close_share_is_inconclusive_and_says_how_much_more_traffic_decides() -> None:
    evaluation = gate((10, 19, 20, 20, 20), 0.25)  # 19 of 20: 95 %, exactly the quantile
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    evaluation = gate((10, 39, 40, 40, 40), 0.25)  # 97.5 % of 40: leans to holding
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "more requests would decide" in evaluation.headline
    assert gate((1000, 1950, 2000, 2000, 2000), 0.25).verdict is Verdict.PASS


def test_a_bound_between_buckets_that_hold_the_quantile_is_undecidable_by_traffic() -> None:
    # p95 between 250 ms and 500 ms; max 300 ms lies between them.
    evaluation = gate((5000, 9000, 10000, 10000, 10000), 0.3)
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "the buckets next to the bound (le 250ms and 500ms)" in evaluation.headline
    assert "no amount of traffic decides; add a bucket bound" in evaluation.headline
    # The same counts judged against the bucket bounds themselves decide.
    assert gate((5000, 9000, 10000, 10000, 10000), 0.5).verdict is Verdict.PASS
    assert gate((5000, 9000, 10000, 10000, 10000), 0.25).verdict is Verdict.FAIL


def test_a_bound_below_every_bucket_can_only_fail() -> None:
    # Every request at most 100 ms: none of them tells whether the p95 is at most 50 ms.
    evaluation = gate((2000, 2000, 2000, 2000, 2000), 0.05)
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "(le 100ms) cannot tell" in evaluation.headline
    assert gate((10, 20, 20, 20, 20), 0.05).verdict is Verdict.FAIL


def test_the_interval_and_the_point_estimate() -> None:
    (test,) = gate((1000, 1950, 2000, 2000, 2000), 0.25).tests
    assert (test.low, test.high) == (0.1, 0.25)
    # histogram_quantile's interpolation: rank 1900 lies 900/950 into (100 ms, 250 ms].
    assert test.estimate == pytest.approx(0.1 + 0.15 * 900 / 950)


def test_no_request_in_the_window_is_no_data() -> None:
    evaluation = gate((0, 0, 0, 0, 0), 0.25)
    assert evaluation.verdict is Verdict.NO_DATA
    assert "no request in the window" in evaluation.reason
    assert gate((), 0.25, bounds=()).verdict is Verdict.NO_DATA


def test_every_series_is_judged_on_its_own() -> None:
    samples = (answer((100, 198, 199, 200, 200), labels=(("region", "eu"),))
               + answer((100, 150, 199, 200, 200), labels=(("region", "us"),)))
    evaluation = judge_buckets(samples, None, Bounds(None, 0.25), NO_BOUNDS, None, CONFIDENCE,
                               0.95, unit="seconds")
    assert evaluation.verdict is Verdict.FAIL
    assert [dict(t.labels) for t in evaluation.tests] == [{"region": "eu"}, {"region": "us"}]
    assert [t.verdict for t in evaluation.tests] == [Verdict.PASS, Verdict.FAIL]


@pytest.mark.parametrize(("samples", "message"), [
    ([Sample((), 3.0)], "a bucket series without an le label"),
    (answer((1, 2, 3, 4, 5), ("0.1", "0.2", "0.3", "0.4", "0.5")), 'no le="+Inf" bucket'),
    (answer((5,), ("+Inf",)), 'only the le="+Inf" bucket'),
    (answer((1, 2, 3, 4, 5), ("0.1", "x", "0.3", "0.4", "+Inf")), "le='x'"),
    (answer((1, 2, 3, 4, 5), ("0.1", "NaN", "0.3", "0.4", "+Inf")), "le='NaN' is not a number"),
    (answer((5, 3, 5, 5, 5)), "fewer than the 5 of the bucket below it"),
    (answer((1, math.nan, 3, 4, 5)), "holds nan"),
    (answer((1, 2, math.inf, 4, 5)), "holds inf"),
    (answer((-1, 2, 3, 4, 5)), "holds -1"),
    (answer((1, 2, 3, 4, 2.0 ** 64)), "holds 1.8"),
    (answer((1, 2), ("0.1", "0.1")), "two buckets le=0.1"),
])
def test_an_answer_that_is_no_histogram_is_an_error(samples: list[Sample], message: str) -> None:
    with pytest.raises(UnjudgeableAnswer, match=re.escape(message)):
        judge_buckets(samples, None, Bounds(None, 0.25), NO_BOUNDS, None, CONFIDENCE, 0.95,
                      unit="seconds")


def test_extrapolated_counts_are_rounded_and_small_disagreements_tolerated() -> None:
    (histogram,) = histograms(answer((99.7, 198.2, 197.9, 200.4, 200.4)), "x").values()
    assert histogram.counts == (100, 198, 198, 200, 200)


def compare(canary: tuple[float, ...], control: tuple[float, ...],
            bounds: tuple[str, ...] = FINE, q: float = 0.5) -> Evaluation:
    return judge_buckets(answer(canary, bounds), answer(control, bounds), NO_BOUNDS, NO_BOUNDS,
                         INCREASE, CONFIDENCE, q, unit="seconds")


def spread(center: int, total: int, bounds: tuple[str, ...] = FINE) -> tuple[int, ...]:
    """Cumulative counts of ``total`` requests spread evenly over the 5 buckets around
    bound index ``center``."""
    per = total // 5
    return tuple(min(total, max(0, (i - center + 3) * per)) if i < len(bounds) - 1 else total
                 for i in range(len(bounds)))


def test_an_equal_canary_with_fine_buckets_and_traffic_passes() -> None:
    evaluation = compare(spread(10, 50_000), spread(10, 50_000))
    assert evaluation.verdict is Verdict.PASS, evaluation.headline
    (test,) = evaluation.tests
    assert test.test == "histogram quantiles" and test.estimate == pytest.approx(1.0)
    canary_low, canary_high, control_low, control_high = test.buckets
    assert canary_low < canary_high <= 1.2 * control_low < 1.2 * control_high


def test_a_canary_three_buckets_slower_fails() -> None:
    # 1.1 ** 3 = 1.33: beyond max_increase 20 %.
    evaluation = compare(spread(13, 50_000), spread(10, 50_000))
    assert evaluation.verdict is Verdict.FAIL, evaluation.headline
    assert "breaks max_increase 20%" in evaluation.headline


def test_coarse_buckets_cannot_tell_a_change_and_say_so() -> None:
    evaluation = compare((50_000, 100_000, 100_000, 100_000, 100_000),
                         (50_000, 100_000, 100_000, 100_000, 100_000), BOUNDS, q=0.75)
    assert evaluation.verdict is Verdict.INCONCLUSIVE
    assert "too wide to tell a change of 20%" in evaluation.headline
    assert "add bucket bounds closer together" in evaluation.headline


def test_canary_and_control_with_other_buckets_are_an_error() -> None:
    with pytest.raises(UnjudgeableAnswer, match="buckets differ"):
        judge_buckets(answer((1, 2, 3, 4, 5)), answer((1, 2, 3, 4, 5), (*FINE[:4], "+Inf")),
                      NO_BOUNDS, NO_BOUNDS, INCREASE, CONFIDENCE, 0.5, unit="seconds")


def test_a_baseline_without_requests_is_no_data() -> None:
    evaluation = compare(spread(10, 1000), (0,) * len(FINE))
    assert evaluation.verdict is Verdict.NO_DATA
    assert "the baseline (cohort=control) has no request" in evaluation.reason


# -- outside input --------------------------------------------------------------------------

LE = st.one_of(st.sampled_from(["+Inf", "0.1", "0.25", "1", "NaN", "-1", "x", "1e3", "+inf"]),
               st.floats(allow_nan=True).map(repr))
VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.integers(min_value=0, max_value=10**6).map(float))


@given(st.lists(st.tuples(LE, VALUE), max_size=12), st.floats(0.001, 10.0))
def test_any_answer_is_a_verdict_or_an_error_and_a_pass_rests_on_a_count(
        buckets: list[tuple[str, float]], maximum: float) -> None:
    samples = [Sample((("le", le),), value) for le, value in buckets]
    try:
        evaluation = judge_buckets(samples, None, Bounds(None, maximum), NO_BOUNDS, None,
                                   CONFIDENCE, 0.9, unit="seconds")
    except UnjudgeableAnswer:
        return
    if evaluation.verdict is Verdict.PASS:
        (histogram,) = histograms(samples, "x").values()
        # Some bound at or below the max holds at least 90 % of the requests.
        assert any(bound <= maximum and count >= 0.9 * histogram.total
                   for bound, count in zip(histogram.bounds, histogram.counts, strict=True))


# -- error rates ----------------------------------------------------------------------------


def simulated(probabilities: list[float], n: int, runs: int, seed: int,
              maximum: float) -> dict[Verdict, int]:
    """Verdicts over ``runs`` draws of ``n`` requests into BOUNDS' buckets."""
    rng = np.random.default_rng(seed)
    verdicts: dict[Verdict, int] = {}
    for draw in rng.multinomial(n, probabilities, size=runs):
        counts = tuple(float(c) for c in np.cumsum(draw))
        verdict = gate(counts, maximum).verdict
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return verdicts


def test_a_real_breach_rarely_passes_and_a_real_hold_rarely_fails() -> None:
    # True share at most 250 ms: 94 %, so the p95 lies above it; a pass is a false pass,
    # at most 2.5 % per test at 95 % (one side of the interval).
    breach = simulated([0.5, 0.44, 0.04, 0.01, 0.01], 400, 1000, seed=1, maximum=0.25)
    assert breach.get(Verdict.PASS, 0) / 1000 < 0.035
    # True share 95 % exactly: on the bound; a fail is a false fail, at most 2.5 % too.
    hold = simulated([0.5, 0.45, 0.04, 0.01, 0.0], 400, 1000, seed=2, maximum=0.25)
    assert hold.get(Verdict.FAIL, 0) / 1000 < 0.035
    # Clearly within: mostly decided as a pass.
    clear = simulated([0.6, 0.39, 0.01, 0.0, 0.0], 400, 300, seed=3, maximum=0.25)
    assert clear.get(Verdict.PASS, 0) / 300 > 0.9
