"""Measurement: the queries an objective needs at one stage, and the verdict of their answers.

Specs are loaded from YAML like a user writes them, resolved at a stage, and answered with
hand-built QueryResult / Series values: no backend runs.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pytest_rollout_slo.backends.base import (
    Answer,
    BackendType,
    Query,
    QueryResult,
    RangeQuery,
    Sample,
    Series,
)
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.sqlite import SQLITE
from pytest_rollout_slo.plan.needs import Measurement, Need
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Combination, Objective, ResolvedObjective, Spec
from pytest_rollout_slo.verdict.instant import Verdict
from pytest_rollout_slo.verdict.objective import judge_objective as judged

BACKEND_TYPES: Mapping[str, BackendType] = {"sqlite": SQLITE, "prometheus": PROMETHEUS}
AT = 1_764_158_400.0  # 2025-11-26T12:00:00Z
HOUR = 3600.0
Labels = tuple[tuple[str, str], ...]

SPEC = """\
version: 1
service: svc
backends:
  db: {type: sqlite, path: events.db}
  prom: {type: prometheus, url: "http://prometheus:9090"}
variables:
  feature: resolver
  cohort: canary
  window: 1h
stages:
  beta:
    variables: {window: 6h}
  ga: {}
objectives:
  - name: latency
    backend: db
    query: SELECT max(v) FROM t WHERE f = :feature AND s = '${stage}' AND ts >= :window_start
    max: 10

  - name: error_rate
    backend: db
    ratio:
      numerator: SELECT count(*) FROM e WHERE err AND ts >= :window_start
      denominator: SELECT count(*) FROM e WHERE ts >= :window_start
      min_denominator: 10
    max: 5%

  - name: steady
    backend: db
    query: SELECT max(v) FROM t WHERE ts >= :window_start AND ts < :window_end
    max: 10
    sustained: {over: 4h, step: 1h, max_violations: 1}

  - name: steady_errors
    backend: prom
    ratio:
      numerator: sum(rate(errors{feature="${feature}"}[${window}]))
      denominator: sum(rate(requests{feature="${feature}"}[${window}]))
    max: 5%
    sustained: {over: 4h, step: 1h, max_violations: 1}

  - name: steady_regions
    backend: prom
    query: max by (region) (queue_depth)
    max: 10
    sustained: {over: 4h, step: 1h, max_violations: 0}

  - name: canary_errors
    backend: prom
    query: sum(rate(errors{cohort="${cohort}"}[${window}]))
    baseline: {variables: {cohort: control}, max_increase: 10%}

  - name: weekly_usage
    backend: db
    query: SELECT count(*) FROM u WHERE ts >= :window_start AND ts < :window_end
    min: 1
    baseline: {offset: 7d, max_decrease: 20%}

  - name: availability
    backend: prom
    ratio:
      numerator: sum(increase(errors[${window}]))
      denominator: sum(increase(requests[${window}]))
    burn_rate:
      target: 99.5%
      alerts:
        - {long: 1h, short: 5m, factor: 14.4}
        - {long: 6h, short: 30m, factor: 6}

  - name: sql_availability
    backend: db
    ratio:
      numerator: SELECT count(*) FROM e WHERE err AND ts >= :window_start
      denominator: SELECT count(*) FROM e WHERE ts >= :window_start
    burn_rate:
      target: 99%
      alerts: [{long: 2h, short: 10m, factor: 2}]

  - name: p50
    backend: db
    quantile: {q: 0.5, values: SELECT duration FROM calls WHERE ts >= :window_start}
    max: 3s

  - name: regional
    backend: prom
    query: sum(rate(errors{region="${region}"}[${window}]))
    max: 1
    matrix: {region: [eu, us]}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    path = tmp_path / "spec.slo.yaml"
    path.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    return load_spec(path, BACKEND_TYPES)


def objective(spec: Spec, name: str) -> Objective:
    return next(o for o in spec.objectives if o.name == name)


def resolve(spec: Spec, name: str, stage: str = "beta",
            combination: Combination = ()) -> ResolvedObjective:
    return spec.resolve(objective(spec, name), stage, combination)


def measure(spec: Spec, name: str, *, stage: str = "beta", ranged: bool = False,
            at: float = AT) -> Measurement:
    return Measurement(resolve(spec, name, stage), at, ranged=ranged)


