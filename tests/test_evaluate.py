"""Verdict logic at its boundaries: judge, observe_values and observe_ratio."""

from __future__ import annotations

import math

import pytest

from pytest_rollout_slo.backends.base import Sample
from pytest_rollout_slo.spec.load import Bounds
from pytest_rollout_slo.verdict.instant import (
    AmbiguousAnswer,
    Observation,
    UnjudgeableAnswer,
    Verdict,
    judge,
    observe_ratio,
    observe_values,
    violation,
)

BOTH = Bounds(0.1, 0.5)
Labels = tuple[tuple[str, str], ...]


def _one(value: float | None, labels: Labels = ()) -> list[Observation]:
    return observe_values([Sample(labels, value)])


# -- judge ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.1, 0.5, 0.3])
def test_values_on_or_between_the_bounds_pass(value: float) -> None:
    evaluation = judge(_one(value), BOTH)
    assert evaluation.verdict is Verdict.PASS
    assert evaluation.violations == ()
    assert evaluation.reason == ""


@pytest.mark.parametrize(("value", "broken"), [
    (math.nextafter(0.1, -math.inf), "min"),
    (math.nextafter(0.5, math.inf), "max"),
    (-1.0, "min"),
    (7.0, "max"),
])
def test_one_step_outside_fails(value: float, broken: str) -> None:
    evaluation = judge(_one(value), BOTH)
    assert evaluation.verdict is Verdict.FAIL
    assert [o.value for o in evaluation.violations] == [value]
    assert violation(value, BOTH) == broken


@pytest.mark.parametrize("bounds", [Bounds(None, 5.0), Bounds(5.0, None)])
def test_one_sided_bounds_are_inclusive(bounds: Bounds) -> None:
    assert judge(_one(5.0), bounds).verdict is Verdict.PASS
    beyond = math.nextafter(5.0, math.inf if bounds.max is not None else -math.inf)
    assert judge(_one(beyond), bounds).verdict is Verdict.FAIL


def test_min_equal_to_max() -> None:
    bounds = Bounds(0.05, 0.05)
    assert judge(_one(0.05), bounds).verdict is Verdict.PASS
    assert judge(_one(math.nextafter(0.05, 1.0)), bounds).verdict is Verdict.FAIL
    assert judge(_one(math.nextafter(0.05, 0.0)), bounds).verdict is Verdict.FAIL


def test_nan_is_no_data() -> None:
    evaluation = judge(_one(math.nan), BOTH)
    assert evaluation.verdict is Verdict.NO_DATA
    assert evaluation.reason == "the query returned NaN"
    assert evaluation.violations == ()


def test_none_is_no_data() -> None:
    evaluation = judge(_one(None), BOTH)
    assert evaluation.verdict is Verdict.NO_DATA
    assert evaluation.reason == "the query returned NULL"


def test_empty_is_no_data_with_the_given_reason() -> None:
    evaluation = judge([], BOTH, empty_reason="no rows in window 6h")
    assert evaluation.verdict is Verdict.NO_DATA
    assert evaluation.reason == "no rows in window 6h"
    assert evaluation.observations == ()
    assert judge([], BOTH).reason == "no series returned"


@pytest.mark.parametrize("value", [math.inf, -math.inf])
@pytest.mark.parametrize("bounds", [Bounds(None, 10.0), Bounds(0.0, None), BOTH])
def test_an_infinity_is_never_judged(value: float, bounds: Bounds) -> None:
    # -Inf passes every max: an infinity that got past a backend is an error, never a verdict.
    with pytest.raises(UnjudgeableAnswer, match=r"non-finite value -?inf, which no bound"):
        judge(_one(value), bounds)


@pytest.mark.parametrize(("numerator", "denominator"), [
    (1.0, math.inf), (math.inf, 10.0), (-3.0, 100.0), (3.0, -100.0), (0.0, -math.inf)])
def test_a_ratio_part_that_is_infinite_or_negative_is_never_judged(
        numerator: float, denominator: float) -> None:
    # 0/+Inf reads 0 %, -3/100 reads -3 %: both would pass max: 5%.
    with pytest.raises(UnjudgeableAnswer, match="finite and never negative"):
        observe_ratio([Sample((), numerator)], [Sample((), denominator)], 0.0)


