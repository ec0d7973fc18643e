"""The metric check of the prometheus backend: names a query selects, and names that exist.

Against the real servers in test_integration_bad_answers.py; here the parsing, the message,
and the one lookup per backend through a fake API.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import responses
from fakes import PROMETHEUS_URL, prometheus_client

from pytest_rollout_slo.backends.base import Query
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend
from pytest_rollout_slo.backends.prometheus.metrics import selected_metrics, unknown_metrics
from pytest_rollout_slo.errors import BackendConfigError, BackendError, SpecError
from pytest_rollout_slo.spec.load import load_spec

URL = PROMETHEUS_URL
NAMES_URL = f"{URL}/api/v1/label/__name__/values"
AT = 1_700_000_000.0
VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [AT, "0"]}]}}


@pytest.mark.parametrize(("text", "names"), [
    ("sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))",
     {"errors_total", "requests_total"}),
    ('sum(rate(errors_total{code="500"}[5m])) or vector(0)', {"errors_total"}),
    ('{__name__="up", job="x"}', {"up"}),
    ('{__name__=~"up|down"}', set()),  # a regex selects no name for certain
    ("histogram_quantile(0.95, sum by (le) (rate(latency_bucket[5m])))", {"latency_bucket"}),
    ("max_over_time((-foo)[1h:5m]) + bar offset 5m", {"foo", "bar"}),
    ("vector(1)", set()),
])
def test_selected_metrics(text: str, names: set[str]) -> None:
    assert selected_metrics(text) == frozenset(names)


def test_a_query_that_is_not_promql_is_not_checked() -> None:
    assert selected_metrics("sum(rate(x[5m])") is None  # the server will say what is wrong
    assert unknown_metrics("sum(rate(x[5m])", frozenset(), "1w") is None


def test_the_message_names_the_metric_and_the_one_meant() -> None:
    message = unknown_metrics("sum(rate(agent_erors_total[5m])) or vector(0)",
                              frozenset({"agent_errors_total", "up"}), "1w")
    assert message is not None
    assert message.startswith("the query selects the metric agent_erors_total (did you mean "
                              "agent_errors_total?), which had no series on this backend in "
                              "the 1w before the evaluation time")


def make(**settings: object) -> PrometheusBackend:
    return prometheus_client({"check_freshness": False, **settings})


def test_names_are_listed_once_per_backend_over_the_lookback(
        api: responses.RequestsMock) -> None:
    names = api.get(NAMES_URL, json={"status": "success", "data": ["errors_total", "up"]})
    api.post(f"{URL}/api/v1/query", json=VECTOR)
    backend = make(metric_lookback="2d")
    for _ in range(3):
        assert backend.query(Query("sum(errors_total)", AT)).samples[0].value == 0.0
    assert names.call_count == 1
    assert names.calls[0].request.params == {"start": str(int(AT - 2 * 86400)),
                                             "end": str(int(AT))}
    with pytest.raises(BackendError, match="selects the metric errors_totl "):
        backend.query(Query("sum(errors_totl)", AT))


@pytest.mark.parametrize(("answer", "why"), [
    ({"status": 404, "body": "404 page not found"}, "HTTP 404 without the documented JSON"),
    ({"json": {"status": "success", "data": [1, 2]}}, "the data is not a list of names"),
    ({"json": {"status": "error", "error": "forbidden"}}, "HTTP 200: 'forbidden'"),
])
def test_names_that_cannot_be_listed_are_an_error_asked_once(
        api: responses.RequestsMock, answer: dict[str, object], why: str) -> None:
    names = api.get(NAMES_URL, **answer)
    api.post(f"{URL}/api/v1/query", json=VECTOR)
    backend = make()
    for _ in range(2):
        with pytest.raises(BackendError) as info:
            backend.query(Query("sum(errors_total)", AT))
        assert why in str(info.value)
        assert str(info.value).endswith("set check_metrics: false on the backend if it does "
                                        "not serve this endpoint")
    assert names.call_count == 1


def test_check_metrics_false_sends_no_lookup(api: responses.RequestsMock) -> None:
    api.post(f"{URL}/api/v1/query", json=VECTOR)
    assert make(check_metrics="false").query(Query("sum(nothing)", AT)).samples
    assert len(api.calls) == 1


@pytest.mark.parametrize(("settings", "expected"), [
    ({"check_metrics": "maybe"}, "setting check_metrics must be true or false"),
    ({"metric_lookback": "0s"}, "setting metric_lookback must be longer than 0s"),
    ({"metric_lookback": "soon"}, "setting metric_lookback expected"),
])
def test_bad_check_settings(settings: dict[str, object], expected: str) -> None:
    with pytest.raises(BackendConfigError, match=expected):
        make(**settings)


# --- the grammar, at collection --------------------------------------------------------------

def promql_spec(tmp_path: Path, query: str, backend_extra: str = "",
                metric_at_t: str = "up") -> Path:
    spec = tmp_path / "gate.slo.yaml"
    spec.write_text(textwrap.dedent(f"""\
        version: 1
        service: grammar
        backends:
          metrics: {{type: prometheus, url: "http://prometheus:9090"{backend_extra}}}
        variables: {{window: 5m, metric: up}}
        stages: {{s: {{}}, t: {{variables: {{metric: "{metric_at_t}"}}}}}}
        objectives:
          - name: up
            query: 'sum(rate(${{metric}}[${{window}}]))'
            min: 1
          - name: broken
            query: '{query}'
            max: 1
        """))
    return spec


def test_a_query_that_is_not_promql_is_a_spec_error_naming_its_line(tmp_path: Path) -> None:
    spec = promql_spec(tmp_path, "sum(rate(errors_total[5m])")
    with pytest.raises(SpecError) as info:
        load_spec(spec, {"prometheus": PROMETHEUS})
    assert (info.value.line, info.value.key) == (12, "objectives.broken.query")
    assert info.value.message.startswith("is not valid PromQL: ")
    assert info.value.message.endswith("(or set parse_promql: false on the backend, for an "
                                       "engine with extensions such as MetricsQL)")


def test_a_variable_that_breaks_the_query_at_one_stage_is_named(tmp_path: Path) -> None:
    # Stage t's metric "up)" turns the first objective into a syntax error there only.
    spec = promql_spec(tmp_path, "vector(1)", metric_at_t="up)")
    with pytest.raises(SpecError) as info:
        load_spec(spec, {"prometheus": PROMETHEUS})
    assert info.value.key == "objectives.up.query"
    assert info.value.message.endswith("(the query as resolved at stage 't')")


def test_parse_promql_false_leaves_the_query_to_the_engine(tmp_path: Path) -> None:
    # MetricsQL: WITH templates and functions Prometheus lacks.
    spec = promql_spec(tmp_path, "WITH (x = up) rollup_rate(x[5m])", ", parse_promql: false")
    assert set(load_spec(spec, {"prometheus": PROMETHEUS}).backends) == {"metrics"}
    spec.write_text(spec.read_text().replace("parse_promql: false", "parse_promql: maybe"))
    with pytest.raises(SpecError) as info:
        load_spec(spec, {"prometheus": PROMETHEUS})
    assert info.value.key == "backends.metrics.parse_promql"
