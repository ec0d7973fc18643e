"""A tiny in-memory backend type for the benchmarks, registered like any plugin's backend.

Loaded with ``-p memory_backend``. ``type: memory`` answers the query ``value 0.5 <anything>``
with the single value 0.5 at once, so a run measures the plugin and pytest, not a backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo.backends.base import (
    Backend,
    BackendType,
    Query,
    QueryResult,
    Sample,
)
from pytest_rollout_slo.errors import BackendError
from pytest_rollout_slo.spec.settings import Setting


class MemoryBackend:
    type_name = "memory"

    def __init__(self, name: str) -> None:
        self.name = name
        self.max_concurrency = 8

    def describe(self) -> str:
        return "memory"

    def graph_url(self, query: Query) -> str | None:
        return None

    def close(self) -> None:
        pass

    def query(self, query: Query) -> QueryResult:
        word, _, rest = query.text.partition(" ")
        if word != "value":
            raise BackendError(f"cannot answer {query.text!r}", backend=self.name)
        return QueryResult((Sample((), float(rest.split()[0])),))


class MemoryType:
    name = "memory"
    settings: Mapping[str, Setting] = {}

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        return MemoryBackend(name)


@pytest.hookimpl
def pytest_slo_backend_types() -> list[BackendType]:
    return [MemoryType()]