def instant(need: Need) -> Query:
    assert isinstance(need.query, Query), need
    return need.query


def fmt(at: float) -> str:
    return f"T{at:g}"


def result(*values: float | None, labels: Sequence[Labels] = ()) -> QueryResult:
    if labels:
        return QueryResult(tuple(Sample(lab, v) for lab, v in zip(labels, values, strict=True)))
    return QueryResult(tuple(Sample((), v) for v in values))


def base_params(stage: str, window: float, at: float = AT) -> dict[str, str | int | float]:
    return {"feature": "resolver", "cohort": "canary", "stage": stage, "service": "svc",
            "window": window, "at": at, "window_start": at - window, "window_end": at}


# -- needs ------------------------------------------------------------------------------------


def test_plain_query_is_one_need_at_the_evaluation_time(spec: Spec) -> None:
    needs = measure(spec, "latency").needs()
    assert len(needs) == 1
    (need,) = needs
    assert isinstance(need.query, Query)
    assert need.query.at == AT
    assert need.query.text == ("SELECT max(v) FROM t WHERE f = :feature AND s = 'beta' "
                               "AND ts >= :window_start")
    assert dict(need.query.params) == base_params("beta", 6 * HOUR)


def test_plain_query_at_another_stage_binds_its_window(spec: Spec) -> None:
    (need,) = measure(spec, "latency", stage="ga").needs()
    assert "s = 'ga'" in need.query.text
    params = need.query.params
    assert params["stage"] == "ga"
    assert params["window_start"] == AT - HOUR
    assert params["window_end"] == AT
    assert params["at"] == AT


def test_ratio_needs_numerator_and_denominator(spec: Spec) -> None:
    needs = measure(spec, "error_rate").needs()
    assert len(needs) == 2
    texts = sorted(n.query.text for n in needs)
    assert texts == ["SELECT count(*) FROM e WHERE err AND ts >= :window_start",
                     "SELECT count(*) FROM e WHERE ts >= :window_start"]
    assert len({n.name for n in needs}) == 2
    for need in needs:
        assert isinstance(need.query, Query)
        assert need.query.at == AT
        assert dict(need.query.params) == base_params("beta", 6 * HOUR)


def test_sustained_without_range_queries_asks_every_step(spec: Spec) -> None:
    needs = measure(spec, "steady").needs()
    # over 4h / step 1h + 1 = 5 points, one part each.
    assert len(needs) == 5
    assert len({n.name for n in needs}) == 5
    times = sorted(instant(n).at for n in needs)
    assert times == [AT - 4 * HOUR + k * HOUR for k in range(5)]
    for need in needs:
        assert isinstance(need.query, Query)
        at = need.query.at
        assert need.query.params["at"] == at
        assert need.query.params["window_start"] == at - 6 * HOUR
        assert need.query.params["window_end"] == at


def test_sustained_ratio_without_range_queries_asks_every_part_at_every_step(
        spec: Spec) -> None:
    needs = measure(spec, "steady_errors", ranged=False).needs()
    assert len(needs) == 10
    assert sorted({instant(n).at for n in needs}) == [AT - 4 * HOUR + k * HOUR for k in range(5)]
    assert all(isinstance(n.query, Query) for n in needs)


def test_sustained_with_range_queries_is_one_range_query_per_part(spec: Spec) -> None:
    needs = measure(spec, "steady_errors", ranged=True).needs()
    assert len(needs) == 2
    texts = set()
    for need in needs:
        assert isinstance(need.query, RangeQuery)
        assert (need.query.start, need.query.end, need.query.step) == (AT - 4 * HOUR, AT, HOUR)
        texts.add(need.query.text)
    assert texts == {'sum(rate(errors{feature="resolver"}[6h]))',
                     'sum(rate(requests{feature="resolver"}[6h]))'}


def test_baseline_with_variables_queries_the_other_cohort(spec: Spec) -> None:
    needs = measure(spec, "canary_errors").needs()
    assert len(needs) == 2
    texts = {n.query.text for n in needs}
    assert texts == {'sum(rate(errors{cohort="canary"}[6h]))',
                     'sum(rate(errors{cohort="control"}[6h]))'}
    baseline = next(n for n in needs if "control" in n.query.text)
    assert isinstance(baseline.query, Query)
    assert baseline.query.at == AT
    assert baseline.query.params["cohort"] == "control"
    current = next(n for n in needs if "canary" in n.query.text)
    assert current.query.params["cohort"] == "canary"
    assert baseline.name != current.name


