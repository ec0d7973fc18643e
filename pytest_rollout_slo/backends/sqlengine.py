"""An SQL engine through SQLAlchemy Core: the pool, the read-only session, timeouts, errors.

The engine-specific part is small and lives in :data:`_SESSIONS`: how a connection is made
read-only when it opens, what runs at the start of each transaction (PostgreSQL's ``SET
TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout``), and the driver options.
Whatever the engine, a query runs in a transaction that is always rolled back, and a timer
cancels it on the client side (``cancel()``, DuckDB's ``interrupt()``) when the engine's own
timeout did not: a server that stopped answering cannot hold a gate past its timeout.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout_slo.backends.base import AnyQuery, Query, QueryResult, RequestKey
from pytest_rollout_slo.backends.redact import Redactor
from pytest_rollout_slo.backends.sqlanswer import bind_params, samples_from_rows, sql_request_key
from pytest_rollout_slo.backends.sqlcheck import read_only_problem
from pytest_rollout_slo.clock import time_left
from pytest_rollout_slo.errors import BackendConfigError, BackendError
from pytest_rollout_slo.quantity import format_duration

try:
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import Connection, Engine, make_url
except ImportError:  # pragma: no cover - the extra is missing; create() says which
    sqlalchemy = None  # type: ignore[assignment]

# Waiting for a free pooled connection is part of the query's time, never longer than this.
_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class _Session:
    """How one engine is kept read-only and on time."""

    on_connect: tuple[str, ...] = ()
    """Statements run once on each new connection, then committed."""
    begin: Callable[[Connection, float], None] | None = None
    """Runs first in each transaction, with the query's timeout in seconds."""
    connect_args: Callable[[str, float], dict[str, Any]] = field(
        default=lambda _driver, _timeout: {})
    """Driver options for a connection, from the driver's name and the backend's timeout."""
    cancel_grace: float = 0.0
    """How much later than the timeout the client cancels: an engine that enforces the
    timeout itself answers first, with a message that names it."""


def _postgresql_begin(connection: Connection, timeout: float) -> None:
    # The first statement of the transaction, so it applies to the whole of it; SET LOCAL
    # ends with the transaction, so a pooled connection keeps no timeout of a past query.
    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, math.ceil(timeout * 1000))}")


_SESSIONS: dict[str, _Session] = {
    "postgres": _Session(
        on_connect=("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",),
        begin=_postgresql_begin,
        # libpq's connect_timeout, whole seconds; other drivers (pg8000) name it otherwise.
        connect_args=lambda driver, timeout: (
            {"connect_timeout": max(1, math.ceil(min(timeout, _CONNECT_TIMEOUT)))}
            if driver in ("psycopg", "psycopg2") else {}),
        cancel_grace=1.0),
    # DuckDB has no statement timeout: the client-side interrupt at the timeout is the one.
    "duckdb": _Session(connect_args=lambda _driver, _timeout: {"read_only": True}),
    # ClickHouse, Snowflake, BigQuery, Trino, Redshift...: no session mode is set here (no
    # test runs them); the README gives the read-only user settings to use.
}