def test_a_value_outside_fails_even_if_another_is_nan() -> None:
    observations = observe_values([
        Sample((("region", "eu"),), math.nan),
        Sample((("region", "us"),), 0.9),
        Sample((("region", "ap"),), 0.2),
        Sample((("region", "sa"),), None),
    ])
    evaluation = judge(observations, BOTH)
    assert evaluation.verdict is Verdict.FAIL
    assert [o.labels for o in evaluation.violations] == [(("region", "us"),)]
    assert evaluation.violations[0].label_text() == '{region="us"}'


def test_all_inside_but_one_nan_is_no_data() -> None:
    observations = observe_values([
        Sample((("region", "eu"),), 0.2),
        Sample((("region", "us"),), math.nan),
        Sample((("region", "ap"),), 0.5),
    ])
    evaluation = judge(observations, BOTH)
    assert evaluation.verdict is Verdict.NO_DATA
    assert evaluation.reason == "the query returned NaN"


def test_no_data_reasons_are_joined_once_each() -> None:
    observations = observe_values([Sample((), math.nan), Sample((), None), Sample((), math.nan)])
    assert judge(observations, BOTH).reason == (
        "the query returned NaN; the query returned NULL")


def test_every_violation_is_listed_in_answer_order() -> None:
    observations = observe_values([Sample((("r", str(i)),), v)
                                   for i, v in enumerate([0.0, 0.2, 0.6, 0.3, 0.05])])
    evaluation = judge(observations, BOTH)
    assert evaluation.verdict is Verdict.FAIL
    assert [o.labels for o in evaluation.violations] == [
        (("r", "0"),), (("r", "2"),), (("r", "4"),)]


def test_observe_values_keeps_labels_and_values() -> None:
    observations = observe_values([Sample((("le", "1"),), 3.0), Sample((), None)])
    assert [(o.labels, o.value, o.missing) for o in observations] == [
        ((("le", "1"),), 3.0, False), ((), None, True)]


# -- observe_ratio -------------------------------------------------------------------------------


def test_ratio_of_single_values() -> None:
    observations, reason = observe_ratio([Sample((), 62.0)], [Sample((), 1000.0)], 50.0, "6h")
    assert reason == ""
    assert len(observations) == 1
    assert observations[0].value == pytest.approx(0.062)
    assert observations[0].parts == (62.0, 1000.0)
    evaluation = judge(observations, Bounds(None, 0.05))
    assert evaluation.verdict is Verdict.FAIL


def test_zero_over_zero_is_no_traffic_in_the_window() -> None:
    observations, _ = observe_ratio([Sample((), 0.0)], [Sample((), 0.0)], 0.0, "6h")
    evaluation = judge(observations, Bounds(None, 0.05))
    assert evaluation.verdict is Verdict.NO_DATA
    assert "no traffic in window 6h" in evaluation.reason
    assert observations[0].value is None


def test_zero_denominator_without_window() -> None:
    observations, _ = observe_ratio([Sample((), 3.0)], [Sample((), 0.0)], 0.0)
    assert observations[0].value is None
    assert "no traffic" in observations[0].reason
    assert "window" not in observations[0].reason


def test_denominator_below_min_denominator_names_both_numbers() -> None:
    observations, _ = observe_ratio([Sample((), 1.0)], [Sample((), 12.0)], 50.0, "6h")
    evaluation = judge(observations, Bounds(None, 0.05))
    assert evaluation.verdict is Verdict.NO_DATA
    assert "12" in evaluation.reason and "50" in evaluation.reason
    assert "min_denominator" in evaluation.reason


def test_denominator_equal_to_min_denominator_is_enough() -> None:
    observations, _ = observe_ratio([Sample((), 1.0)], [Sample((), 50.0)], 50.0)
    assert observations[0].value == pytest.approx(0.02)
    assert judge(observations, Bounds(None, 0.05)).verdict is Verdict.PASS


