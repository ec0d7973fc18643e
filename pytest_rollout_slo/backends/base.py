"""The backend interface: what every metrics backend implements, and the registry of types.

A *backend type* (``sqlite``, ``prometheus``, or one added by another plugin through the
``pytest_slo_backend_types`` hook) declares the settings it accepts, so that spec files are
validated offline at collection, and creates *backends* from resolved settings at run time.
A backend answers one query at one evaluation time with zero or more samples, or raises
:class:`~pytest_rollout_slo.errors.BackendError`. It never decides a verdict.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pytest_rollout_slo.errors import BackendConfigError
from pytest_rollout_slo.spec.settings import BackendSchema, SettingValues


@dataclass(frozen=True)
class Query:
    """One query as a backend runs it: resolved text, evaluation time and bound values.

    ``params`` are the named values an SQL backend binds (``:at``, ``:window_start``, every
    variable); a PromQL backend ignores them because the text is already resolved.
    """

    text: str
    at: float
    params: Mapping[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True)
class RangeQuery:
    """A query evaluated at every ``step`` seconds from ``start`` to ``end`` inclusive."""

    text: str
    start: float
    end: float
    step: float
    params: Mapping[str, str | int | float] = field(default_factory=dict)


Labels = tuple[tuple[str, str], ...]
"""A series' labels, sorted by name: ``(("region", "eu"),)``."""


@dataclass(frozen=True)
class Sample:
    """One value of an answer, with the labels that tell it apart from its siblings.

    ``value`` is ``None`` for SQL NULL; NaN stays a float NaN. Both mean *no data*.
    """

    labels: Labels
    value: float | None

    @property
    def is_missing(self) -> bool:
        return self.value is None or math.isnan(self.value)

    def label_text(self) -> str:
        """``{region="eu"}`` in PromQL style, or ``""`` for an unlabelled value."""
        if not self.labels:
            return ""
        return "{" + ", ".join(f'{k}="{v}"' for k, v in self.labels) + "}"


@dataclass(frozen=True)
class QueryResult:
    """A backend's answer to one instant query."""

    samples: tuple[Sample, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Series:
    """One series of a range answer: ``points`` are ``(unix seconds, value)`` pairs."""

    labels: Labels
    points: tuple[tuple[float, float | None], ...]


AnyQuery = Query | RangeQuery
Answer = QueryResult | tuple[Series, ...]
"""What a backend returns: an instant answer, or the series of a range query."""


RequestKey = Hashable
"""What a backend sends for a query: two queries with equal keys are one request."""


@runtime_checkable
class Backend(Protocol):
    """A configured connection to one metrics store, shared by every item that names it.

    A backend may also define ``request_key(query) -> RequestKey``: what it really sends for
    ``query`` (see :func:`promql_request_key`; SQL backends use ``sql_request_key``). Queries
    with equal keys are sent once and share the answer. It is optional, not a member of this
    Protocol, so that a backend of another plugin without it still passes ``isinstance``
    (and ``RangeBackend``) checks; such a backend gets :func:`full_request_key`.
    """

    name: str
    type_name: str

    def describe(self) -> str:
        """``prometheus, http://prometheus:9090``: shown in reports; never holds a secret."""
        ...

    def query(self, query: Query) -> QueryResult:
        """Run one instant query; raise BackendError when no trustworthy answer came back."""
        ...

    def graph_url(self, query: Query) -> str | None:
        """A link a person can open to see this query at its time, or None."""
        ...

    def close(self) -> None:
        """Release connections; called once at the end of the session."""
        ...


@runtime_checkable
class RangeBackend(Backend, Protocol):
    """A backend that can also evaluate a query at every step of a period."""

    def query_range(self, query: RangeQuery) -> tuple[Series, ...]: ...


class BackendType(BackendSchema, Protocol):
    """A kind of backend: its name in specs, its settings (see BackendSchema), and how to
    make one."""

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        """Make a backend from settings whose ``${env:...}`` are already resolved.

        Raise BackendConfigError when the resolved settings cannot be used.
        """
        ...


def full_request_key(query: AnyQuery) -> RequestKey:
    """Every part of a query: text, times and every bound value.

    For a backend that does not say what it sends: it can only share answers between
    queries that are the same in every part.
    """
    params = tuple(sorted(query.params.items()))
    if isinstance(query, Query):
        return (query.text, query.at, params)
    return (query.text, query.start, query.end, query.step, params)


def promql_request_key(query: AnyQuery) -> RequestKey:
    """A PromQL request: the resolved text and the times; the bound values are not sent."""
    if isinstance(query, Query):
        return (query.text, query.at)
    return (query.text, query.start, query.end, query.step)


def request_key(backend: Backend, query: AnyQuery) -> RequestKey:
    """``backend.request_key(query)`` where the backend defines it, else the full key."""
    keyer = getattr(backend, "request_key", None)
    return full_request_key(query) if keyer is None else keyer(query)


_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def env_placeholders(text: str) -> list[str]:
    """Names of the ``${env:NAME}`` placeholders in ``text``."""
    return [m.group(1) for m in _ENV_RE.finditer(text)]


def resolve_env(value: Any, backend: str, environ: Mapping[str, str] | None = None, *,
                key: str = "") -> Any:
    """Replace every ``${env:NAME}`` / ``${env:NAME:-default}`` in nested settings.

    Runs when a backend is first used, never at collection, so ``--co`` works offline.
    A missing variable without a default raises BackendConfigError naming it.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            # As in the shell, `:-` also replaces a variable that is set but empty.
            if env.get(name):
                return env[name]
            if default is not None:
                return default
            if name in env:
                return ""
            raise BackendConfigError(
                f"environment variable {name} is not set "
                f"(backend {backend}, setting {key or '?'}); set it or give a default "
                f"with ${{env:{name}:-value}}",
                backend=backend,
            )

        return _ENV_RE.sub(substitute, value)
    if isinstance(value, Mapping):
        # A SettingValues: the resolved values (secrets among them) stay out of every repr.
        return SettingValues({k: resolve_env(v, backend, env, key=f"{key}.{k}" if key else str(k))
                              for k, v in value.items()})
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [resolve_env(v, backend, env, key=key) for v in value]
    return value


__all__ = [
    "Answer",
    "AnyQuery",
    "Backend",
    "BackendType",
    "Labels",
    "Query",
    "QueryResult",
    "RangeBackend",
    "RangeQuery",
    "RequestKey",
    "Sample",
    "Series",
    "env_placeholders",
    "full_request_key",
    "promql_request_key",
    "request_key",
    "resolve_env",
]