def test_baseline_with_offset_queries_an_earlier_time(spec: Spec) -> None:
    needs = measure(spec, "weekly_usage").needs()
    assert len(needs) == 2
    times = sorted(instant(n).at for n in needs)
    week = 7 * 86400.0
    assert times == [AT - week, AT]
    earlier = next(n for n in needs if instant(n).at == AT - week)
    assert earlier.query.params["at"] == AT - week
    assert earlier.query.params["window_start"] == AT - week - 6 * HOUR
    assert earlier.query.params["window_end"] == AT - week
    assert {n.query.text for n in needs} == {
        "SELECT count(*) FROM u WHERE ts >= :window_start AND ts < :window_end"}


def test_burn_rate_asks_every_window_of_every_alert(spec: Spec) -> None:
    needs = measure(spec, "availability").needs()
    # 2 alerts x (long, short) x (numerator, denominator)
    assert len(needs) == 8
    assert len({n.name for n in needs}) == 8
    texts = sorted(n.query.text for n in needs)
    windows = ("1h", "5m", "6h", "30m")
    assert texts == sorted([f"sum(increase(errors[{w}]))" for w in windows]
                           + [f"sum(increase(requests[{w}]))" for w in windows])
    seconds = {"1h": HOUR, "5m": 300.0, "6h": 6 * HOUR, "30m": 1800.0}
    for need in needs:
        assert isinstance(need.query, Query)
        assert need.query.at == AT
        window = need.query.text.split("[")[1].split("]")[0]
        assert need.query.params["window_start"] == AT - seconds[window]
        assert need.query.params["window"] == seconds[window]


def test_burn_rate_on_sql_binds_each_window(spec: Spec) -> None:
    needs = measure(spec, "sql_availability").needs()
    assert len(needs) == 4
    starts = sorted(n.query.params["window_start"] for n in needs)
    assert starts == [AT - 2 * HOUR, AT - 2 * HOUR, AT - 600.0, AT - 600.0]


def test_matrix_combination_resolves_its_value(spec: Spec) -> None:
    obj = objective(spec, "regional")
    combinations = list(obj.combinations())
    assert combinations == [(("region", "eu"),), (("region", "us"),)]
    resolved = spec.resolve(obj, "beta", combinations[1])
    assert resolved.title == "regional[beta-region=us]"
    (need,) = Measurement(resolved, AT, ranged=False).needs()
    assert need.query.text == 'sum(rate(errors{region="us"}[6h]))'
    assert need.query.params["region"] == "us"


# -- answers -> verdict -----------------------------------------------------------------------


def test_plain_query_verdicts(spec: Spec) -> None:
    m = measure(spec, "latency")
    (need,) = m.needs()
    assert judged(m, {need.name: result(10.0)}, fmt).verdict is Verdict.PASS
    assert judged(m, {need.name: result(math.nextafter(10.0, 11))}, fmt).verdict \
        is Verdict.FAIL
    assert judged(m, {need.name: result(float("nan"))}, fmt).verdict is Verdict.NO_DATA
    assert judged(m, {need.name: result()}, fmt).verdict is Verdict.NO_DATA


def test_ratio_verdicts(spec: Spec) -> None:
    m = measure(spec, "error_rate")
    needs = m.needs()
    num = next(n.name for n in needs if "err AND" in n.query.text)
    den = next(n.name for n in needs if n.name != num)
    assert judged(m, {num: result(5.0), den: result(100.0)}, fmt).verdict is Verdict.PASS
    assert judged(m, {num: result(6.0), den: result(100.0)}, fmt).verdict is Verdict.FAIL
    evaluation = judged(m, {num: result(0.0), den: result(9.0)}, fmt)
    assert evaluation.verdict is Verdict.NO_DATA
    assert "min_denominator" in evaluation.reason


def step_answers(needs: Sequence[Need], values: Mapping[float, float | None]
                 ) -> dict[str, Answer]:
    return {n.name: result(values[instant(n).at]) if values[instant(n).at] is not None else result()
            for n in needs}