@pytest.mark.parametrize("numerator", [
    pytest.param([], id="no-series"),
    pytest.param([Sample((), None)], id="null"),
    pytest.param([Sample((), math.nan)], id="nan"),
])
def test_missing_numerator_with_traffic_is_no_data_never_zero(numerator: list[Sample]) -> None:
    observations, _ = observe_ratio(numerator, [Sample((), 1000.0)], 0.0, "6h")
    evaluation = judge(observations, Bounds(None, 0.05))
    assert evaluation.verdict is Verdict.NO_DATA
    assert "numerator returned no data" in evaluation.reason
    assert all(o.value is None for o in observations)


@pytest.mark.parametrize("denominator", [
    pytest.param([], id="no-series"),
    pytest.param([Sample((), None)], id="null"),
    pytest.param([Sample((), math.nan)], id="nan"),
])
def test_missing_denominator_is_no_data(denominator: list[Sample]) -> None:
    observations, _ = observe_ratio([Sample((), 5.0)], denominator, 0.0)
    evaluation = judge(observations, Bounds(None, 0.05))
    assert evaluation.verdict is Verdict.NO_DATA
    assert "denominator returned no data" in evaluation.reason


def test_both_sides_empty() -> None:
    observations, reason = observe_ratio([], [], 0.0, "6h")
    assert observations == []
    assert reason == "numerator and denominator returned no data"
    evaluation = judge(observations, Bounds(None, 0.05), empty_reason=reason)
    assert evaluation.verdict is Verdict.NO_DATA
    assert evaluation.reason == reason


def test_series_are_matched_on_labels_ignoring_metric_name() -> None:
    numerator = [
        Sample((("__name__", "errors"), ("region", "us")), 30.0),
        Sample((("__name__", "errors"), ("region", "eu")), 5.0),
    ]
    denominator = [
        Sample((("__name__", "requests"), ("region", "eu")), 100.0),
        Sample((("__name__", "requests"), ("region", "us")), 1000.0),
    ]
    observations, reason = observe_ratio(numerator, denominator, 0.0)
    assert reason == ""
    by_labels = {o.labels: o.value for o in observations}
    assert by_labels == {(("region", "eu"),): pytest.approx(0.05),
                         (("region", "us"),): pytest.approx(0.03)}
    assert judge(observations, Bounds(None, 0.04)).violations[0].labels == (("region", "eu"),)


def test_a_series_missing_on_one_side_is_no_data_for_that_series() -> None:
    numerator = [Sample((("region", "eu"),), 1.0)]
    denominator = [Sample((("region", "eu"),), 100.0), Sample((("region", "us"),), 100.0)]
    observations, _ = observe_ratio(numerator, denominator, 0.0)
    by_labels = {o.labels: o for o in observations}
    assert by_labels[(("region", "eu"),)].value == pytest.approx(0.01)
    assert by_labels[(("region", "us"),)].value is None
    assert "numerator returned no data" in by_labels[(("region", "us"),)].reason
    assert judge(observations, Bounds(None, 0.05)).verdict is Verdict.NO_DATA


def test_single_series_each_side_pair_whatever_their_labels() -> None:
    observations, _ = observe_ratio([Sample((("code", "500"),), 10.0)],
                                    [Sample((("job", "api"),), 200.0)], 0.0)
    assert len(observations) == 1
    assert observations[0].value == pytest.approx(0.05)
    assert observations[0].parts == (10.0, 200.0)


def test_duplicate_labels_on_one_side_are_not_silently_dropped() -> None:
    # Two numerator series with the same labels (two SQL rows for `eu`, or two metrics that
    # differ only in __name__) collide on their match key; silently keeping the last one
    # turns a 90 % error rate into a pass.
    numerator = [Sample((("region", "eu"),), 90.0), Sample((("region", "eu"),), 1.0),
                 Sample((("region", "us"),), 1.0)]
    denominator = [Sample((("region", "eu"),), 100.0), Sample((("region", "us"),), 100.0)]
    with pytest.raises(AmbiguousAnswer, match=r'several series with the labels \{region="eu"\}'):
        observe_ratio(numerator, denominator, 0.0)