class SqlBackend:
    """One SQLAlchemy engine whose pool holds ``max_concurrency`` connections."""

    type_name = "sql"

    def __init__(self, name: str, engine: Engine, *, dialect: str, timeout: float,
                 max_concurrency: int, redact: Redactor) -> None:
        self.name = name
        self.dialect = dialect
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self._engine = engine
        self._session = _SESSIONS.get(dialect, _Session())
        self._redact = redact
        # Shown in reports: the url with its password masked, never the password itself.
        self._shown = redact(engine.url.render_as_string(hide_password=True))

    @classmethod
    def connect(cls, name: str, url: str, password: object, *, timeout: float,
                max_concurrency: int, dialect: str, extra: str, spec_dir: Path) -> SqlBackend:
        """A backend for ``url``; BackendConfigError naming the extra when a driver is missing.

        No connection is opened here: the first query opens the first one.
        """
        install = (f"install it with: pip install 'pytest-rollout-slo[{extra}]'" if extra != "sql"
                   else "install SQLAlchemy with pip install 'pytest-rollout-slo[sql]' and the "
                        "engine's SQLAlchemy driver")
        if sqlalchemy is None:
            raise BackendConfigError(f"the sql backend needs SQLAlchemy, which is not "
                                     f"installed; {install}", backend=name)
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise BackendConfigError("setting url: not a SQLAlchemy URL "
                                     "(dialect+driver://user:password@host:port/database)",
                                     backend=name) from exc
        if isinstance(password, str):
            parsed = parsed.set(password=password)
        secrets = [parsed.password] if isinstance(parsed.password, str) else []
        redact = Redactor(secrets)
        if dialect == "duckdb" and parsed.database not in (None, "", ":memory:"):
            database = Path(parsed.database).expanduser()
            if not database.is_absolute():
                parsed = parsed.set(database=str((spec_dir / database).resolve()))
        session = _SESSIONS.get(dialect, _Session())
        try:
            engine = sqlalchemy.create_engine(
                parsed, poolclass=sqlalchemy.pool.QueuePool, pool_size=max_concurrency,
                max_overflow=0, pool_timeout=min(timeout, _CONNECT_TIMEOUT),
                pool_pre_ping=True,
                connect_args=session.connect_args(parsed.get_driver_name(), timeout))
        except (ImportError, sa_exc.NoSuchModuleError) as exc:
            raise BackendConfigError(
                f"the driver for {parsed.drivername} is not installed ({redact(str(exc))}); "
                f"{install}", backend=name) from exc
        except sa_exc.ArgumentError as exc:
            raise BackendConfigError(f"setting url: {redact(str(exc))}", backend=name) from exc
        if session.on_connect:
            event.listen(engine, "connect", _run_on_connect(session.on_connect))
        return cls(name, engine, dialect=dialect, timeout=timeout,
                   max_concurrency=max_concurrency, redact=redact)

    def describe(self) -> str:
        return f"sql, {self._shown}"

    def graph_url(self, query: Query) -> str | None:
        return None

    def request_key(self, query: AnyQuery) -> RequestKey:
        return sql_request_key(query)

    def query(self, query: Query) -> QueryResult:
        problem = read_only_problem(query.text, self.dialect)
        if problem is not None:
            raise BackendError(problem, backend=self.name, query=query.text)
        timeout = self._time_allowed(query)
        params = bind_params(query.params, "datetime")
        try:
            with self._engine.connect() as connection:
                try:
                    if self._session.begin is not None:
                        self._session.begin(connection, timeout)
                    with _cancel_after(connection, timeout + self._session.cancel_grace):
                        result = connection.execute(sqlalchemy.text(query.text), params)
                        columns = list(result.keys())
                        rows = result.fetchall()
                finally:
                    # Always, also after a read: nothing a gate did may be committed. A
                    # broken connection cannot roll back; the pool discards it on return.
                    with contextlib.suppress(sa_exc.SQLAlchemyError):
                        connection.rollback()
        except sa_exc.SQLAlchemyError as exc:
            raise BackendError(self._message(exc, query, timeout), backend=self.name,
                               query=query.text) from exc
        return QueryResult(samples_from_rows(columns, rows, backend=self.name, query=query.text))

    def _time_allowed(self, query: Query) -> float:
        left = time_left()
        if left is None:
            return self.timeout
        if left <= 0:
            raise BackendError("the run deadline passed before the query started",
                               backend=self.name, query=query.text)
        return min(self.timeout, left)

    def _message(self, exc: sa_exc.SQLAlchemyError, query: Query, timeout: float) -> str:
        orig = getattr(exc, "orig", None)
        text = self._redact(_first_lines(str(orig) if orig is not None else str(exc)))
        if isinstance(exc, sa_exc.TimeoutError):
            return (f"no connection of the pool ({self.max_concurrency}) came free within "
                    f"{format_duration(min(timeout, _CONNECT_TIMEOUT))}")
        if _is_timeout(orig):
            return f"the query timed out after {format_duration(timeout)} ({text})"
        if isinstance(exc, sa_exc.StatementError) and "bind parameter" in text:
            bound = ", ".join(f":{name}" for name in sorted(bind_params(query.params,
                                                                        "datetime")))
            hint = (" (:window_start and :window_end need a `window` variable)"
                    if "window_" in text else "")
            return f"{text.rstrip('.')}{hint}; bound here: {bound}"
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return f"cannot reach {self._shown}: {text}"
        return f"{self._engine.dialect.name} rejected the query: {text}"

    def close(self) -> None:
        self._engine.dispose()


def _run_on_connect(statements: tuple[str, ...]) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        dbapi_connection.commit()

    return on_connect


@contextlib.contextmanager
def _cancel_after(connection: Connection, seconds: float) -> Iterator[None]:
    """Cancel the running statement from another thread if it is still running then."""
    raw = connection.connection.dbapi_connection
    cancel = getattr(raw, "cancel", None) or getattr(raw, "interrupt", None)
    if cancel is None:
        yield
        return
    timer = threading.Timer(seconds, _quietly(cancel))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _quietly(call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        # The statement may have ended and the connection closed in the meantime.
        with contextlib.suppress(Exception):
            call()

    return run


def _is_timeout(orig: object) -> bool:
    # 57014 query_canceled: statement_timeout, or the cancel sent at the timeout; DuckDB's
    # interrupt raises InterruptException.
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code == "57014" or type(orig).__name__ in ("InterruptException", "QueryCanceled")


def _first_lines(text: str, limit: int = 3) -> str:
    # SQLAlchemy appends "[SQL: ...]" and a background link; the engine's message comes first.
    lines = [line for line in text.strip().splitlines() if line.strip()]
    kept = [line for line in lines[:limit] if not line.startswith(("[SQL:", "[parameters:",
                                                                   "(Background on"))]
    return " ".join(line.strip() for line in kept) or text.strip()


__all__ = ["SqlBackend"]

