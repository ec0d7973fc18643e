"""Unit tests of the prometheus backend against a fake HTTP API (``responses``).

The mapping of answers to samples is what a gate's verdict rests on, so every kind of
answer, every way a request fails and every place a secret could leak has its own test.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import socket
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from fakes import CHECKS_OFF, PROMETHEUS_URL, prometheus_client

from pytest_rollout_slo.backends.base import Query, RangeBackend, RangeQuery, Sample
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend
from pytest_rollout_slo.backends.redact import Redactor, strip_url_credentials
from pytest_rollout_slo.errors import BackendConfigError, BackendError, SpecError
from pytest_rollout_slo.spec.load import load_spec

URL = PROMETHEUS_URL
QUERY_URL = f"{URL}/api/v1/query"
AT = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
TEXT = 'sum(rate(agent_errors_total{feature="x"}[5m]))'


def make(settings: dict[str, Any] | None = None, *, spec_dir: Path = Path("."),
         retries: int = 3) -> PrometheusBackend:
    return prometheus_client({**CHECKS_OFF, **(settings or {})}, spec_dir=spec_dir,
                             retries=retries)


def success(kind: str, result: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": kind, "result": result}, **extra}


def form(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def failure(backend: PrometheusBackend, text: str = TEXT) -> BackendError:
    with pytest.raises(BackendError) as info:
        backend.query(Query(text, AT))
    return info.value


# --- answers -------------------------------------------------------------------------------

def test_vector_gives_one_sample_per_series_with_sorted_labels(
        api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", [
        {"metric": {"region": "eu", "__name__": "up"}, "value": [AT, "0.25"]},
        {"metric": {"region": "us"}, "value": [AT, "3"]},
    ]))
    result = make().query(Query(TEXT, AT))
    assert result.samples == (
        Sample((("__name__", "up"), ("region", "eu")), 0.25),
        Sample((("region", "us"),), 3.0),
    )
    assert result.warnings == ()


def test_scalar_gives_one_unlabelled_sample(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("scalar", [AT, "42.5"]))
    assert make().query(Query("42.5", AT)).samples == (Sample((), 42.5),)


def test_matrix_gives_one_sample_per_point_labelled_with_its_time(
        api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("matrix", [
        {"metric": {"job": "a"}, "values": [[AT - 60, "1"], [AT - 0.5, "2"]]},
    ]))
    samples = make().query(Query("up[2m]", AT)).samples
    assert samples == (
        Sample((("@", "2023-11-14T22:12:20Z"), ("job", "a")), 1.0),
        Sample((("@", "2023-11-14T22:13:19.500Z"), ("job", "a")), 2.0),
    )


def test_string_result_is_an_error_not_a_number(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("string", [AT, "hello"]))
    error = failure(make(), '"hello"')
    assert str(error) == "the query returned a string ('hello'), not a number"
    assert error.query == '"hello"'


def test_nan_is_kept_for_the_verdict_to_call_no_data(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", [{"metric": {}, "value": [AT, "NaN"]}]))
    (sample,) = make().query(Query(TEXT, AT)).samples
    assert sample.value is not None and math.isnan(sample.value)


@pytest.mark.parametrize("text", ["+Inf", "-Inf", "-1e309", "1e999"])
def test_an_infinity_is_an_error_never_a_value(api: responses.RequestsMock, text: str) -> None:
    # -Inf would pass every max: bound, and 0/+Inf reads 0 %: no bound can judge either.
    api.post(QUERY_URL, json=success("vector", [{"metric": {}, "value": [AT, text]}]))
    assert str(failure(make())).startswith(
        f"the query produced the non-finite value {text} at 2023-11-14T22:13:20Z, which no "
        "bound can judge")


def test_empty_vector_has_no_samples(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    assert make().query(Query(TEXT, AT)).samples == ()


@pytest.mark.parametrize(("result", "expected"), [
    ([{"metric": {}, "value": [AT, "many"]}], "the value 'many', which is not a number"),
    ([{"metric": {}, "value": [AT, None]}], "the value null as a JSON null; Prometheus writes "
                                            "sample values as strings"),
    ([{"metric": {}, "histogram": [AT, {}]}], "native histogram, not a number"),
    ([{"metric": {}}], "a series without 'value'"),
    ({"oops": 1}, "malformed result"),
])
def test_malformed_vector_is_an_error(api: responses.RequestsMock, result: Any,
                                      expected: str) -> None:
    api.post(QUERY_URL, json=success("vector", result))
    assert expected in str(failure(make()))


def test_status_error_quotes_error_type_and_message(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json={"status": "error", "errorType": "execution", "error": "boom"})
    assert str(failure(make())) == "the server answered with an error: execution: boom"


@pytest.mark.parametrize(("status", "phrase"), [(400, "Bad Request"),
                                                (422, "Unprocessable Entity")])
def test_rejected_query_gives_the_server_reason_once(api: responses.RequestsMock,
                                                    status: int, phrase: str) -> None:
    api.post(QUERY_URL, status=status, json={
        "status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected }"})
    error = failure(make())
    assert str(error) == (f"the server rejected the query (HTTP {status} {phrase}): "
                          "bad_data: 1:5: parse error: unexpected }")
    assert error.query == TEXT
    assert error.backend == "metrics"
    assert len(api.calls) == 1  # a 4xx is never retried


def test_not_found_hints_at_the_path_prefix(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, status=404, body="404 page not found", content_type="text/plain")
    assert str(failure(make())) == (
        f'{QUERY_URL} answered HTTP 404 Not Found: text/plain body "404 page not found"; '
        "check that url is the API root, with any prefix such as /prometheus")


def test_redirect_is_reported_not_followed(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, status=302, headers={"Location": "https://sso.example/login"})
    message = str(failure(make()))
    assert "HTTP 302 Found, a redirect to https://sso.example/login" in message
    assert len(api.calls) == 1


# --- retries and transport failures ---------------------------------------------------------

def test_bad_gateway_is_retried_then_succeeds(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, status=502, body="bad gateway")
    api.post(QUERY_URL, json=success("scalar", [AT, "1"]))
    assert make().query(Query(TEXT, AT)).samples == (Sample((), 1.0),)
    assert len(api.calls) == 2


@pytest.mark.parametrize("retries", [1, 3])
def test_persistent_unavailable_fails_after_bounded_retries(api: responses.RequestsMock,
                                                            retries: int) -> None:
    api.post(QUERY_URL, status=503, body="Service Unavailable", content_type="text/plain")
    error = failure(make(retries=retries))
    assert str(error) == (f"{QUERY_URL} answered HTTP 503 Service Unavailable after "
                          f'{retries + 1} attempts: text/plain body "Service Unavailable"')
    assert len(api.calls) == retries + 1


def test_prometheus_query_timeout_quotes_the_server(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, status=503, json={
        "status": "error", "errorType": "timeout", "error": "query timed out"})
    # One attempt, so no "after N attempts".
    assert str(failure(make(retries=0))).endswith(
        "answered HTTP 503 Service Unavailable: timeout: query timed out")


def test_read_timeout_names_the_wait_and_the_endpoint(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    error = failure(make({"timeout": "10s"}))
    assert str(error) == f"timed out after 10s waiting for {QUERY_URL}"
    assert isinstance(error.__cause__, requests.exceptions.ReadTimeout)


def test_connect_timeout_names_the_connect_limit(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    assert str(failure(make())) == f"timed out after 5s connecting to {QUERY_URL}"


def test_connection_error_is_one_readable_sentence(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, body=requests.exceptions.ConnectionError("network is unreachable"))
    assert str(failure(make())) == f"could not connect to {QUERY_URL} (network is unreachable)"


def test_refused_connection_to_a_real_closed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = PrometheusBackend("metrics", PROMETHEUS.config(
        "metrics", {"url": f"http://127.0.0.1:{port}", **CHECKS_OFF}, Path(".")),
        retry_backoff=0.0)
    message = str(failure(backend))
    assert message == (f"connection refused by http://127.0.0.1:{port}/api/v1/query; "
                       "is the server running and is url right?")


def test_real_server_that_never_answers_times_out_without_retrying() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        backend = PrometheusBackend("metrics", PROMETHEUS.config(
            "metrics", {"url": url, "timeout": 0.2, **CHECKS_OFF}, Path(".")),
            retry_backoff=0.0)
        assert str(failure(backend)) == f"timed out after 200ms waiting for {url}/api/v1/query"
        backend.close()


def test_every_request_has_a_connect_and_read_timeout(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    make().query(Query(TEXT, AT))
    make({"timeout": "2s"}).query(Query(TEXT, AT))
    # responses keeps the keyword arguments of send() on the request it records.
    sent = [vars(call.request)["req_kwargs"]["timeout"] for call in api.calls]
    assert sent == [(5.0, 30.0), (2.0, 2.0)]


# --- bodies that are not answers --------------------------------------------------------------

def test_html_login_page_is_named_with_status_type_and_start(
        api: responses.RequestsMock) -> None:
    page = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n<body>" + "x" * 200
    api.post(QUERY_URL, body=page, content_type="text/html; charset=utf-8")
    message = str(failure(make()))
    assert message.startswith(f"{QUERY_URL} answered HTTP 200 with a body that is not valid "
                              'JSON (text/html; charset=utf-8): "<!DOCTYPE html> <html><head>')
    assert message.endswith('..."')
    assert "\n" not in message
    assert len(message) < 300


def test_truncated_json_is_not_an_answer(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, body='{"status":"success","data":{"resultTy',
             content_type="application/json")
    assert str(failure(make())) == (
        f"{QUERY_URL} answered HTTP 200 with a body that is not valid JSON (application/json): "
        '"{"status":"success","data":{"resultTy"')


@pytest.mark.parametrize(("body", "problem"), [
    ({"data": {"resultType": "vector", "result": []}}, 'no "status" of success or error'),
    ({"status": "success"}, 'no "data" with "resultType" and "result"'),
    ([1, 2], 'no "status" of success or error'),
])
def test_json_without_the_envelope_is_not_an_answer(api: responses.RequestsMock, body: Any,
                                                    problem: str) -> None:
    api.post(QUERY_URL, json=body)
    assert f"with JSON that is not a Prometheus API answer ({problem})" in str(failure(make()))


def test_warnings_fail_by_default(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", [], warnings=["store eu-1 unreachable"]))
    assert str(failure(make())) == (
        "the server answered with warnings, so the answer may be partial: "
        "store eu-1 unreachable (on_warnings: ignore accepts such answers)")


def test_warnings_are_returned_when_ignored(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("scalar", [AT, "1"], warnings=["w1", "w2"]))
    result = make({"on_warnings": "ignore"}).query(Query(TEXT, AT))
    assert result == result.__class__((Sample((), 1.0),), ("w1", "w2"))


# --- what is sent --------------------------------------------------------------------------

def test_form_carries_query_time_and_partial_response(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    make().query(Query(TEXT, AT + 0.25))
    assert form(api.calls[0]) == {"query": TEXT, "time": "1700000000.25",
                                  "partial_response": "false"}
    assert api.calls[0].request.method == "POST"


def test_params_are_sent_and_may_override_partial_response(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    make({"params": {"dedup": True, "partial_response": "true"}}).query(Query(TEXT, AT))
    assert form(api.calls[0]) == {"query": TEXT, "time": "1700000000", "dedup": "true",
                                  "partial_response": "true"}


def test_tenant_header_and_bearer_token_are_sent(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    make({"headers": {"X-Scope-OrgID": "team-a"}, "bearer_token": "t0k3n"}).query(
        Query(TEXT, AT))
    headers = api.calls[0].request.headers
    assert headers["X-Scope-OrgID"] == "team-a"
    assert headers["Authorization"] == "Bearer t0k3n"


def test_answers_are_asked_uncompressed_unless_headers_ask(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    make().query(Query(TEXT, AT))
    assert api.calls[0].request.headers["Accept-Encoding"] == "identity"


def test_a_gzip_answer_asked_for_by_headers_is_decoded(api: responses.RequestsMock) -> None:
    body = gzip.compress(json.dumps(success("scalar", [AT, "0.25"])).encode())
    api.post(QUERY_URL, body=body, content_type="application/json",
             headers={"Content-Encoding": "gzip"})
    result = make({"headers": {"accept-encoding": "gzip"}}).query(Query(TEXT, AT))
    assert api.calls[0].request.headers["Accept-Encoding"] == "gzip"
    assert result.samples == (Sample((), 0.25),)


def test_the_form_is_sent_url_encoded(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    text = 'sum(x{path="/a b&c=d"}) # ü'
    make().query(Query(text, AT))
    request = api.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert isinstance(request.body, str)
    assert int(request.headers["Content-Length"]) == len(request.body.encode())
    assert form(api.calls[0])["query"] == text


@pytest.mark.parametrize("settings", [
    {"basic_auth": {"username": "alice", "password": "pw:1"}},
    {"url": "http://alice:pw%3A1@prometheus:9090"},
])
def test_basic_auth_is_sent_from_settings_or_url(api: responses.RequestsMock,
                                                 settings: dict[str, Any]) -> None:
    api.post(QUERY_URL, json=success("vector", []))
    make(settings).query(Query(TEXT, AT))
    request = api.calls[0].request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        b"alice:pw:1").decode()
    assert request.url == QUERY_URL  # credentials never travel in the url


@pytest.mark.parametrize("prefix", ["/prometheus", "/select/0/prometheus", "/prometheus/"])
def test_path_prefix_is_kept(api: responses.RequestsMock, prefix: str) -> None:
    base = f"{URL}{prefix.rstrip('/')}"
    api.post(f"{base}/api/v1/query", json=success("vector", []))
    backend = make({"url": URL + prefix})
    backend.query(Query(TEXT, AT))
    assert api.calls[0].request.url == f"{base}/api/v1/query"
    assert backend.describe() == f"prometheus, {base}"


# --- secrets -------------------------------------------------------------------------------

def test_token_and_password_echoed_by_the_server_are_redacted(
        api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, status=401, body="bad token t0k3n-XYZ", content_type="text/plain")
    message = str(failure(make({"bearer_token": "t0k3n-XYZ"})))
    assert "t0k3n-XYZ" not in message
    assert message == (f'{QUERY_URL} answered HTTP 401 Unauthorized: text/plain body "bad token '
                       '***"; check bearer_token, basic_auth or headers')
    api.post(QUERY_URL, status=403, body="user alice password hunter2 denied")
    message = str(failure(make({"basic_auth": {"username": "alice", "password": "hunter2"}})))
    assert "hunter2" not in message and "password *** denied" in message


def test_url_credentials_never_shown(api: responses.RequestsMock) -> None:
    leaky = "HTTPConnectionPool: failed for http://alice:s3cr%2Ft@prometheus:9090/api/v1/query"
    api.post(QUERY_URL, body=requests.exceptions.ConnectionError(leaky))
    backend = make({"url": "http://alice:s3cr%2Ft@prometheus:9090"})
    message = str(failure(backend))
    assert "s3cr" not in message and "alice" not in message
    assert "http://***@prometheus:9090/api/v1/query" in message
    assert backend.describe() == "prometheus, http://prometheus:9090"
    for ui in ("prometheus", "vmui"):
        link = make({"url": "http://alice:s3cr%2Ft@prometheus:9090", "ui": ui}).graph_url(
            Query("up", AT))
        assert link is not None and "s3cr" not in link and "alice" not in link
    assert "s3cr" not in repr(backend.config) and "alice" not in repr(backend.config)


def test_requests_exception_text_is_redacted(api: responses.RequestsMock) -> None:
    api.post(QUERY_URL, body=requests.exceptions.ConnectionError("header Bearer t0k3n bad"))
    assert str(failure(make({"bearer_token": "t0k3n"}))) == (
        f"could not connect to {QUERY_URL} (header Bearer *** bad)")


def test_redactor_masks_every_form_of_a_secret() -> None:
    redact = Redactor(["p@ss word", ""])
    assert redact("a p@ss word, p%40ss%20word and p%40ss+word") == "a ***, *** and ***"
    assert redact("see https://bob:x@host/p") == "see https://***@host/p"
    assert strip_url_credentials("https://bob:x@host:1/p?q=1") == "https://host:1/p?q=1"
    assert "p@ss" not in repr(redact)


# --- range queries and links -----------------------------------------------------------------

def test_query_range_parses_every_series(api: responses.RequestsMock) -> None:
    api.post(f"{URL}/api/v1/query_range", json=success("matrix", [
        {"metric": {"job": "b", "instance": "i"}, "values": [[AT, "1"], [AT + 60, "NaN"]]},
        {"metric": {}, "values": []},
    ]))
    backend = make()
    assert isinstance(backend, RangeBackend)
    series = backend.query_range(RangeQuery("up", AT, AT + 60, 60))
    assert [s.labels for s in series] == [(("instance", "i"), ("job", "b")), ()]
    assert series[0].points[0] == (AT, 1.0)
    assert series[0].points[1][0] == AT + 60 and math.isnan(series[0].points[1][1] or 0.0)
    assert series[1].points == ()
    assert form(api.calls[0]) == {"query": "up", "start": "1700000000", "end": "1700000060",
                                  "step": "60", "partial_response": "false"}


def test_query_range_rejects_a_vector(api: responses.RequestsMock) -> None:
    api.post(f"{URL}/api/v1/query_range", json=success("vector", []))
    with pytest.raises(BackendError, match="a range query returned a 'vector' result"):
        make().query_range(RangeQuery("up", AT, AT + 60, 60))


GRAPH_TEXT = 'rate(x{a="b c"}[5m])'
GRAPH_EXPR = "g0.expr=rate%28x%7Ba%3D%22b%20c%22%7D%5B5m%5D%29"


@pytest.mark.parametrize("settings", [{}, {"ui": "prometheus"}], ids=["default", "prometheus"])
def test_graph_url_links_to_the_expression_at_its_time(settings: dict[str, Any]) -> None:
    backend = make({"url": "https://bob:pw@mimir.example/prometheus/", **settings})
    assert backend.config.ui == "prometheus"
    assert backend.graph_url(Query(GRAPH_TEXT, AT)) == (
        f"https://mimir.example/prometheus/graph?{GRAPH_EXPR}"
        "&g0.tab=1&g0.moment_input=2023-11-14%2022%3A13%3A20")


@pytest.mark.parametrize(("url", "ui_root"), [
    ("http://vm:8428", "http://vm:8428/vmui/"),
    ("http://bob:pw@vm:8428/prometheus/", "http://vm:8428/vmui/"),
    ("https://proxy.example/victoria/prometheus", "https://proxy.example/victoria/vmui/"),
    ("http://vmselect:8481/select/42/prometheus", "http://vmselect:8481/select/42/vmui/"),
    ("http://vmselect:8481/select/7:3/prometheus/", "http://vmselect:8481/select/7:3/vmui/"),
], ids=["single-node", "single-node-prefix", "behind-proxy", "cluster", "cluster-project"])
def test_vmui_link_shows_the_expression_up_to_its_time(url: str, ui_root: str) -> None:
    backend = make({"url": url, "ui": "vmui"})
    # The fragment is what vmui reads; relative_time=none makes it honour end_input (UTC).
    assert backend.graph_url(Query(GRAPH_TEXT, AT)) == (
        f"{ui_root}#/?{GRAPH_EXPR}&g0.range_input=1h&g0.end_input=2023-11-14T22%3A13%3A20"
        "&g0.relative_time=none")


def test_ui_none_gives_no_link() -> None:
    assert make({"ui": "none"}).graph_url(Query(GRAPH_TEXT, AT)) is None


@pytest.mark.parametrize("ui", ["vmui", "none"])
def test_ui_is_checked_offline_and_accepted_by_spec_files(tmp_path: Path, ui: str) -> None:
    spec = tmp_path / "gate.slo.yaml"
    spec.write_text(textwrap.dedent(f"""\
        version: 1
        service: links
        backends:
          metrics: {{type: prometheus, url: "http://vm:8428", ui: {ui}}}
        stages: {{s: {{}}}}
        objectives:
          - {{name: up, query: up, min: 1}}
        """))
    types = {"prometheus": PROMETHEUS}
    assert load_spec(spec, types).backends["metrics"].settings["ui"] == ui
    spec.write_text(spec.read_text().replace(f"ui: {ui}", "ui: grafana"))
    with pytest.raises(SpecError) as info:
        load_spec(spec, types)
    assert (info.value.line, info.value.key) == (4, "backends.metrics.ui")
    assert info.value.message == "got 'grafana'; accepted: prometheus, vmui, none"


# --- settings ------------------------------------------------------------------------------

def test_settings_schema_declares_secrets_and_requirements() -> None:
    settings = PROMETHEUS.settings
    assert PROMETHEUS.name == "prometheus"
    assert settings["url"].required and settings["bearer_token"].secret
    basic_keys = settings["basic_auth"].keys
    assert basic_keys is not None and basic_keys["password"].secret
    assert settings["on_warnings"].choices == ("fail", "ignore")
    assert settings["ui"].choices == ("prometheus", "vmui", "none")


def test_settings_are_coerced(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("ca")
    backend = make({"timeout": "1m30s", "max_concurrency": "4", "tls": {"ca_file": "ca.pem"}},
                   spec_dir=tmp_path)
    assert backend.config.timeout == 90.0
    assert backend.max_concurrency == 4
    assert backend.config.verify == str(tmp_path / "ca.pem")
    assert make({"timeout": 7, "tls": {"verify": "false"}}).config.verify is False
    assert make().config.timeout == 30.0 and make().max_concurrency == 8
    created = PROMETHEUS.create("metrics", {"url": URL, "type": "prometheus"}, Path("."))
    assert created.name == "metrics" and created.type_name == "prometheus"


@pytest.mark.parametrize(("settings", "expected"), [
    ({"url": "prometheus:9090"}, "setting url 'prometheus:9090' is not a valid http:// or "
                                 "https:// url"),
    ({"url": "ftp://user:pw@host"}, "setting url 'ftp://host' is not a valid"),
    ({"url": "http://host:99999"}, "is not a valid http:// or https:// url"),
    ({"url": 9090}, "setting url must be a string, got int"),
    ({"url": "http://host/?x=1"}, "has a query string; put parameters under params"),
    ({"url": "http://host/api/v1/query"}, "ends in an API path"),
    ({"timeout": "ten"}, "setting timeout expected a duration"),
    ({"timeout": "0s"}, "setting timeout must be longer than 0s"),
    ({"on_warnings": "maybe"}, "setting on_warnings is 'maybe'; expected fail or ignore"),
    ({"ui": "grafana"}, "setting ui is 'grafana'; expected prometheus, vmui or none"),
    ({"ui": None}, "setting ui is None; expected prometheus, vmui or none"),
    ({"max_concurrency": 0}, "setting max_concurrency must be a whole number >= 1, got 0"),
    ({"max_concurrency": "many"}, "got 'many'"),
    ({"headers": ["X"]}, "setting headers must be a mapping of names to strings, got list"),
    ({"bearer_token": "t", "basic_auth": {"username": "u", "password": "p"}},
     "bearer_token and basic_auth are both set; keep only one way to log in"),
    ({"basic_auth": {"username": "u"}}, "basic_auth must be a mapping with username and password"),
    ({"tls": {"key": "k.pem"}}, "setting tls.key needs tls.cert"),
    ({"tls": {"ca_file": "nowhere.pem"}}, "setting tls.ca_file names nowhere.pem, which is not"),
    ({"tls": {"verify": 3}}, "setting tls.verify must be true, false or a CA bundle path"),
    ({"tmeout": "1s"}, "setting tmeout is unknown; expected one of url, headers"),
])
def test_unusable_settings_are_config_errors(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(BackendConfigError) as info:
        make(settings)
    assert str(info.value).startswith("backend metrics: ")
    assert expected in str(info.value)
    assert info.value.backend == "metrics"
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("settings", [
    {"bearer_token": "s3cr3t-token\n"},
    {"bearer_token": " s3cr3t-token"},
    {"basic_auth": {"username": "alice", "password": "s3cr3t-token\r\n"}},
])
def test_a_credential_with_a_line_break_is_refused_without_quoting_it(
        settings: dict[str, Any]) -> None:
    # requests would quote such a header value, secret included, in its own error.
    with pytest.raises(BackendConfigError, match=r"line break|surrounding spaces") as info:
        make(settings)
    assert "s3cr3t-token" not in str(info.value)


@pytest.mark.parametrize("url", ["alice:hunter2@prom:9090", "http//alice:hunter2@prom:9090"])
def test_a_url_without_scheme_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(BackendConfigError, match="not a valid http") as info:
        PROMETHEUS.config("metrics", {"url": url}, Path("."))
    assert "hunter2" not in str(info.value)


def test_header_values_stay_out_of_the_config_repr() -> None:
    config = PROMETHEUS.config("metrics", {"url": URL, "headers": {"X-Api-Key": "k3y-value"}},
                               Path("."))
    assert "k3y-value" not in repr(config)
