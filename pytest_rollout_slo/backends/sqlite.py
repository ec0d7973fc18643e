"""The ``sqlite`` backend: SQL over an events database, opened read-only.

A gate must never write, so the file is opened with ``mode=ro`` and ``query_only``, and an
authorizer lets a statement read and nothing else; the spec loader has already refused any
query that is not one read-only SELECT (:mod:`.sqlcheck`). Each query binds ``:at``,
``:window_start``, ``:window_end``, their ``_ts`` text forms and every variable by name. An
answer is read as every SQL backend reads it (:mod:`.sqlanswer`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rollout_slo.backends.base import AnyQuery, Backend, Query, QueryResult, RequestKey
from pytest_rollout_slo.backends.freshness import (
    SQL_SETTING,
    check_sql_freshness,
    with_sql_freshness,
)
from pytest_rollout_slo.backends.sqlanswer import bind_params, samples_from_rows, sql_request_key
from pytest_rollout_slo.backends.sqlcheck import read_only_problem
from pytest_rollout_slo.errors import BackendConfigError, BackendError
from pytest_rollout_slo.quantity import QuantityError, format_duration, parse_duration
from pytest_rollout_slo.spec.settings import QueryCheck, Setting

_DEFAULT_TIMEOUT = 30.0
# How many SQLite VM instructions run between two deadline checks: cheap and fine-grained.
_PROGRESS_STEPS = 10_000


class SqliteType:
    """``type: sqlite``: ``path`` (relative to the spec file) and an optional ``timeout``."""

    name = "sqlite"
    language = "sql"
    settings: Mapping[str, Setting] = {
        "path": Setting(("string",), required=True,
                        help="database file, relative to the spec file"),
        "timeout": Setting(("duration",), help="per query; default 30s"),
        "freshness": SQL_SETTING,
    }

    def query_check(self, settings: Mapping[str, Any]) -> QueryCheck:
        check_sql_freshness(settings, _check_sqlite)
        return _check_sqlite

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        path = Path(str(settings["path"])).expanduser()
        if not path.is_absolute():
            path = spec_dir / path
        try:
            timeout = parse_duration(settings.get("timeout", _DEFAULT_TIMEOUT))
        except QuantityError as exc:
            raise BackendConfigError(f"setting timeout: {exc}", backend=name) from exc
        return with_sql_freshness(SqliteBackend(name, path.resolve(), timeout), settings)


class SqliteBackend:
    type_name = "sqlite"

    def __init__(self, name: str, path: Path, timeout: float) -> None:
        self.name = name
        self.path = path
        self.timeout = timeout
        self.max_concurrency = 4
        self._local = threading.local()
        # Each connection with the lock its thread holds while it runs a statement: the
        # executor closes backends without waiting for its threads, and closing an sqlite3
        # connection that another thread is executing on crashes the interpreter (CPython
        # frees the statement cache under the running statement), so close() interrupts a
        # running statement and waits for its lock first.
        self._connections: list[tuple[sqlite3.Connection, threading.Lock]] = []
        self._lock = threading.Lock()
        self._closed = False

    def describe(self) -> str:
        return f"sqlite, {self.path}"

    def graph_url(self, query: Query) -> str | None:
        return None

    def request_key(self, query: AnyQuery) -> RequestKey:
        return sql_request_key(query)

    def _connection(self) -> tuple[sqlite3.Connection, threading.Lock]:
        # One connection per thread: sqlite3 connections must not be shared across threads.
        found: tuple[sqlite3.Connection, threading.Lock] | None = getattr(
            self._local, "connection", None)
        if found is not None:
            return found
        if not self.path.is_file():
            raise BackendError(f"database file not found: {self.path}", backend=self.name)
        uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            connection.execute("PRAGMA query_only = ON")
            # mode=ro protects the events file only: ATTACH could create another file and a
            # PRAGMA could lift query_only. The authorizer lets a query read and nothing else.
            connection.set_authorizer(_read_only)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open {self.path} read-only: {exc}",
                               backend=self.name) from exc
        found = (connection, threading.Lock())
        with self._lock:
            if self._closed:
                connection.close()
                raise BackendError("the backend was closed at the end of the run",
                                   backend=self.name)
            self._connections.append(found)
        self._local.connection = found
        return found

    def query(self, query: Query) -> QueryResult:
        problem = _check_sqlite(query.text)
        if problem is not None:
            raise BackendError(problem, backend=self.name, query=query.text)
        connection, busy = self._connection()
        with busy:
            if self._closed:
                raise BackendError("the backend was closed at the end of the run",
                                   backend=self.name, query=query.text)
            deadline = time.monotonic() + self.timeout
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline),
                                            _PROGRESS_STEPS)
            try:
                cursor = connection.execute(query.text, bind_params(query.params, "text"))
                rows = cursor.fetchall()
                columns = [d[0] for d in cursor.description or ()]
            except sqlite3.Error as exc:
                message = ("the backend was closed at the end of the run" if self._closed
                           else _error_message(exc, query, self.timeout))
                raise BackendError(message, backend=self.name, query=query.text) from exc
            finally:
                connection.set_progress_handler(None, 0)
        return QueryResult(samples_from_rows(columns, rows, backend=self.name, query=query.text))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection, busy in connections:
            if not busy.acquire(blocking=False):
                connection.interrupt()  # the one sqlite3 call meant for another thread
                busy.acquire()
            try:
                connection.close()
            finally:
                busy.release()


def _check_sqlite(text: str) -> str | None:
    # What sqlglot cannot parse is left to SQLite: the authorizer refuses any write anyway.
    return read_only_problem(text, "sqlite", unparsable=True)


_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


def _shown(value: object) -> str:
    """A value from the database in a message: its repr, never longer than 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read_only(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def _error_message(exc: sqlite3.Error, query: Query, timeout: float) -> str:
    text = str(exc)
    if text == "not authorized":  # raised by _read_only
        return ("the query tried to do more than read (a write, ATTACH or PRAGMA); a gate only "
                "reads, so only SELECT is allowed")
    if text == "interrupted":  # raised by the progress handler at the deadline
        return f"the query timed out after {format_duration(timeout)}"
    if isinstance(exc, sqlite3.ProgrammingError) and "binding parameter" in text:
        bound = ", ".join(f":{name}" for name in sorted(query.params))
        hint = (" (:window_start and :window_end need a `window` variable)"
                if "window_" in text else "")
        return f"{text.rstrip('.')}{hint}; bound here: {bound}"
    if isinstance(exc, sqlite3.OperationalError):
        return f"SQLite rejected the query: {text}"
    return f"SQLite could not run the query: {text}"


SQLITE = SqliteType()
