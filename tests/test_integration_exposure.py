"""The exposure check against the suite's real Prometheus: canary and control label counts.

In the quickstart backfill the beta stage served 712 canary and 1,520 control requests in
the 24 hours before AT (``agent_requests_total{cohort=...}``): 31.9 % on the canary. A flag
promising about that share is judged; one promising 10 % is a sample ratio mismatch.
"""

from __future__ import annotations

import pytest

# Before any in-process run: pytester unloads what a run imported, and SciPy's extension
# modules cannot be loaded twice in one process.
import scipy.stats  # noqa: F401
from servers import PrometheusServer
from test_integration_prometheus import run_spec

pytest_plugins = ["pytester"]

SPEC = """\
version: 1
service: conflict-resolver
backends:
  metrics: {{type: prometheus, url: "{url}", timeout: 10s}}
exposure:
  backend: metrics
  canary: sum(increase(agent_requests_total{{stage="beta", cohort="canary"}}[24h]))
  all: sum(increase(agent_requests_total{{stage="beta"}}[24h]))
  units: requests
stages:
  beta:
    rollout: {{flag: conflict_resolver, percent: {percent}}}
objectives:
- name: requests
  query: sum(increase(agent_requests_total{{stage="beta"}}[24h]))
  min: 1
"""


def test_a_share_as_promised_is_judged(pytester: pytest.Pytester,
                                       prometheus_server: PrometheusServer) -> None:
    result, cases = run_spec(pytester, SPEC.format(url=prometheus_server.url, percent="32%"),
                             "beta")
    assert result.ret == 0
    assert [case.outcome for case in cases.values()] == ["passed"]


def test_a_share_far_from_the_promise_is_an_error_saying_both(
        pytester: pytest.Pytester, prometheus_server: PrometheusServer) -> None:
    result, cases = run_spec(pytester, SPEC.format(url=prometheus_server.url, percent="10%"),
                             "beta")
    assert result.ret == 1
    [case] = cases.values()
    assert case.outcome == "error"
    assert case.text.startswith(
        "requests[beta] ERROR: the canary carried 31.9% of 2,232 requests; the flag promises "
        "10% (sample ratio mismatch, p ")
    assert "the stage did not get its share, so its objectives cannot be judged" in case.text
