"""The freshness check against the suite's real servers: a series that stops is an error.

The fixture series end at ``FIXTURE_END`` (servers.write_fixture_openmetrics), so evaluating
later is evaluating after the scrape stopped: within the bound the gate judges, past it every
objective selecting the metric is an error that names the metric and its age. Past the 5m
lookback delta a plain selector finds nothing, so these ages come from the subquery half of
the check's query (metrics.newest_sample_query).
"""

from __future__ import annotations

import json
import textwrap

import pytest
from servers import FIXTURE_END, PrometheusServer, VictoriaMetricsServer
from test_integration_bad_answers import QUIET, SPEC, gate, headline

from pytest_rollout_slo.quantity import format_time

pytest_plugins = ["pytester"]

COUNT = """\
- name: traffic
  query: sum(increase(slo_test_requests_total[1h]))
  min: 0
"""


@pytest.fixture(params=["prometheus", "victoriametrics"])
def engine(request: pytest.FixtureRequest) -> PrometheusServer | VictoriaMetricsServer:
    server: PrometheusServer | VictoriaMetricsServer = request.getfixturevalue(
        f"{request.param}_server")
    return server


def passes(pytester: pytest.Pytester, url: str, at: float, settings: str = "") -> bool:
    """Whether the ``COUNT`` gate at ``at`` passes (``gate`` refuses any pass)."""
    pytester.makefile(".slo.yaml", gate=SPEC.format(
        url=url, objectives=textwrap.indent(COUNT, "  ")).replace(
        "    timeout: 5s\n", f"    timeout: 5s\n{settings}"))
    result = pytester.runpytest(*QUIET, "--slo-stage=s", f"--slo-at={at}")
    return result.ret == 0 and result.parseoutcomes() == {"passed": 1}


@pytest.mark.parametrize("late", [0, 3 * 60])
def test_data_within_the_bound_is_judged(
        pytester: pytest.Pytester, engine: PrometheusServer | VictoriaMetricsServer,
        late: int) -> None:
    assert passes(pytester, engine.url, FIXTURE_END + late)


def test_a_series_that_stopped_20_minutes_ago_is_an_error_naming_it_and_its_age(
        pytester: pytest.Pytester, engine: PrometheusServer | VictoriaMetricsServer) -> None:
    at = FIXTURE_END + 20 * 60 + 4
    run = gate(pytester, engine.url, COUNT, at=at)
    case = run.only()
    assert (run.ret, case.outcome, case.verdict) == (1, "error", "error")
    assert headline(case) == (
        "traffic[s] ERROR: the newest sample of the metric slo_test_requests_total is 20m 4s "
        f"older than the evaluation time {format_time(at)} (the bound is max_age 5m); scraping "
        "may have stopped; set check_freshness: false on the backend to judge without this "
        "check")


def test_a_series_that_stopped_before_the_search_says_so(
        pytester: pytest.Pytester, prometheus_server: PrometheusServer) -> None:
    at = FIXTURE_END + 3 * 3600
    case = gate(pytester, prometheus_server.url, COUNT, at=at).only()
    assert case.verdict == "error"
    assert headline(case).startswith(
        "traffic[s] ERROR: the metric slo_test_requests_total found no sample in the 1h before "
        f"the evaluation time {format_time(at)} (the bound is max_age 5m)")


@pytest.mark.parametrize("settings", ["    freshness: {max_age: 30m}\n",
                                      "    check_freshness: false\n"])
def test_a_longer_bound_or_no_check_judges_the_old_data(
        pytester: pytest.Pytester, prometheus_server: PrometheusServer, settings: str) -> None:
    assert not passes(pytester, prometheus_server.url, FIXTURE_END + 20 * 60)
    assert passes(pytester, prometheus_server.url, FIXTURE_END + 20 * 60, settings)


def test_the_evidence_carries_each_metric_age_and_bound(
        pytester: pytest.Pytester, prometheus_server: PrometheusServer) -> None:
    at = FIXTURE_END + 3 * 60
    assert passes(pytester, prometheus_server.url, at, "    freshness: {max_age: 4m}\n")
    pytester.runpytest(*QUIET, "--slo-stage=s", f"--slo-at={at}", "--slo-report-json=e.json")
    [objective] = json.loads((pytester.path / "e.json").read_text(encoding="utf-8"))["objectives"]
    assert objective["checks"]["freshness"] == [{
        "what": "the metric slo_test_requests_total", "at": format_time(at),
        "newest": format_time(FIXTURE_END), "age_seconds": 180.0, "max_age_seconds": 240.0,
        "searched_seconds": 3600.0, "fresh": True}]
