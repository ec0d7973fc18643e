"""The ``prometheus`` backend type: PromQL over the HTTP API of Prometheus and compatible engines.

``config`` owns the settings and their checks, ``client`` the HTTP client and the reading of
answers. The type is defined here, apart from the client, so that a run without a Prometheus
backend never imports ``requests``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rollout_slo.backends.base import Backend
from pytest_rollout_slo.backends.prometheus.config import SETTINGS, PrometheusConfig, check_settings
from pytest_rollout_slo.spec.settings import QueryCheck, Setting, SettingProblem


class PrometheusType:
    """The ``prometheus`` backend type: its settings and how to make a backend from them."""

    name = "prometheus"
    language = "promql"
    settings: Mapping[str, Setting] = SETTINGS

    def query_check(self, settings: Mapping[str, Any]) -> QueryCheck:
        """Parse every query offline with Prometheus's grammar, unless ``parse_promql: false``
        (engines with extensions, such as VictoriaMetrics' MetricsQL)."""
        parse = settings.get("parse_promql", True)
        if isinstance(parse, str) and parse.strip().lower() in ("true", "false"):
            parse = parse.strip().lower() == "true"
        if not isinstance(parse, bool):
            raise SettingProblem("parse_promql", "must be true or false")
        return check_promql if parse else _no_check

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend

        return PrometheusBackend(name, self.config(name, settings, spec_dir))

    def config(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> PrometheusConfig:
        """Check env-resolved settings and coerce them; raise BackendConfigError if unusable."""
        return check_settings(name, settings, spec_dir)


def check_promql(text: str) -> str | None:
    """Why ``text`` is not PromQL, in the parser's words, or None."""
    # Only when a spec has a prometheus backend; the parse is cached for the metric check.
    from pytest_rollout_slo.backends.prometheus.metrics import parse

    expr = parse(text)
    if isinstance(expr, str):
        return (f"is not valid PromQL: {expr[:200]}; fix the query (or set parse_promql: "
                "false on the backend, for an engine with extensions such as MetricsQL)")
    return None


def _no_check(text: str) -> None:
    return None


PROMETHEUS = PrometheusType()

__all__ = ["PROMETHEUS", "PrometheusType"]
