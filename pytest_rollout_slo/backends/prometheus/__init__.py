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
from pytest_rollout_slo.spec.settings import Setting


class PrometheusType:
    """The ``prometheus`` backend type: its settings and how to make a backend from them."""

    name = "prometheus"
    language = "promql"
    settings: Mapping[str, Setting] = SETTINGS

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        from pytest_rollout_slo.backends.prometheus.client import PrometheusBackend

        return PrometheusBackend(name, self.config(name, settings, spec_dir))

    def config(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> PrometheusConfig:
        """Check env-resolved settings and coerce them; raise BackendConfigError if unusable."""
        return check_settings(name, settings, spec_dir)


PROMETHEUS = PrometheusType()

__all__ = ["PROMETHEUS", "PrometheusType"]
