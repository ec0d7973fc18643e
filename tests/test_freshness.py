"""The freshness check: the bound, the message, the settings and one lookup per metric.

Against the real servers in test_integration_freshness.py and on SQLite in
test_checks_e2e.py; here the arithmetic, through a fake API and a fake SQL backend.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import responses
from fakes import PROMETHEUS_URL, StubBackend, prometheus_client
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import Query, QueryResult, Sample, request_key
from pytest_rollout_slo.backends.freshness import (
    Freshness,
    SqlFreshness,
    age_text,
    with_sql_freshness,
)
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend
from pytest_rollout_slo.backends.prometheus.metrics import newest_sample_query
from pytest_rollout_slo.backends.sqlite import SQLITE
from pytest_rollout_slo.errors import BackendConfigError, BackendError

URL = PROMETHEUS_URL
AT = 1_700_000_000.0


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, "0.25s"), (59.9, "59s"), (60, "1m"), (1264, "21m 4s"), (3661, "1h 1m"),
    (90061, "1d 1h"), (3 * 86400 + 5, "3d"),
])
def test_age_text(seconds: float, text: str) -> None:
    assert age_text(seconds) == text


def fresh(newest: float | None, max_age: float = 300.0) -> Freshness:
    return Freshness("the metric m", newest, AT, max_age, 3600.0)


def test_the_bound_is_inclusive_and_older_is_stale() -> None:
    assert fresh(AT).fresh and fresh(AT - 300).fresh
    assert fresh(AT - 300).problem("hint") is None
    assert fresh(AT - 301).problem("hint") == (
        "the newest sample of the metric m is 5m 1s older than the evaluation time "
        "2023-11-14T22:13:20Z (the bound is max_age 5m); hint")


@pytest.mark.parametrize(("newest", "start"), [
    (None, "the metric m found no sample in the 1h before"),
    (math.nan, "the newest sample of the metric m has the timestamp nan, which is not a time"),
    (math.inf, "the newest sample of the metric m has the timestamp inf"),
    (-math.inf, "the newest sample of the metric m has the timestamp -inf"),
    (AT + 90, "the newest sample of the metric m is 1m 30s later than the evaluation time"),
])
def test_no_time_or_a_future_time_is_never_fresh(newest: float | None, start: str) -> None:
    problem = fresh(newest).problem("hint")
    assert problem is not None and problem.startswith(start)


@given(newest=st.one_of(st.none(), st.floats()), at=st.floats(),
       max_age=st.floats(min_value=1e-3, max_value=1e9))
def test_fresh_only_for_a_finite_age_within_the_bound(newest: float | None, at: float,
                                                       max_age: float) -> None:
    found = Freshness("m", newest, at, max_age)
    if found.fresh:
        assert newest is not None and math.isfinite(at - newest)
        assert 0 <= at - newest <= max_age
        assert found.problem("h") is None
    else:
        assert found.problem("h")


def test_the_query_escapes_the_name_and_looks_back_past_the_lookback_delta() -> None:
    assert newest_sample_query('a"b', 3600) == (
        'max(timestamp({__name__="a\\"b"})) or '
        'max(max_over_time(timestamp({__name__="a\\"b"})[3600s:1m]))')


def make(**settings: object) -> PrometheusBackend:
    return prometheus_client({"check_metrics": False, **settings})


def answer(value: float) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [AT, str(value)]}]}}


def timestamp_queries(api: responses.RequestsMock) -> list[str]:
    bodies = [parse_qs(str(call.request.body))["query"][0] for call in api.calls]
    return [body for body in bodies if body.startswith("max(timestamp(")]


def test_one_lookup_per_metric_and_evaluation_time(api: responses.RequestsMock) -> None:
    api.post(f"{URL}/api/v1/query", json=answer(AT - 60))
    backend = make()
    for _ in range(3):
        backend.query(Query("sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))", AT))
    backend.query(Query("sum(errors_total)", AT))
    assert timestamp_queries(api) == [newest_sample_query("errors_total", 3600),
                                      newest_sample_query("requests_total", 3600)]
    assert [(f.what, f.age) for f in backend.freshness()] == [
        ("the metric errors_total", 60.0), ("the metric requests_total", 60.0)]


def test_a_stale_metric_is_an_error_naming_it(api: responses.RequestsMock) -> None:
    api.post(f"{URL}/api/v1/query", json=answer(AT - 1264))
    with pytest.raises(BackendError, match=r"metric errors_total is 21m 4s older .* scraping "
                                           "may have stopped"):
        make().query(Query("sum(errors_total)", AT))
    # Twice the bound is searched, and at least an hour.
    make(freshness={"max_age": "2h"}).query(Query("sum(errors_total)", AT))
    assert timestamp_queries(api)[-1] == newest_sample_query("errors_total", 4 * 3600)


def test_an_answer_that_is_not_one_timestamp_is_an_error(api: responses.RequestsMock) -> None:
    two = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"a": "1"}, "value": [AT, "1"]}, {"metric": {"a": "2"}, "value": [AT, "2"]}]}}
    api.post(f"{URL}/api/v1/query", json=two)
    with pytest.raises(BackendError, match="returned 2 samples, not one timestamp"):
        make().query(Query("sum(errors_total)", AT))


def test_check_freshness_false_sends_no_lookup(api: responses.RequestsMock) -> None:
    api.post(f"{URL}/api/v1/query", json=answer(0))
    make(check_freshness="false").query(Query("sum(errors_total)", AT))
    assert timestamp_queries(api) == []


@pytest.mark.parametrize(("settings", "message"), [
    ({"check_freshness": "maybe"}, "setting check_freshness must be true or false"),
    ({"freshness": {"max_age": "0s"}}, "setting freshness.max_age must be longer than 0s"),
    ({"freshness": {"max_age": "soon"}}, "setting freshness.max_age "),
    ({"freshness": {"bound": "5m"}}, "setting freshness.bound is unknown; expected one of "
                                     "max_age"),
    ({"freshness": "5m"}, "setting freshness must be a mapping with max_age"),
])
def test_bad_settings_name_the_key(settings: dict[str, object], message: str) -> None:
    with pytest.raises(BackendConfigError, match=message):
        make(**settings)


class Events(StubBackend):
    """A fake SQL backend: answers every query with ``rows``, counting the freshness ones."""

    name = "events"
    type_name = "sqlite"

    def __init__(self, *values: float | None, labels: bool = False) -> None:
        self.values = values
        self.labels = labels
        self.asked: list[Query] = []

    def query(self, query: Query) -> QueryResult:
        self.asked.append(query)
        labels = (("x", "y"),) if self.labels else ()
        return QueryResult(tuple(Sample(labels, value) for value in self.values))


def checked(events: Events, max_age: str = "5m") -> SqlFreshness:
    backend = with_sql_freshness(events, {"freshness": {"query": "SELECT max(ts)",
                                                        "max_age": max_age}})
    assert isinstance(backend, SqlFreshness)
    return backend


def test_sql_freshness_runs_once_per_evaluation_time_bound_to_at() -> None:
    events = Events(AT - 10)
    backend = checked(events)
    for text in ("SELECT 1", "SELECT 2", "SELECT 1"):
        backend.query(Query(text, AT, {"window_start": AT - 3600, "at": AT}))
    fresh_queries = [q for q in events.asked if q.text == "SELECT max(ts)"]
    assert [(q.at, dict(q.params)) for q in fresh_queries] == [(AT, {"at": AT})]
    assert [f.age for f in backend.freshness()] == [10.0]


@pytest.mark.parametrize(("events", "message"), [
    (Events(None), "the freshness query found no sample at all before"),
    (Events(), "the freshness query returned 0 rows of one"),
    (Events(AT, AT), "the freshness query returned 2 rows of one"),
    (Events(AT, labels=True), "the freshness query returned 1 rows of two columns"),
    (Events(AT - 3600), "the newest sample of the freshness query is 1h older"),
])
def test_sql_freshness_refuses_anything_but_one_recent_time(events: Events,
                                                            message: str) -> None:
    with pytest.raises(BackendError, match=message):
        checked(events).query(Query("SELECT 1", AT))


def test_without_the_setting_the_backend_is_unchanged() -> None:
    events = Events(1.0)
    assert with_sql_freshness(events, {}) is events


@pytest.mark.parametrize("freshness", [{"max_age": "5m"}, {"query": "SELECT 1", "max_age": "0s"},
                                       "SELECT 1"])
def test_bad_sql_freshness_settings_are_errors(freshness: object) -> None:
    with pytest.raises(BackendConfigError, match="setting freshness: "):
        with_sql_freshness(Events(), {"freshness": freshness})


SETTING_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                           st.text(max_size=10), st.dictionaries(st.text(max_size=8),
                                                                 st.text(max_size=8), max_size=2))


@given(check=SETTING_VALUES, max_age=SETTING_VALUES)
def test_generated_settings_are_a_bound_or_an_error_naming_the_key(check: object,
                                                                   max_age: object) -> None:
    try:
        config = PROMETHEUS.config("metrics", {"url": URL, "check_freshness": check,
                                               "freshness": {"max_age": max_age}}, Path("."))
    except BackendConfigError as exc:
        assert "setting check_freshness " in exc.message or "setting freshness" in exc.message
        return
    assert isinstance(config.check_freshness, bool)
    assert math.isfinite(config.max_age) and config.max_age > 0


@given(freshness=st.one_of(SETTING_VALUES, st.fixed_dictionaries(
    {"query": st.text(max_size=10)}, optional={"max_age": SETTING_VALUES})))
def test_generated_sql_settings_are_a_check_or_an_error(freshness: object) -> None:
    try:
        backend = with_sql_freshness(Events(AT), {"freshness": freshness})
    except BackendConfigError as exc:
        assert exc.message.startswith("setting freshness: ")
        return
    if freshness is None:
        assert isinstance(backend, Events)
    else:
        assert isinstance(backend, SqlFreshness)
        assert math.isfinite(backend.max_age) and backend.max_age > 0


def test_sql_freshness_keeps_the_inner_request_key_per_evaluation_time() -> None:
    # Wrapped, a SQL backend still shares one request between the regions of a statement
    # that does not name :region; but never across evaluation times, each freshness-checked.
    inner = with_sql_freshness(SQLITE.create("events", {"path": ":memory:"}, Path(".")),
                               {"freshness": {"query": "SELECT max(ts)", "max_age": "5m"}})
    text = "SELECT count(*) FROM req WHERE ts <= :at"
    eu, us = (Query(text, AT, {"at": AT, "region": region}) for region in ("eu", "us"))
    later = Query(text, AT + 60, {"at": AT + 60, "region": "eu"})
    assert request_key(inner, eu) == request_key(inner, us)
    assert request_key(inner, eu) != request_key(inner, later)
    fixed = Query("SELECT count(*) FROM req", AT, {"at": AT})
    assert request_key(inner, fixed) != request_key(inner, replace(fixed, at=AT + 60))
    inner.close()


@given(values=st.lists(st.one_of(st.none(), st.floats(), st.floats(AT - 90_000, AT + 10)),
                       max_size=3), labels=st.booleans(),
       max_age=st.sampled_from(["1s", "5m", "1d"]))
def test_any_freshness_answer_is_one_recent_time_or_an_error(
        values: list[float | None], labels: bool, max_age: str) -> None:
    backend = checked(Events(*values, labels=labels), max_age)
    try:
        backend.query(Query("SELECT 1", AT))
    except BackendError:
        return
    # Judged only on one unlabelled, finite time no older than the bound and not ahead of AT.
    assert not labels and len(values) == 1
    (newest,) = values
    assert newest is not None and math.isfinite(newest)
    assert 0 <= AT - newest <= {"1s": 1, "5m": 300, "1d": 86400}[max_age]
