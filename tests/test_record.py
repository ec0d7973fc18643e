"""The verdict record: built once per objective from its spec and its evaluation, and sent
whole from an xdist worker to the controller."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout_slo.backends.sqlite import SQLITE
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import NO_BOUNDS, Bounds, ResolvedObjective
from pytest_rollout_slo.verdict.instant import (
    Evaluation,
    Observation,
    Significance,
    Verdict,
    judge,
)
from pytest_rollout_slo.verdict.record import FLAGGED_VALUES, KEPT_VALUES, Limit, VerdictRecord

AT = 1_795_694_400.0
SPEC = """\
version: 1
service: checkout
backends:
  db: {type: sqlite, path: events.db}
variables: {window: 1h, cohort: canary}
stages:
  beta: {}
objectives:
  - name: error_rate
    backend: db
    ratio:
      numerator: SELECT 1
      denominator: SELECT 100
    max: 5%
    warn: {max: 2%}
    matrix: {region: [eu]}
  - name: latency
    backend: db
    query: SELECT 1 WHERE :cohort = 'canary'
    max: 2s
    baseline: {variables: {cohort: control}, max_increase: 10%}
  - name: budget
    backend: db
    ratio:
      numerator: SELECT 1 WHERE :window_start > 0
      denominator: SELECT 100 WHERE :window_start > 0
    burn_rate:
      target: 99.9%
      alerts: [{long: 1h, short: 5m, factor: 14.4}]
"""


def resolved(tmp_path: Path, name: str) -> ResolvedObjective:
    path = tmp_path / "x.slo.yaml"
    path.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    spec = load_spec(path, {"sqlite": SQLITE})
    objective = next(o for o in spec.objectives if o.name == name)
    return spec.resolve(objective, "beta", next(iter(objective.combinations())))


def planned(tmp_path: Path, name: str = "error_rate") -> VerdictRecord:
    return VerdictRecord.planned(resolved(tmp_path, name), nodeid=f"x.slo.yaml::{name}",
                                 service="checkout", at=AT, backend="db (sqlite)",
                                 strict=False, parameters={"at": AT})


def test_planned_record_is_an_error_until_judged(tmp_path: Path) -> None:
    record = planned(tmp_path)
    assert record.verdict is Verdict.ERROR
    assert (record.title, record.matrix, record.window) == ("error_rate[beta-region=eu]",
                                                            "region=eu", "1h")
    assert record.bounds == Bounds(None, 0.05) and record.unit == "percent"
    assert set(record.queries) == {"numerator", "denominator"}
    assert record.value is None and record.total == 0


def test_limits_keep_numbers_next_to_their_text(tmp_path: Path) -> None:
    assert planned(tmp_path, "latency").limits == (
        Limit("baseline", "cohort=control"), Limit("max_increase", "10%", 0.1))
    budget = planned(tmp_path, "budget")
    (limit,) = budget.limits
    assert (limit.name, limit.text) == ("burn_rate_target", "99.9%")
    assert limit.value == pytest.approx(0.999)
    assert budget.window == ""  # the alerts bring their own windows


def test_judged_record_counts_and_bounds_what_it_keeps(tmp_path: Path) -> None:
    many = [Observation((("n", str(i)),), 0.5 if i % 2 else 0.01) for i in range(3000)]
    many.append(Observation((("n", "gap"),), None, "no value"))
    evaluation = judge(many, Bounds(None, 0.05), warn=Bounds(None, 0.02))
    record = planned(tmp_path).judged(evaluation, ("partial answer",))
    assert record.verdict is Verdict.FAIL
    assert record.total == 3001 and record.violations == 1500 and record.warned == 0
    assert len(record.values) == KEPT_VALUES
    assert len(record.flagged) == FLAGGED_VALUES and record.flagged_total == 1501
    assert all(o.missing or o.value == 0.5 for o in record.flagged)
    assert record.backend_warnings == ("partial answer",)
    assert record.value is None  # many values: no single number


def test_single_value_and_baseline_stay_numbers(tmp_path: Path) -> None:
    evaluation = Evaluation(Verdict.PASS, NO_BOUNDS, (Observation((), 1.2),),
                            value_text="1.2s vs baseline 1.1s", change="up 9.1% (100ms)",
                            baseline_value=1.1)
    record = planned(tmp_path, "latency").judged(evaluation)
    assert record.value == 1.2 and record.baseline_value == 1.1
    assert record.gate_value == "1.2s vs baseline 1.1s"


finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(st.none(), st.floats())
labels = st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3).map(tuple)
observations = st.builds(Observation, labels, numbers, st.text(max_size=10),
                         st.one_of(st.none(), st.tuples(numbers, numbers)))


@given(values=st.lists(observations, max_size=8), low=st.one_of(st.none(), finite),
       high=st.one_of(st.none(), finite), warned=st.integers(0, 3),
       baseline=numbers, verdict=st.sampled_from(Verdict))
def test_record_survives_the_trip_from_a_worker(values: list[Observation], low: float | None,
                                                high: float | None, warned: int,
                                                baseline: float | None,
                                                verdict: Verdict) -> None:
    record = VerdictRecord(
        nodeid="a::b", title="b[beta]", service="s", objective="b", stage="beta", matrix="",
        unit="number", bounds=Bounds(low, high), on_no_data="skip", strict=True, at=AT,
        window="1h", backend="db (sqlite)", queries={"query": "SELECT 1"},
        parameters={"at": AT, "stage": "beta", "n": 3},
        limits=(Limit("max_violations", "2", 2),), outcome="passed")
    record = record.judged(Evaluation(verdict, Bounds(low, high), tuple(values),
                                      details=("  a line",), baseline_value=baseline))
    back = VerdictRecord.from_dict(record.to_dict())
    # repr compares NaN with NaN, which == does not.
    assert repr(back) == repr(record)
    assert back.verdict is verdict and isinstance(back.values, tuple)


def test_a_record_with_confidence_tests_survives_the_trip_from_a_worker() -> None:
    test = Significance((("region", "eu"),), "rate ratio", "wilson", 0.95, (3, 100, 1, 90),
                        2.7, 0.3, math.inf, "max_increase 20%", 3, 0.4, 0.9, 0.8,
                        "about 1,900 more canary requests would decide")
    record = VerdictRecord(
        nodeid="a::b", title="b[beta]", service="s", objective="b", stage="beta", matrix="",
        unit="percent", bounds=Bounds(None, 0.05), on_no_data="fail", strict=False, at=AT,
        window="1h", backend="db (sqlite)", queries={"query": "SELECT 1"},
        on_inconclusive="skip", confidence="95% (wilson)")
    record = record.judged(Evaluation(Verdict.INCONCLUSIVE, Bounds(None, 0.05), (),
                                      tests=(test,), adjustment="Holm", family=4))
    back = VerdictRecord.from_dict(record.to_dict())
    assert back == record
    assert back.tests[0].verdict is Verdict.INCONCLUSIVE
