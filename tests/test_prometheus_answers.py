"""Answers a Prometheus never sends, and what the backend makes of them: an error, never a value.

Each case is one way a body, a status or a value can look like a success while it is not (a
cache's 203, a BOM, ``"status"`` twice, ``" 0.01"``, a point after ``end``), found by
generating answers against ``max: 5%`` objectives. The property test at the end generates
many more: whatever the body, the backend returns only finite values (or NaN) read from a
valid answer, or raises BackendError; never another exception.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
import responses
from fakes import CHECKS_OFF, PROMETHEUS_URL, prometheus_client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import Query, RangeQuery
from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend
from pytest_rollout_slo.errors import BackendError

URL = PROMETHEUS_URL
QUERY_URL = f"{URL}/api/v1/query"
RANGE_URL = f"{URL}/api/v1/query_range"
AT = 1_700_000_000.0
TEXT = "sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))"


def make() -> PrometheusBackend:
    return prometheus_client(CHECKS_OFF)


def vector(value: Any, t: Any = AT) -> dict[str, Any]:
    return {"status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [t, value]}]}}


def error_of(api: responses.RequestsMock, body: bytes, status: int = 200,
             content_type: str = "application/json") -> str:
    api.post(QUERY_URL, body=body, status=status, content_type=content_type)
    with pytest.raises(BackendError) as info:
        make().query(Query(TEXT, AT))
    return str(info.value)


@pytest.mark.parametrize("value", ["-Inf", "+Inf", "-1e309", "1e400"])
def test_an_infinity_in_any_spelling_prometheus_uses_is_an_error(
        api: responses.RequestsMock, value: str) -> None:
    message = error_of(api, json.dumps(vector(value)).encode())
    assert f"the query produced the non-finite value {value}" in message


@pytest.mark.parametrize("literal", ["-Infinity", "Infinity", "NaN"])
def test_json_infinity_and_nan_literals_are_not_json(api: responses.RequestsMock,
                                                     literal: str) -> None:
    body = f'{{"status":"success","data":{{"resultType":"scalar","result":[{AT},{literal}]}}}}'
    message = error_of(api, body.encode())
    assert message.startswith(
        f"{QUERY_URL} answered HTTP 200 with a body that is not valid JSON (application/json; "
        f"{literal} is not JSON; Prometheus writes special values as strings): ")


@pytest.mark.parametrize("value", ["-inf", "inf", "nan", "Infinity", " 0.01", "0.01 ", "0.0_1",
                                   "\uff10.\uff10\uff11", "0x10", "", "1,5", "5%"])
def test_value_strings_python_reads_but_prometheus_never_writes(
        api: responses.RequestsMock, value: str) -> None:
    message = error_of(api, json.dumps(vector(value)).encode())
    assert message == (f"the server returned the value {value!r}, which is not a number as "
                       "Prometheus writes one")


@pytest.mark.parametrize("value", [0.01, 0, True, None, [], {}])
def test_a_value_that_is_not_a_string_is_an_error(api: responses.RequestsMock,
                                                  value: Any) -> None:
    message = error_of(api, json.dumps(vector(value)).encode())
    assert "Prometheus writes sample values as strings" in message


@pytest.mark.parametrize("status", [201, 203, 206, 299])
def test_a_success_body_under_another_2xx_status_is_an_error(api: responses.RequestsMock,
                                                            status: int) -> None:
    message = error_of(api, json.dumps(vector("0.01")).encode(), status=status)
    assert message.startswith(f"{QUERY_URL} answered HTTP {status} ")


@pytest.mark.parametrize(("body", "why"), [
    (json.dumps(vector("0.01")).encode("utf-16"), "it starts with a byte order mark"),
    (b"\xef\xbb\xbf" + json.dumps(vector("0.01")).encode(), "it starts with a byte order mark"),
    # Without a BOM, UTF-16 is valid UTF-8 (NUL bytes) that is not JSON.
    (json.dumps(vector("0.01")).encode("utf-16-le"), ""),
    (json.dumps(vector("0.01")).encode() + b"\xff", "not utf-8"),
])
def test_a_body_that_is_not_utf8_json_is_an_error(api: responses.RequestsMock, body: bytes,
                                                  why: str) -> None:
    start = f"a body that is not valid JSON (application/json; {why}" if why else (
        "a body that is not valid JSON (application/json): ")
    assert start in error_of(api, body)


def test_a_declared_charset_is_used_and_an_unknown_one_refused(
        api: responses.RequestsMock) -> None:
    body = json.dumps(vector("0.01")).encode("latin-1")
    api.post(QUERY_URL, body=body, content_type="application/json; charset=ISO-8859-1")
    assert make().query(Query(TEXT, AT)).samples[0].value == 0.01
    message = error_of(api, body, content_type="application/json; charset=klingon")
    assert "not klingon" in message


def test_a_key_twice_is_refused_whichever_copy_would_win(api: responses.RequestsMock) -> None:
    body = ('{"status":"error","status":"success","data":{"resultType":"vector",'
            '"result":[{"metric":{},"value":[1700000000,"0.01"]}]}}')
    assert "the key 'status' appears twice in one object" in error_of(api, body.encode())


def test_deep_nesting_and_huge_integers_are_errors_not_crashes(
        api: responses.RequestsMock) -> None:
    deep = b'{"status":"success","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nested far deeper than any Prometheus answer" in error_of(api, deep)
    shallow_but_deep = json.dumps(vector([[[[[["0.01"]]]]]])).encode()
    assert "nested deeper than any Prometheus answer" in error_of(api, shallow_but_deep)
    huge = json.dumps(vector("0.01", "T")).replace('"T"', "9" * 5000).encode()
    assert "an integer of 5000 digits is larger than any timestamp" in error_of(api, huge)
    huge_float = json.dumps(vector("0.01", "T")).replace('"T"', "9" * 400 + ".0").encode()
    assert "the server returned the timestamp Infinity, which is not a time a server stores" in (
        error_of(api, huge_float))


@pytest.mark.parametrize("t", ["NaN", "1700000000", None, 1e300, -1e300])
def test_a_timestamp_that_is_not_a_finite_time_is_an_error(api: responses.RequestsMock,
                                                         t: Any) -> None:
    message = error_of(api, json.dumps(vector("0.01", t)).encode())
    shown = repr(t) if isinstance(t, str) else json.dumps(t)
    assert message.startswith(f"the server returned the timestamp {shown}, which is not ")


@pytest.mark.parametrize("t", [AT - 3600, AT + 1])
def test_an_instant_sample_from_another_time_is_an_error(api: responses.RequestsMock,
                                                         t: float) -> None:
    message = error_of(api, json.dumps(vector("0.01", t)).encode())
    assert message.endswith("an instant answer is taken at the time asked for")


def test_a_sample_moved_back_by_a_latency_offset_is_taken(api: responses.RequestsMock) -> None:
    # VictoriaMetrics answers a time close to now at now - 30 s (-search.latencyOffset).
    api.post(QUERY_URL, json=vector("0.01", AT - 30))
    assert make().query(Query(TEXT, AT)).samples[0].value == 0.01


@pytest.mark.parametrize("warnings", [5, "partial", [1], {"a": "b"}])
def test_warnings_that_are_not_a_list_of_strings(api: responses.RequestsMock,
                                                 warnings: Any) -> None:
    body = json.dumps({**vector("0.01"), "warnings": warnings}).encode()
    assert 'not a Prometheus API answer ("warnings" that is not a list of strings)' in (
        error_of(api, body))


def matrix(*points: tuple[float, str]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [list(p) for p in points]}]}}


def range_error(api: responses.RequestsMock, body: dict[str, Any]) -> str:
    api.post(RANGE_URL, json=body)
    with pytest.raises(BackendError) as info:
        make().query_range(RangeQuery(TEXT, AT - 120, AT, 60))
    return str(info.value)


@pytest.mark.parametrize("t", [AT + 60, AT - 180, AT - 90])
def test_a_range_point_off_the_requested_grid_is_an_error(api: responses.RequestsMock,
                                                          t: float) -> None:
    # A point after end used to be dropped silently, and a violation with it.
    message = range_error(api, matrix((AT - 120, "0"), (t, "0.9")))
    assert "which is not on the requested grid" in message


def test_repeated_or_unordered_range_points_are_an_error(api: responses.RequestsMock) -> None:
    message = range_error(api, matrix((AT - 60, "0"), (AT - 60, "0.9")))
    assert message == "the server returned a series whose points are repeated or out of order"


def test_range_points_on_the_grid_are_taken(api: responses.RequestsMock) -> None:
    api.post(RANGE_URL, json=matrix((AT - 120, "0"), (AT - 60, "0.5"), (AT, "NaN")))
    (series,) = make().query_range(RangeQuery(TEXT, AT - 120, AT, 60))
    assert series.points[:2] == ((AT - 120, 0.0), (AT - 60, 0.5))
    assert math.isnan(series.points[2][1] or 0.0)


# --- property: whatever the body, a value only from a valid answer -------------------------

_PROMETHEUS_VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN",
                               re.ASCII)

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "+Inf", "-Inf", "-inf", "0.01", " 0.01", "0.0_1", "1e309", "-0",
                     "\uff11", "5%", ""]),
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(), st.booleans(), st.integers(),
)
times = st.one_of(st.just(AT), st.just(AT - 30), st.floats(), st.integers(), st.text(max_size=4),
                  st.none())
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6))
junk = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
series = st.fixed_dictionaries(
    {"metric": st.one_of(st.dictionaries(st.sampled_from(["job", "region"]), st.text(max_size=3),
                                         max_size=2), junk)},
    optional={"value": st.one_of(st.tuples(times, values).map(list), junk)})
payloads = st.fixed_dictionaries(
    {"status": st.sampled_from(["success", "success", "error", "Success", None]),
     "data": st.one_of(st.fixed_dictionaries({
         "resultType": st.sampled_from(["vector", "vector", "scalar", "matrix", "string", "x"]),
         "result": st.one_of(st.lists(series, max_size=3), st.tuples(times, values).map(list),
                             junk)}), junk)},
    optional={"warnings": st.one_of(st.lists(st.text(max_size=5), max_size=2), junk),
              "errorType": junk})

# Mostly well-formed answers whose values are hostile: where a false pass would hide.
plausible = st.builds(
    lambda values, t: {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"region": str(i)}, "value": [t, v]} for i, v in enumerate(values)]}},
    st.lists(values, min_size=1, max_size=3), st.sampled_from([AT, AT - 30, AT + 0.0005]))


def encodings(payload: dict[str, Any]) -> st.SearchStrategy[bytes]:
    text = json.dumps(payload)
    return st.sampled_from([
        text.encode(), text.encode(), text.encode(), text.encode("utf-16"),
        b"\xef\xbb\xbf" + text.encode(),
        text.replace('"status"', '"status": "error", "status"', 1).encode(),
        text[: len(text) // 2].encode(),
    ])


bodies = st.one_of(plausible, payloads).flatmap(lambda p: st.tuples(st.just(p), encodings(p)))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, status=st.sampled_from([200] * 5 + [201, 203, 206, 400, 503]))
def test_generated_answers_give_finite_values_from_valid_answers_or_an_error(
        body: tuple[dict[str, Any], bytes], status: int) -> None:
    payload, raw = body
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(QUERY_URL, body=raw, status=status, content_type="application/json")
        try:
            result = make().query(Query(TEXT, AT))
        except BackendError:
            event("refused")
            return
    event("taken")
    # Taken: so it was a plain 200 with the JSON as dumped, and every value a string in
    # Prometheus's format, finite or NaN.
    assert status == 200 and raw == json.dumps(payload).encode()
    assert payload["status"] == "success"
    for sample in result.samples:
        assert sample.value is not None
        assert math.isnan(sample.value) or math.isfinite(sample.value)
    data = payload["data"]
    kind = data["resultType"]
    assert kind in ("vector", "scalar", "matrix")
    pairs = ([item["value"] for item in data["result"]] if kind == "vector"
             else [data["result"]] if kind == "scalar"
             else [p for item in data["result"] for p in item["values"]])
    assert len(pairs) == len(result.samples)
    for _, value in pairs:
        assert isinstance(value, str) and _PROMETHEUS_VALUE.fullmatch(value)
