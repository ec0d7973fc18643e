"""Fakes the unit tests share: a Prometheus client for a faked API, a stub backend to build on.

The ``api`` fixture that fakes the HTTP API (``responses``) is in conftest.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytest_rollout_slo.backends.base import Query
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend

PROMETHEUS_URL = "http://prometheus:9090"
CHECKS_OFF = {"check_metrics": False, "check_freshness": False}
"""The metric and freshness checks off: each has its own tests (test_prometheus_metrics.py,
test_freshness.py), and a fake API then answers only the requests under test."""


def prometheus_client(settings: Mapping[str, object], *, spec_dir: Path = Path("."),
                      retries: int = 0) -> PrometheusBackend:
    """A Prometheus backend at :data:`PROMETHEUS_URL` with ``settings``, retrying at once."""
    config = PROMETHEUS.config("metrics", {"url": PROMETHEUS_URL, **settings}, spec_dir)
    return PrometheusBackend("metrics", config, retries=retries, retry_backoff=0.0)


class StubBackend:
    """The backend members a fake has no use for: a fixed description, no link, nothing to
    close. Subclasses set ``name`` and ``type_name`` and answer ``query``."""

    def describe(self) -> str:
        return "fake"

    def graph_url(self, query: Query) -> str | None:
        return None

    def close(self) -> None:
        pass
