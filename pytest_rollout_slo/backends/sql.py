"""The ``sql`` backend: any SQL engine SQLAlchemy reaches, read-only by construction.

A ``url`` (``postgresql+psycopg://gate@db/events``, ``duckdb:///events.duckdb``, ...) picks
the engine and its driver, which the user installs through an extra
(``pytest-rollout-slo[postgres]``, ``[duckdb]``); a missing one is an error naming the extra.
``sqlite:///`` URLs are served by the :mod:`.sqlite` backend, which keeps SQLite's own
guarantees (``mode=ro``, ``query_only``, an authorizer).

Read-only in three layers: every query is checked to be one read-only SELECT in the URL's
dialect, at collection and again before it runs (:mod:`.sqlcheck`); the session is read-only
where the engine has such a mode (:mod:`.sqlengine`) and every transaction is rolled back;
the docs recommend a read-only role. Each query runs under a timeout the engine enforces,
never longer than the run deadline leaves; the pool holds ``max_concurrency`` connections.
Answers are read as every SQL backend reads them (:mod:`.sqlanswer`). SQLAlchemy is imported
only when a backend is created, so collection stays offline and light.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rollout_slo.backends.base import Backend
from pytest_rollout_slo.backends.freshness import (
    SQL_SETTING,
    check_sql_freshness,
    with_sql_freshness,
)
from pytest_rollout_slo.backends.sqlcheck import DIALECTS, read_only_problem
from pytest_rollout_slo.backends.sqlite import SqliteBackend
from pytest_rollout_slo.errors import BackendConfigError
from pytest_rollout_slo.quantity import QuantityError, parse_duration
from pytest_rollout_slo.spec.settings import QueryCheck, Setting, SettingProblem

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 4

EXTRAS = {
    "postgresql": "postgres", "duckdb": "duckdb", "clickhouse": "clickhouse",
    "clickhousedb": "clickhouse", "snowflake": "snowflake", "bigquery": "bigquery",
    "trino": "trino",
}
"""The extra of pytest-rollout-slo that installs each engine's SQLAlchemy driver."""


class SqlType:
    """``type: sql``: a SQLAlchemy ``url``, an optional ``password``, ``timeout``, ``dialect``."""

    name = "sql"
    language = "sql"
    settings: Mapping[str, Setting] = {
        "url": Setting(("string",), required=True, secret=True,
                       help="SQLAlchemy URL, e.g. postgresql+psycopg://gate@db:5432/events or "
                            "duckdb:///events.duckdb (relative to the spec file)"),
        "password": Setting(("string",), secret=True,
                            help="replaces the url's password; use ${env:NAME}"),
        "dialect": Setting(("string",), choices=tuple(sorted(DIALECTS)),
                           help="the SQL dialect of the queries; default: the url's engine "
                                "(needed when the url's scheme comes from ${env:...})"),
        "timeout": Setting(("duration",), help="per query, enforced by the engine; default 30s"),
        "max_concurrency": Setting(("integer",),
                                   help="queries in flight at once, the pool's size; default 4"),
        "freshness": SQL_SETTING,
    }

    def query_check(self, settings: Mapping[str, Any]) -> QueryCheck:
        dialect = DIALECTS[_engine_name(settings)]

        def check(text: str) -> str | None:
            return read_only_problem(text, dialect)

        check_sql_freshness(settings, check)
        return check

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        try:
            timeout = parse_duration(settings.get("timeout", DEFAULT_TIMEOUT))
        except QuantityError as exc:
            raise BackendConfigError(f"setting timeout: {exc}", backend=name) from exc
        concurrency = settings.get("max_concurrency", DEFAULT_CONCURRENCY)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise BackendConfigError("setting max_concurrency: must be an integer >= 1",
                                     backend=name)
        url = str(settings["url"])
        try:
            engine = _engine_name(settings)
        except SettingProblem as exc:
            raise BackendConfigError(f"setting {exc.key}: {exc.message}", backend=name) from exc
        if engine == "sqlite":
            return with_sql_freshness(_sqlite(name, url, timeout, spec_dir), settings)
        # Imported here: SQLAlchemy is an extra, and collection never needs it.
        from pytest_rollout_slo.backends.sqlengine import SqlBackend

        return with_sql_freshness(SqlBackend.connect(
            name, url, settings.get("password"), timeout=timeout, max_concurrency=concurrency,
            dialect=DIALECTS[engine], extra=EXTRAS.get(engine, "sql"), spec_dir=spec_dir),
            settings)


def _engine_name(settings: Mapping[str, Any]) -> str:
    """``postgresql`` for ``postgresql+psycopg://...``: the key of DIALECTS to use."""
    dialect = settings.get("dialect")
    if isinstance(dialect, str) and dialect in DIALECTS:
        return dialect
    url = str(settings.get("url", ""))
    scheme, found, _ = url.partition("://")
    if not found and ":" in url and "${" not in url:
        scheme, found = url.partition(":")[0], ":"
    if "${" in scheme:
        raise SettingProblem("dialect", "the url's engine comes from ${env:...}, so the queries' "
                                        "SQL dialect is unknown at collection; add dialect: "
                                        "postgresql (or duckdb, clickhouse, ...)")
    engine = scheme.partition("+")[0].lower()
    if not found or engine not in DIALECTS:
        raise SettingProblem("url", f"{engine or url[:20]!r} is not an SQL engine this backend "
                                    "knows; the url starts with one of: "
                                    f"{', '.join(sorted(DIALECTS))} (as in "
                                    "postgresql+psycopg://host/db)")
    return engine


def _sqlite(name: str, url: str, timeout: float, spec_dir: Path) -> SqliteBackend:
    # sqlite:///relative.db, sqlite:////absolute.db; query strings are SQLite URI options
    # that could lift mode=ro, so they are refused rather than passed on.
    rest = url.partition("://")[2]
    path_text = rest[1:] if rest.startswith("/") else rest
    if "?" in path_text or not path_text or path_text == ":memory:":
        raise BackendConfigError(
            "setting url: a sqlite url names a database file, as in sqlite:///events.db "
            "(relative to the spec file) or sqlite:////data/events.db; no query options",
            backend=name)
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = spec_dir / path
    return SqliteBackend(name, path.resolve(), timeout)


SQL = SqlType()

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_TIMEOUT", "EXTRAS", "SQL", "SqlType"]