def test_sustained_instant_steps_verdicts(spec: Spec) -> None:
    m = measure(spec, "steady")
    needs = m.needs()
    times = [AT - 4 * HOUR + k * HOUR for k in range(5)]
    one_over = dict(zip(times, [1.0, 11.0, 1.0, 10.0, 1.0], strict=True))
    assert judged(m, step_answers(needs, one_over), fmt).verdict is Verdict.PASS
    two_over = {**one_over, times[4]: 12.0}
    evaluation = judged(m, step_answers(needs, two_over), fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert "2 of 5 points" in evaluation.headline
    assert any(fmt(times[4]) in line for line in evaluation.details)
    # on_no_data defaults to fail: a step without data counts as a violation.
    one_missing = {**one_over, times[0]: None}
    assert judged(m, step_answers(needs, one_missing), fmt).verdict is Verdict.FAIL
    nothing = dict.fromkeys(times)
    assert judged(m, step_answers(needs, nothing), fmt).verdict is Verdict.NO_DATA


def range_series(values: Sequence[float | None], labels: Labels = (),
                 skip: Sequence[int] = ()) -> Series:
    times = [AT - 4 * HOUR + k * HOUR for k in range(len(values))]
    return Series(labels, tuple((t, v) for k, (t, v) in enumerate(zip(times, values,
                                                                       strict=True))
                                if k not in skip))


def range_answers(m: Measurement, numerator: tuple[Series, ...],
                  denominator: tuple[Series, ...]) -> dict[str, Answer]:
    answers: dict[str, Answer] = {}
    for need in m.needs():
        assert isinstance(need.query, RangeQuery)
        answers[need.name] = numerator if "errors" in need.query.text else denominator
    return answers


def test_sustained_range_answer_verdicts(spec: Spec) -> None:
    m = measure(spec, "steady_errors", ranged=True)
    requests = (range_series([100.0] * 5),)
    ok = (range_series([1.0, 6.0, 5.0, 1.0, 1.0]),)
    assert judged(m, range_answers(m, ok, requests), fmt).verdict is Verdict.PASS
    bad = (range_series([1.0, 6.0, 5.0, 7.0, 1.0]),)
    evaluation = judged(m, range_answers(m, bad, requests), fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert "2 of 5 points" in evaluation.headline


def test_sustained_range_answer_missing_steps_are_no_data(spec: Spec) -> None:
    m = measure(spec, "steady_errors", ranged=True)
    requests = (range_series([100.0] * 5, skip=[2]),)
    errors = (range_series([1.0, 6.0, 1.0, 1.0, 1.0], skip=[2]),)
    # One violation plus one step with no data (counted, on_no_data: fail) = 2 > 1.
    evaluation = judged(m, range_answers(m, errors, requests), fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert any("no data at 1 point(s)" in line for line in evaluation.details)
    # The numerator alone missing a step is no data at that step, not 0 %.
    errors = (range_series([1.0, 1.0, 1.0, 1.0, 1.0], skip=[3]),)
    evaluation = judged(m, range_answers(m, errors, (range_series([100.0] * 5),)), fmt)
    assert evaluation.verdict is Verdict.PASS
    assert any("no data at 1 point(s)" in line for line in evaluation.details)
    nothing: tuple[Series, ...] = ()
    assert judged(m, range_answers(m, nothing, nothing), fmt).verdict is Verdict.NO_DATA


def test_sustained_range_answer_with_a_series_missing_steps(spec: Spec) -> None:
    # Two series; "us" is absent at three steps. on_no_data: fail and max_violations: 0,
    # so those three points without data must fail the objective.
    m = measure(spec, "steady_regions", ranged=True)
    (need,) = m.needs()
    answer = (range_series([1.0] * 5, (("region", "eu"),)),
              range_series([1.0] * 5, (("region", "us"),), skip=[1, 2, 3]))
    evaluation = judged(m, {need.name: answer}, fmt)
    assert evaluation.verdict is Verdict.FAIL, evaluation


def test_baseline_with_variables_verdicts(spec: Spec) -> None:
    m = measure(spec, "canary_errors")
    needs = m.needs()
    canary = next(n.name for n in needs if "canary" in n.query.text)
    control = next(n.name for n in needs if "control" in n.query.text)

    # Prometheus keeps the cohort label; pairing ignores it.
    def labelled(cohort: str, *pairs: tuple[str, float]) -> QueryResult:
        return result(*(v for _, v in pairs),
                      labels=[(("cohort", cohort), ("region", r)) for r, _ in pairs])

    answers: dict[str, Answer] = {canary: labelled("canary", ("eu", 111.0), ("us", 200.0)),
                                  control: labelled("control", ("us", 200.0), ("eu", 100.0))}
    evaluation = judged(m, answers, fmt)
    assert evaluation.verdict is Verdict.FAIL  # eu: 111 against 100 is over 10 %
    assert 'region="eu"' in evaluation.headline
    answers[canary] = labelled("canary", ("eu", 100.0), ("us", 220.0))
    assert judged(m, answers, fmt).verdict is Verdict.PASS  # us: 220 / 200 is exactly 10 %
    answers[control] = result()
    evaluation = judged(m, answers, fmt)
    assert evaluation.verdict is Verdict.NO_DATA
    assert "baseline (cohort=control) has no data" in evaluation.reason


def test_baseline_with_offset_verdicts(spec: Spec) -> None:
    m = measure(spec, "weekly_usage")
    needs = m.needs()
    now = next(n.name for n in needs if instant(n).at == AT)
    week_ago = next(n.name for n in needs if n.name != now)
    assert judged(m, {now: result(80.0), week_ago: result(100.0)}, fmt).verdict \
        is Verdict.PASS
    assert judged(m, {now: result(79.0), week_ago: result(100.0)}, fmt).verdict \
        is Verdict.FAIL
    # Below its own min fails first, whatever the baseline.
    assert judged(m, {now: result(0.0), week_ago: result(0.0)}, fmt).verdict is Verdict.FAIL
    assert judged(m, {now: result(100.0), week_ago: result(float("nan"))}, fmt).verdict \
        is Verdict.NO_DATA


def burn_answers(needs: Sequence[Need], ratios: Mapping[str, float | None]
                 ) -> dict[str, Answer]:
    answers: dict[str, Answer] = {}
    for need in needs:
        window = need.query.text.split("[")[1].split("]")[0]
        if "errors" in need.query.text:
            ratio = ratios[window]
            answers[need.name] = result() if ratio is None else result(ratio * 1000.0)
        else:
            answers[need.name] = result(1000.0)
    return answers


def test_burn_rate_verdicts(spec: Spec) -> None:
    m = measure(spec, "availability")
    needs = m.needs()
    quiet = {"1h": 0.001, "5m": 0.001, "6h": 0.001, "30m": 0.001}
    assert judged(m, burn_answers(needs, quiet), fmt).verdict is Verdict.PASS
    # 20x over 1h and 16x over 5m both exceed 14.4.
    fast = {**quiet, "1h": 0.1, "5m": 0.08}
    evaluation = judged(m, burn_answers(needs, fast), fmt)
    assert evaluation.verdict is Verdict.FAIL
    assert "20.00x over 1h" in evaluation.headline
    assert "16.00x over 5m" in evaluation.headline
    # Only the long window burning: not firing.
    assert judged(m, burn_answers(needs, {**quiet, "1h": 0.1}), fmt).verdict is Verdict.PASS
    evaluation = judged(m, burn_answers(needs, {**quiet, "30m": None}), fmt)
    assert evaluation.verdict is Verdict.NO_DATA
    assert "no data over 30m" in evaluation.reason


def test_quantile_verdicts(spec: Spec) -> None:
    m = measure(spec, "p50")
    (need,) = m.needs()
    assert judged(m, {need.name: result(1.0, 5.0, 3.0, 2.0, 9.0)}, fmt).verdict \
        is Verdict.PASS  # median 3 s, max 3 s
    assert judged(m, {need.name: result(1.0, 5.0, 4.0, 2.0, 9.0)}, fmt).verdict \
        is Verdict.FAIL  # median 4 s
    assert judged(m, {need.name: result(None, float("nan"))}, fmt).verdict is Verdict.NO_DATA
    evaluation = judged(m, {need.name: result()}, fmt)
    assert evaluation.verdict is Verdict.NO_DATA
    assert "no values" in evaluation.reason


def test_matrix_items_are_judged_apart(spec: Spec) -> None:
    obj = objective(spec, "regional")
    verdicts = []
    for combination, value in zip(obj.combinations(), (0.5, 2.0), strict=True):
        m = Measurement(spec.resolve(obj, "beta", combination), AT, ranged=False)
        (need,) = m.needs()
        verdicts.append(judged(m, {need.name: result(value)}, fmt).verdict)
    assert verdicts == [Verdict.PASS, Verdict.FAIL]
