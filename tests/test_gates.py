"""Verdict logic of the gates beyond one instant, at their boundaries.

Warn levels (``judge(warn=...)``), exact quantiles, sustained objectives, baselines and
error-budget burn rates: each at the bound, one step over it (``math.nextafter``), NaN and
empty, as issue 4 requires.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

import pytest

from pytest_rollout_slo.spec.model import (
    NO_BOUNDS,
    Baseline,
    Bounds,
    BurnAlert,
    BurnRate,
    Change,
    Sustained,
)
from pytest_rollout_slo.verdict.gates import (
    judge_baseline,
    judge_burn_rate,
    judge_sustained,
    observe_quantile,
    quantile,
)
from pytest_rollout_slo.verdict.instant import AmbiguousAnswer, Observation, Verdict, judge

NAN = float("nan")
INF = math.inf
Labels = tuple[tuple[str, str], ...]
Points = list[tuple[float, list[Observation]]]


def up(value: float) -> float:
    return math.nextafter(value, INF)


def down(value: float) -> float:
    return math.nextafter(value, -INF)


def obs(value: float | None, labels: Labels = (), reason: str = "") -> Observation:
    return Observation(labels, value, reason)


def fmt(at: float) -> str:
    return f"T{at:g}"


# -- quantile ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_quantile_matches_statistics_inclusive(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(2, 300)
    data = [rng.uniform(-1e3, 1e3) if seed % 2 else float(rng.randint(0, 20))
            for _ in range(size)]
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    for percent in (50, 90, 95, 99):
        expected = cuts[percent - 1]
        got = quantile(data, percent / 100)
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (percent, got, expected)


@pytest.mark.parametrize("seed", range(10))
def test_quantile_every_percentile_matches_statistics(seed: int) -> None:
    rng = random.Random(1000 + seed)
    data = [rng.expovariate(1 / 0.2) for _ in range(rng.randint(2, 50))]
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    for percent, expected in enumerate(cuts, start=1):
        assert math.isclose(quantile(data, percent / 100), expected, rel_tol=1e-9,
                            abs_tol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_quantile_zero_and_one_are_min_and_max(seed: int) -> None:
    rng = random.Random(2000 + seed)
    data = [rng.gauss(0, 1) for _ in range(rng.randint(1, 60))]
    assert quantile(data, 0) == min(data)
    assert quantile(data, 1) == max(data)


def test_quantile_of_one_value_is_that_value() -> None:
    for q in (0.0, 0.5, 0.95, 1.0):
        assert quantile([3.25], q) == 3.25


def test_quantile_of_two_values_interpolates() -> None:
    assert quantile([10.0, 20.0], 0.5) == 15.0
    assert quantile([10.0, 20.0], 0.95) == pytest.approx(19.5)
    assert quantile([20.0, 10.0], 0.0) == 10.0
    assert quantile([20.0, 10.0], 1.0) == 20.0


def test_quantile_sorts_unsorted_input_and_leaves_it_alone() -> None:
    data = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert quantile(data, 0.5) == 3.0
    assert quantile(data, 0.25) == 2.0
    assert quantile(data, 0.9) == pytest.approx(4.6)
    assert data == [5.0, 1.0, 4.0, 2.0, 3.0]


def test_quantile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)


def test_observe_quantile_ignores_labels() -> None:
    observations = [obs(1.0, (("a", "x"),)), obs(3.0, (("a", "y"),)), obs(2.0)]
    result, reason = observe_quantile(observations, 0.5)
    assert reason == ""
    assert len(result) == 1
    assert result[0].labels == ()
    assert result[0].value == 2.0
    assert "3 values" in result[0].reason


@pytest.mark.parametrize("values", [[1.0, NAN, 2.0], [None, 5.0], [NAN], [None, NAN]])
def test_a_missing_value_makes_the_quantile_no_data(values: list[float | None]) -> None:
    # A NULL duration is often the request that timed out: leaving it out would flatter p95.
    result, reason = observe_quantile([obs(v) for v in values], 0.95)
    missing = sum(1 for v in values if v is None or math.isnan(v))
    assert len(result) == 1 and result[0].missing
    assert f"{missing} of {len(values)} values are missing" in result[0].reason
    assert judge(result, Bounds(None, 1e9), empty_reason=reason).verdict is Verdict.NO_DATA


def test_observe_quantile_without_values_is_no_data() -> None:
    result, reason = observe_quantile([], 0.95)
    assert result == []
    assert "no values" in reason
    assert judge(result, Bounds(None, 1.0), empty_reason=reason).verdict is Verdict.NO_DATA


# -- warn levels ------------------------------------------------------------------------------

BOUNDS = Bounds(0.01, 0.05)
WARN = Bounds(0.02, 0.03)


@pytest.mark.parametrize(("value", "verdict"), [
    pytest.param(0.03, Verdict.PASS, id="at-warn-max"),
    pytest.param(up(0.03), Verdict.WARN, id="just-over-warn-max"),
    pytest.param(0.05, Verdict.WARN, id="at-max"),
    pytest.param(up(0.05), Verdict.FAIL, id="just-over-max"),
    pytest.param(0.02, Verdict.PASS, id="at-warn-min"),
    pytest.param(down(0.02), Verdict.WARN, id="just-under-warn-min"),
    pytest.param(0.01, Verdict.WARN, id="at-min"),
    pytest.param(down(0.01), Verdict.FAIL, id="just-under-min"),
    pytest.param(0.025, Verdict.PASS, id="inside"),
    pytest.param(NAN, Verdict.NO_DATA, id="nan"),
    pytest.param(None, Verdict.NO_DATA, id="null"),
])
def test_judge_with_warn(value: float | None, verdict: Verdict) -> None:
    evaluation = judge([obs(value)], BOUNDS, warn=WARN)
    assert evaluation.verdict is verdict
    assert evaluation.warn == WARN
    assert len(evaluation.warnings) == (1 if verdict is Verdict.WARN else 0)


def test_judge_with_warn_and_nothing_returned_is_no_data() -> None:
    evaluation = judge([], BOUNDS, warn=WARN)
    assert evaluation.verdict is Verdict.NO_DATA
    assert evaluation.reason == "no series returned"


def test_judge_fail_beats_warn_and_no_data_beats_warn() -> None:
    assert judge([obs(0.04), obs(0.06)], BOUNDS, warn=WARN).verdict is Verdict.FAIL
    assert judge([obs(0.04), obs(NAN)], BOUNDS, warn=WARN).verdict is Verdict.NO_DATA


def test_judge_warns_once_per_value_outside_the_warning_level() -> None:
    evaluation = judge([obs(0.025, (("r", "eu"),)), obs(0.04, (("r", "us"),))], BOUNDS,
                       warn=WARN)
    assert evaluation.verdict is Verdict.WARN
    assert [o.labels for o in evaluation.warnings] == [(("r", "us"),)]


def test_judge_without_warn_never_warns() -> None:
    assert judge([obs(0.049)], BOUNDS).verdict is Verdict.PASS


# -- sustained --------------------------------------------------------------------------------

SUSTAINED = Sustained(over=4 * 3600.0, step=3600.0, max_violations=2, over_text="4h",
                      step_text="1h")
MAX_ONLY = Bounds(None, 10.0)
T0 = 1_764_158_400.0


def series(values: Sequence[float | None], labels: Labels = ()) -> Points:
    return [(T0 + k * 3600.0, [obs(v, labels)]) for k, v in enumerate(values)]


def sustained(points: Points, *, bounds: Bounds = MAX_ONLY, warn: Bounds = NO_BOUNDS,
              spec: Sustained = SUSTAINED, missing_counts: bool = True) -> Verdict:
    return judge_sustained(points, bounds, warn, spec, missing_counts=missing_counts,
                           unit="number", format_time=fmt).verdict


def test_sustained_violations_equal_to_max_violations_pass() -> None:
    assert sustained(series([1, 11, 1, 12, 1])) is Verdict.PASS


def test_sustained_one_violation_more_fails() -> None:
    assert sustained(series([1, 11, 1, 12, 13])) is Verdict.FAIL


def test_sustained_boundary_value_is_inside_and_one_step_over_is_a_violation() -> None:
    spec = Sustained(3600.0, 3600.0, 0, "1h", "1h")
    assert sustained(series([10.0, 10.0]), spec=spec) is Verdict.PASS
    assert sustained(series([10.0, up(10.0)]), spec=spec) is Verdict.FAIL


def test_sustained_failure_text_shows_count_total_period_and_worst_points() -> None:
    evaluation = judge_sustained(series([1, 11, 1, 15, 13]), MAX_ONLY, NO_BOUNDS, SUSTAINED,
                                 missing_counts=True, unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert "3 of 5 points" in evaluation.headline
    assert "max 10" in evaluation.headline
    assert "over 4h (step 1h)" in evaluation.headline
    assert "at most 2 allowed" in evaluation.headline
    text = "\n".join(evaluation.details)
    # Worst first, each with the time format_time gave it.
    worst = [line for line in evaluation.details if line.strip().startswith("T")]
    assert worst == [f"  {fmt(T0 + 3 * 3600)}: 15", f"  {fmt(T0 + 4 * 3600)}: 13",
                     f"  {fmt(T0 + 3600)}: 11"]
    assert "worst points" in text


def test_sustained_lists_at_most_a_few_worst_points() -> None:
    evaluation = judge_sustained(series([20 + k for k in range(12)]), MAX_ONLY, NO_BOUNDS,
                                 Sustained(11 * 3600.0, 3600.0, 0, "11h", "1h"),
                                 missing_counts=True, unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.FAIL
    shown = [line for line in evaluation.details if line.strip().startswith("T")]
    assert 1 <= len(shown) < 12
    assert shown[0] == f"  {fmt(T0 + 11 * 3600)}: 31"


def test_sustained_missing_points_count_as_violations_when_missing_counts() -> None:
    points = series([1, NAN, 1, None, 11])
    evaluation = judge_sustained(points, MAX_ONLY, NO_BOUNDS, SUSTAINED, missing_counts=True,
                                 unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert "3 of 5 points" in evaluation.headline
    assert any("no data at 2 point(s)" in line and "counted as violations" in line
               for line in evaluation.details)


def test_sustained_missing_points_are_left_out_otherwise() -> None:
    evaluation = judge_sustained(series([1, NAN, 1, None, 11]), MAX_ONLY, NO_BOUNDS, SUSTAINED,
                                 missing_counts=False, unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.PASS
    assert any("no data at 2 point(s)" in line and "left out" in line
               for line in evaluation.details)


@pytest.mark.parametrize("missing_counts", [True, False])
def test_sustained_all_points_missing_is_no_data(missing_counts: bool) -> None:
    evaluation = judge_sustained(series([NAN, None, NAN, NAN, None]), MAX_ONLY, NO_BOUNDS,
                                 SUSTAINED, missing_counts=missing_counts, unit="number",
                                 format_time=fmt)
    assert evaluation.verdict is Verdict.NO_DATA
    assert "5 points" in evaluation.reason
    assert "over 4h (step 1h)" in evaluation.reason


@pytest.mark.parametrize("missing_counts", [True, False])
def test_sustained_no_observation_at_any_step_is_no_data(missing_counts: bool) -> None:
    points: Points = [(T0 + k * 3600.0, []) for k in range(5)]
    assert sustained(points, missing_counts=missing_counts) is Verdict.NO_DATA


def test_sustained_empty_steps_count_as_violations_when_missing_counts() -> None:
    points = series([1, 1, 1, 1, 1])
    for k in (0, 2, 4):
        points[k] = (points[k][0], [])
    assert sustained(points, missing_counts=True) is Verdict.FAIL
    assert sustained(points, missing_counts=False) is Verdict.PASS
    points[4] = (points[4][0], [obs(1.0)])
    assert sustained(points, missing_counts=True) is Verdict.PASS


def test_sustained_counts_each_series_apart() -> None:
    eu, us = (("region", "eu"),), (("region", "us"),)
    # Four violations in all, but at most two per series: passes.
    values = [(11, 1), (11, 1), (1, 11), (1, 11), (1, 1)]
    points: Points = [(T0 + k * 3600.0, [obs(a, eu), obs(b, us)])
                      for k, (a, b) in enumerate(values)]
    assert sustained(points) is Verdict.PASS
    points[4] = (points[4][0], [obs(1, eu), obs(12, us)])
    evaluation = judge_sustained(points, MAX_ONLY, NO_BOUNDS, SUSTAINED, missing_counts=True,
                                 unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert 'region="us"' in evaluation.headline
    assert "3 of 5 points" in evaluation.headline


def test_sustained_series_absent_at_some_steps_counts_those_as_missing() -> None:
    # Issue 4: points with no data are counted and follow on_no_data. A series that a step's
    # answer leaves out has no data at that step, just as when the whole answer is empty.
    eu, us = (("region", "eu"),), (("region", "us"),)
    points: Points = [(T0 + k * 3600.0, [obs(1, eu), obs(1, us)]) for k in range(5)]
    for k in (1, 2, 3):
        points[k] = (points[k][0], [obs(1, eu)])
    evaluation = judge_sustained(points, MAX_ONLY, NO_BOUNDS, SUSTAINED, missing_counts=True,
                                 unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.FAIL, evaluation
    assert any("no data at 3 point(s)" in line for line in evaluation.details)


def test_sustained_warns_when_within_bounds_but_a_point_is_outside_warn() -> None:
    warn = Bounds(None, 8.0)
    assert sustained(series([1, 8, 1, 8, 1]), warn=warn) is Verdict.PASS
    evaluation = judge_sustained(series([1, up(8.0), 1, 1, 1]), MAX_ONLY, warn, SUSTAINED,
                                 missing_counts=True, unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.WARN
    assert "1 point(s) outside the warning level max 8" in evaluation.headline
    assert sustained(series([1, 9, 11, 12, 13]), warn=warn) is Verdict.FAIL


def test_sustained_min_bound_and_value_text() -> None:
    evaluation = judge_sustained(series([5, 4, 6, 3, 5]), Bounds(5.0, None), NO_BOUNDS,
                                 Sustained(4 * 3600.0, 3600.0, 1, "4h", "1h"),
                                 missing_counts=True, unit="number", format_time=fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert "min 5" in evaluation.headline
    assert evaluation.value_text == "2 of 5 points outside"


# -- baseline ---------------------------------------------------------------------------------


def baseline_spec(*, increase: Change | None = None, decrease: Change | None = None,
                  offset: float | None = None) -> Baseline:
    if offset is not None:
        return Baseline({}, offset, "7d", increase, decrease)
    return Baseline({"cohort": "control"}, None, "", increase, decrease)


PLUS_10 = Change(0.10, True, "10%")
ABS_HALF_SECOND = Change(0.5, False, "0.5s")


def compare(now: float | None, before: float | None, *, increase: Change | None = PLUS_10,
            decrease: Change | None = None, bounds: Bounds = NO_BOUNDS,
            warn: Bounds = NO_BOUNDS) -> Verdict:
    current = [obs(now)]
    baseline = [obs(before)] if before is not None else []
    return judge_baseline(current, baseline, bounds, warn,
                          baseline_spec(increase=increase, decrease=decrease),
                          unit="number").verdict


@pytest.mark.parametrize(("now", "before", "verdict"), [
    pytest.param(110.0, 100.0, Verdict.PASS, id="exactly-plus-10%"),
    pytest.param(up(110.0), 100.0, Verdict.FAIL, id="just-over-plus-10%"),
    pytest.param(100.0, 100.0, Verdict.PASS, id="unchanged"),
    pytest.param(50.0, 100.0, Verdict.PASS, id="decrease-unbounded"),
    pytest.param(0.0, 0.0, Verdict.PASS, id="both-zero"),
    pytest.param(0.001, 0.0, Verdict.FAIL, id="from-zero"),
    pytest.param(5.5, 5.0, Verdict.PASS, id="small-exact"),
])
def test_baseline_relative_increase(now: float, before: float, verdict: Verdict) -> None:
    assert compare(now, before) is verdict


@pytest.mark.parametrize(("now", "before", "verdict"), [
    pytest.param(1.5, 1.0, Verdict.PASS, id="exactly-plus-0.5s"),
    pytest.param(up(1.5), 1.0, Verdict.FAIL, id="just-over"),
    pytest.param(0.5, 0.0, Verdict.PASS, id="from-zero-within"),
    pytest.param(up(0.5), 0.0, Verdict.FAIL, id="from-zero-over"),
])
def test_baseline_absolute_increase(now: float, before: float, verdict: Verdict) -> None:
    assert compare(now, before, increase=ABS_HALF_SECOND) is verdict


@pytest.mark.parametrize(("now", "change", "verdict"), [
    pytest.param(90.0, Change(0.10, True, "10%"), Verdict.PASS, id="relative-exactly"),
    pytest.param(down(90.0), Change(0.10, True, "10%"), Verdict.FAIL, id="relative-over"),
    pytest.param(99.5, Change(0.5, False, "0.5"), Verdict.PASS, id="absolute-exactly"),
    pytest.param(down(99.5), Change(0.5, False, "0.5"), Verdict.FAIL, id="absolute-over"),
    pytest.param(1000.0, Change(0.10, True, "10%"), Verdict.PASS, id="increase-unbounded"),
])
def test_baseline_decrease(now: float, change: Change, verdict: Verdict) -> None:
    assert compare(now, 100.0, increase=None, decrease=change) is verdict


@pytest.mark.parametrize("before", [NAN, None])
def test_baseline_without_data_is_no_data_never_pass(before: float | None) -> None:
    current = [obs(100.0)]
    baseline = [] if before is None else [obs(before)]
    for bounds in (NO_BOUNDS, Bounds(None, 1000.0)):
        evaluation = judge_baseline(current, baseline, bounds, NO_BOUNDS, baseline_spec(
            increase=PLUS_10), unit="number")
        assert evaluation.verdict is Verdict.NO_DATA
        assert "baseline (cohort=control) has no data" in evaluation.reason


def test_baseline_null_value_is_no_data() -> None:
    evaluation = judge_baseline([obs(1.0)], [obs(None, reason="the query returned NULL")],
                                NO_BOUNDS, NO_BOUNDS, baseline_spec(increase=PLUS_10),
                                unit="number")
    assert evaluation.verdict is Verdict.NO_DATA
    assert "NULL" in evaluation.reason


@pytest.mark.parametrize("now", [NAN, None])
def test_baseline_current_without_data_is_no_data(now: float | None) -> None:
    for bounds in (NO_BOUNDS, Bounds(None, 1000.0)):
        evaluation = judge_baseline([obs(now)], [obs(1.0)], bounds, NO_BOUNDS,
                                    baseline_spec(increase=PLUS_10), unit="number")
        assert evaluation.verdict is Verdict.NO_DATA
    evaluation = judge_baseline([], [obs(1.0)], NO_BOUNDS, NO_BOUNDS,
                                baseline_spec(increase=PLUS_10), unit="number")
    assert evaluation.verdict is Verdict.NO_DATA


def test_baseline_current_outside_its_own_bounds_fails_first() -> None:
    # The change is fine, and the baseline even has no data: the own bound decides first.
    assert compare(up(5.0), 5.0, bounds=Bounds(None, 5.0)) is Verdict.FAIL
    assert compare(5.0, 5.0, bounds=Bounds(None, 5.0)) is Verdict.PASS
    evaluation = judge_baseline([obs(6.0)], [], Bounds(None, 5.0), NO_BOUNDS,
                                baseline_spec(increase=PLUS_10), unit="number")
    assert evaluation.verdict is Verdict.FAIL


def test_baseline_warns_on_the_own_warning_level() -> None:
    assert compare(4.5, 4.5, bounds=Bounds(None, 5.0), warn=Bounds(None, 4.0)) is Verdict.WARN
    assert compare(4.0, 4.0, bounds=Bounds(None, 5.0), warn=Bounds(None, 4.0)) is Verdict.PASS


def test_baseline_warns_without_own_bounds() -> None:
    # Spec: an objective bounded only by its change may still set `warn`; it must not be
    # silently ignored.
    assert compare(4.5, 4.5, warn=Bounds(None, 4.0)) is Verdict.WARN


def test_baseline_pairs_series_ignoring_the_cohort_label() -> None:
    def labelled(region: str, cohort: str, value: float) -> Observation:
        return obs(value, (("cohort", cohort), ("region", region)))

    current = [labelled("eu", "canary", 110.0), labelled("us", "canary", 100.0)]
    baseline = [labelled("us", "control", 50.0), labelled("eu", "control", 100.0)]
    evaluation = judge_baseline(current, baseline, NO_BOUNDS, NO_BOUNDS,
                                baseline_spec(increase=PLUS_10), unit="number",
                                ignore_labels=("cohort",))
    assert evaluation.verdict is Verdict.FAIL
    assert 'region="us"' in evaluation.headline
    assert "against the baseline 50" in evaluation.headline
    assert len(evaluation.details) == 2
    baseline[0] = labelled("us", "control", 100.0)
    evaluation = judge_baseline(current, baseline, NO_BOUNDS, NO_BOUNDS,
                                baseline_spec(increase=PLUS_10), unit="number",
                                ignore_labels=("cohort",))
    assert evaluation.verdict is Verdict.PASS


def test_baseline_series_without_a_counterpart_is_no_data() -> None:
    current = [obs(1.0, (("region", "eu"),)), obs(1.0, (("region", "us"),))]
    baseline = [obs(1.0, (("region", "eu"),))]
    evaluation = judge_baseline(current, baseline, NO_BOUNDS, NO_BOUNDS,
                                baseline_spec(increase=PLUS_10), unit="number")
    assert evaluation.verdict is Verdict.NO_DATA
    assert 'region="us"' in evaluation.reason


def test_baseline_text_shows_both_values_and_the_change() -> None:
    evaluation = judge_baseline([obs(0.062)], [obs(0.05)], NO_BOUNDS, NO_BOUNDS,
                                baseline_spec(increase=PLUS_10), unit="percent")
    assert evaluation.verdict is Verdict.FAIL
    assert "6.20%" in evaluation.headline
    assert "5.00%" in evaluation.headline
    assert "up 24.0%" in evaluation.headline
    assert "1.20 points" in evaluation.headline
    assert "max_increase is 10%" in evaluation.headline
    assert "cohort=control" in evaluation.headline
    (line,) = evaluation.details
    assert "6.20%" in line and "5.00%" in line and "up 24.0%" in line


def test_baseline_text_names_the_offset() -> None:
    evaluation = judge_baseline([obs(1.2)], [obs(1.0)], NO_BOUNDS, NO_BOUNDS,
                                baseline_spec(decrease=Change(0.5, False, "0.5s"),
                                              offset=7 * 86400.0), unit="seconds")
    assert evaluation.verdict is Verdict.PASS
    (line,) = evaluation.details
    assert "1.2s" in line and "1s" in line and "7d earlier" in line and "up 20.0%" in line


# -- burn rate --------------------------------------------------------------------------------

# A target of 75 % leaves a budget of 0.25, a power of two: burn rates are exact.
EXACT = BurnRate(0.75, (BurnAlert(3600.0, 300.0, 2.0, "1h", "5m"),))
WORKBOOK = BurnRate(0.995, (BurnAlert(3600.0, 300.0, 14.4, "1h", "5m"),
                            BurnAlert(6 * 3600.0, 1800.0, 6.0, "6h", "30m")))


def burn(ratios: dict[tuple[int, str], list[float | None]], rate: BurnRate = EXACT
         ) -> Verdict:
    windows = {key: [obs(v) for v in values] for key, values in ratios.items()}
    return judge_burn_rate(windows, rate).verdict


@pytest.mark.parametrize(("long", "short", "verdict"), [
    pytest.param(0.5, 0.5, Verdict.PASS, id="both-exactly-at-factor"),
    pytest.param(up(0.5), 0.5, Verdict.PASS, id="only-long-over"),
    pytest.param(0.5, up(0.5), Verdict.PASS, id="only-short-over"),
    pytest.param(up(0.5), up(0.5), Verdict.FAIL, id="both-just-over"),
    pytest.param(1.0, 0.0, Verdict.PASS, id="long-far-over"),
])
def test_burn_rate_factor_boundary(long: float, short: float, verdict: Verdict) -> None:
    assert EXACT.budget == 0.25 and 0.5 / EXACT.budget == 2.0
    assert burn({(0, "long"): [long], (0, "short"): [short]}) is verdict


@pytest.mark.parametrize("missing", [[NAN], [None], []])
def test_burn_rate_window_without_data_is_no_data(missing: list[float | None]) -> None:
    for side in ("long", "short"):
        other = "short" if side == "long" else "long"
        evaluation = judge_burn_rate({(0, side): [obs(v) for v in missing],
                                      (0, other): [obs(0.9)]}, EXACT)
        assert evaluation.verdict is Verdict.NO_DATA
        assert "no data over" in evaluation.reason


def test_burn_rate_window_without_data_loses_to_another_alert_that_fires() -> None:
    ratios: dict[tuple[int, str], list[float | None]] = {
        (0, "long"): [NAN], (0, "short"): [0.1],
        (1, "long"): [0.05], (1, "short"): [0.05]}
    assert burn(ratios, WORKBOOK) is Verdict.FAIL
    ratios[(1, "long")] = [0.001]
    assert burn(ratios, WORKBOOK) is Verdict.NO_DATA


def test_burn_rate_both_windows_over_fails_and_shows_each_burn_rate() -> None:
    # 0.1 / 0.005 = 20x and 0.08 / 0.005 = 16x, both over 14.4; the second alert stays low.
    windows = {(0, "long"): [obs(0.1)], (0, "short"): [obs(0.08)],
               (1, "long"): [obs(0.01)], (1, "short"): [obs(0.02)]}
    evaluation = judge_burn_rate(windows, WORKBOOK)
    assert evaluation.verdict is Verdict.FAIL
    assert "20.00x over 1h" in evaluation.headline
    assert "16.00x over 5m" in evaluation.headline
    assert "14.4" in evaluation.headline
    text = "\n".join(evaluation.details)
    assert "20.00x over 1h" in text and "16.00x over 5m" in text
    assert "2.00x over 6h" in text and "4.00x over 30m" in text


def test_burn_rate_target_995_is_a_budget_of_half_a_percent() -> None:
    assert WORKBOOK.budget == pytest.approx(0.005)
    evaluation = judge_burn_rate({(0, "long"): [obs(0.0)], (0, "short"): [obs(0.0)],
                                  (1, "long"): [obs(0.0)], (1, "short"): [obs(0.0)]}, WORKBOOK)
    assert evaluation.verdict is Verdict.PASS
    assert evaluation.details[0] == "  error budget 0.50% (target 99.50%)"
    assert "no alert fires (2 checked)" in evaluation.headline


def test_burn_rate_labelled_series_are_judged_apart() -> None:
    eu, us = (("region", "eu"),), (("region", "us"),)
    windows = {(0, "long"): [obs(0.9, eu), obs(0.1, us)],
               (0, "short"): [obs(0.1, eu), obs(0.9, us)]}
    # Each region has one window over, never both: no alert fires.
    assert judge_burn_rate(windows, EXACT).verdict is Verdict.PASS
    windows[(0, "short")] = [obs(0.9, eu), obs(0.1, us)]
    evaluation = judge_burn_rate(windows, EXACT)
    assert evaluation.verdict is Verdict.FAIL
    assert 'region="eu"' in evaluation.headline


def test_a_burning_series_is_judged_although_the_other_window_has_one_series() -> None:
    # long has eu and us, short only eu: eu must still be paired by its labels.
    eu, us = (("region", "eu"),), (("region", "us"),)
    windows = {(0, "long"): [obs(0.6, eu), obs(0.001, us)], (0, "short"): [obs(0.7, eu)]}
    result = judge_burn_rate(windows, EXACT)
    assert result.verdict is Verdict.FAIL
    assert 'region="eu"' in result.headline


def test_several_baseline_series_with_the_same_labels_are_an_error() -> None:
    current = [obs(0.05, (("region", "eu"),)), obs(0.01, (("region", "us"),))]
    baseline = [obs(0.01, (("region", "eu"), ("cohort", "control"))),
                obs(0.20, (("region", "eu"), ("cohort", "other")))]
    spec = Baseline({"cohort": "control"}, None, "", Change(0.1, True, "10%"), None)
    with pytest.raises(AmbiguousAnswer, match="several series"):
        judge_baseline(current, baseline, NO_BOUNDS, NO_BOUNDS, spec, unit="percent",
                       ignore_labels=("cohort",))


def test_a_single_baseline_pair_reports_its_change() -> None:
    spec = Baseline({"cohort": "control"}, None, "", Change(0.1, True, "10%"), None)
    result = judge_baseline([obs(0.0455)], [obs(0.0322)], NO_BOUNDS, NO_BOUNDS, spec,
                            unit="percent")
    assert result.verdict is Verdict.FAIL
    assert result.change == "up 41.3% (1.33 points)"
    assert result.value_text == "4.55% vs baseline 3.22%"
