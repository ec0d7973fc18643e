"""The sql backend against a real PostgreSQL (a throwaway cluster) and a DuckDB file.

Both hold the quickstart's simulated events (``simulate.write_sql``). The quickstart's spec,
pointed at each engine, must give the verdicts and values it gives on SQLite; no destructive
query may change a row, whichever read-only layer stops it; timeouts, an outage, a wrong
password and odd answers become error verdicts that say what happened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Imported before pytester's in-process runs, which would otherwise import (and unload)
# the drivers and dialects once per run (about 2 s each).
import duckdb_engine  # noqa: F401
import hypothesis  # noqa: F401  (its pytest plugin would be rewritten again in every run)
import psycopg  # noqa: F401
import pytest
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
import sqlglot
from pgserver import ADMIN, GATE, PostgresCluster

from pytest_rollout_slo.backends import sqlengine
from pytest_rollout_slo.backends.base import Query, Sample
from pytest_rollout_slo.backends.sql import SQL
from pytest_rollout_slo.backends.sqlengine import SqlBackend
from pytest_rollout_slo.clock import deadline_at
from pytest_rollout_slo.errors import BackendError

for _dialect in ("postgres", "duckdb", "sqlite"):
    sqlglot.Dialect.get_or_raise(_dialect)

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
AT = 1_795_176_000.0  # the quickstart's evaluation time, 2026-11-20T12:00:00Z
DAY = 86400.0
PARAMS: dict[str, str | int | float] = {"at": AT, "window_start": AT - DAY, "window_end": AT,
                                        "stage": "ga", "window": DAY}
SQLITE_BACKEND = ("    type: sqlite\n"
                  "    path: events.db          # built by conftest.py on the first run\n")


def _backend(url: str, tmp_path: Path | None = None, **settings: Any) -> SqlBackend:
    backend = SQL.create("events", {"url": url, **settings}, tmp_path or Path.cwd())
    assert isinstance(backend, SqlBackend)
    return backend


@pytest.fixture
def pg(postgres_cluster: PostgresCluster) -> Iterator[SqlBackend]:
    backend = _backend(postgres_cluster.url(), timeout="5s")
    yield backend
    backend.close()


@pytest.fixture
def sentinel(postgres_cluster: PostgresCluster) -> Iterator[None]:
    """A table with one row that every destructive query below aims at."""
    postgres_cluster.admin_sql("DROP TABLE IF EXISTS sentinel",
                               "CREATE TABLE sentinel (id integer PRIMARY KEY, note text)",
                               "INSERT INTO sentinel VALUES (1, 'survives')",
                               f"GRANT SELECT ON sentinel TO {GATE[0]}")
    yield
    backend = _backend(postgres_cluster.url(ADMIN))
    try:
        rows = backend.query(Query("SELECT count(*) FROM sentinel WHERE note = 'survives'",
                                   AT)).samples
        assert rows == (Sample((), 1.0),), "a destructive query changed the sentinel row"
        assert backend.query(Query("SELECT count(*) FROM pg_tables WHERE tablename = "
                                   "'sentinel_copy'", AT)).samples == (Sample((), 0.0),)
    finally:
        backend.close()


def _run(backend: SqlBackend, sql: str,
         params: dict[str, str | int | float] | None = None) -> tuple[Sample, ...]:
    return backend.query(Query(sql, AT, PARAMS if params is None else params)).samples


# -- the quickstart on each engine ---------------------------------------------------------------


def _quickstart_records(pytester: pytest.Pytester, stage: str, backend_yaml: str
                        ) -> dict[str, tuple[str, float | None]]:
    spec = (QUICKSTART / "rollout.slo.yaml").read_text(encoding="utf-8")
    assert SQLITE_BACKEND in spec
    if backend_yaml:
        spec = spec.replace(SQLITE_BACKEND, backend_yaml)
        # DuckDB's `/` divides as floats; `//` is its integer division, SQLite's `/`.
        if "duckdb" in backend_yaml:
            spec = spec.replace("/ 100 - 1", "// 100 - 1")
    pytester.path.joinpath("rollout.slo.yaml").write_text(spec, encoding="utf-8")
    pytester.path.joinpath("pytest.ini").write_text(
        (QUICKSTART / "pytest.ini").read_text(encoding="utf-8"), encoding="utf-8")
    report = pytester.path / f"{stage}.json"
    pytester.runpytest("-p", "no:cacheprovider", "-q", f"--slo-stage={stage}",
                       f"--slo-report-json={report}", "rollout.slo.yaml")
    records = json.loads(report.read_text(encoding="utf-8"))["objectives"]
    return {r["objective"]: (r["verdict"], r["value"]) for r in records}


@pytest.mark.parametrize("stage", ["internal", "beta", "ga"])
def test_the_quickstart_gives_the_same_verdicts_and_values_on_every_engine(
        pytester: pytest.Pytester, events_db: Path, postgres_cluster: PostgresCluster,
        events_duckdb: Path, stage: str) -> None:
    (pytester.path / "events.db").write_bytes(events_db.read_bytes())
    on_sqlite = _quickstart_records(pytester, stage, "")
    # Every gated objective has a value; a tracked one may have none (reported, not judged).
    assert on_sqlite and all(value is not None for verdict, value in on_sqlite.values()
                             if verdict != "tracked")
    on_postgres = _quickstart_records(
        pytester, stage, f"    type: sql\n    url: {postgres_cluster.url()}\n")
    on_duckdb = _quickstart_records(
        pytester, stage, f"    type: sql\n    url: duckdb:///{events_duckdb}\n")
    assert on_postgres == on_sqlite
    assert on_duckdb == on_sqlite
    if stage == "ga":  # the quickstart's failing gate fails everywhere
        assert on_postgres["ai_adoption"][0] == "fail"


def test_the_postgresql_example_gates_the_product_metrics_as_sqlite_does(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, events_db: Path,
        postgres_cluster: PostgresCluster) -> None:
    (pytester.path / "events.db").write_bytes(events_db.read_bytes())
    on_sqlite = _quickstart_records(pytester, "ga", "")
    example = QUICKSTART.parent / "postgres"
    target = pytester.mkdir("postgres")
    for name in ("product.slo.yaml", "pytest.ini"):
        (target / name).write_bytes((example / name).read_bytes())
    monkeypatch.setenv("EVENTS_PGPORT", str(postgres_cluster.port))
    monkeypatch.setenv("EVENTS_PGPASSWORD", GATE[1])
    report = pytester.path / "product.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "--slo-stage=ga",
                                f"--slo-report-json={report}", str(target))
    result.assert_outcomes(passed=3, failed=1)
    records = json.loads(report.read_text(encoding="utf-8"))["objectives"]
    on_postgres = {r["objective"]: (r["verdict"], r["value"]) for r in records}
    assert set(on_postgres) == {"positive_ratings", "ai_adoption", "positive_ratings_target",
                                "successful_resolutions"}
    assert on_postgres == {name: on_sqlite[name] for name in on_postgres}
    assert all(r["backend"].startswith("events (sql, postgresql+psycopg://***@127.0.0.1:")
               for r in records)


def test_a_timeout_is_an_error_verdict_with_the_engines_message(
        pytester: pytest.Pytester, postgres_cluster: PostgresCluster) -> None:
    pytester.makefile(".slo.yaml", rollout=f"""
        version: 1
        service: s
        backends:
          events: {{type: sql, url: "{postgres_cluster.url()}", timeout: 300ms}}
        stages: {{ga: {{}}}}
        objectives:
          - name: slow
            query: SELECT count(*) FROM pg_sleep(3)
            max: 10
        """)
    started = time.monotonic()
    result = pytester.runpytest("-p", "no:cacheprovider", "--slo-stage=ga")
    result.assert_outcomes(errors=1)  # an error verdict errors in setup
    result.stdout.fnmatch_lines(["slow[[]ga[]] ERROR: the query timed out after 300ms "
                                 "(canceling statement due to statement timeout)*"])
    assert time.monotonic() - started < 10
    assert GATE[1] not in result.stdout.str()


def test_the_gate_password_never_shows_in_a_run(pytester: pytest.Pytester,
                                                monkeypatch: pytest.MonkeyPatch,
                                                postgres_cluster: PostgresCluster) -> None:
    pytester.makefile(".slo.yaml", rollout=f"""
        version: 1
        service: s
        backends:
          events:
            type: sql
            url: postgresql+psycopg://{GATE[0]}@127.0.0.1:{postgres_cluster.port}/events
            password: ${{env:SLO_PG_PASSWORD}}
        stages: {{ga: {{}}}}
        objectives:
          - name: wrong_password
            query: SELECT count(*) FROM ratings
            max: 10
        """)
    wrong = "not-the-password-917"
    monkeypatch.setenv("SLO_PG_PASSWORD", wrong)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slo-stage=ga", "-rA")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "password authentication failed" in output
    assert wrong not in output and GATE[1] not in output
    assert "postgresql+psycopg://***@127.0.0.1" in output


# -- never writes: PostgreSQL --------------------------------------------------------------------

DESTRUCTIVE = [
    "DELETE FROM sentinel",
    "UPDATE sentinel SET note = 'gone'",
    "DROP TABLE sentinel",
    "INSERT INTO sentinel SELECT 2, 'added'",
    "WITH d AS (DELETE FROM sentinel RETURNING id) SELECT count(*) FROM d",
    "SELECT 1; DROP TABLE sentinel",
    "COPY sentinel TO PROGRAM 'touch /tmp/slo-copy-to-program'",
    "SELECT * INTO sentinel_copy FROM sentinel",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/slo-lo-export')",
    "TRUNCATE sentinel",
    "CALL nothing()",
    "SELECT id FROM sentinel FOR UPDATE",
]


@pytest.mark.usefixtures("sentinel")
@pytest.mark.parametrize("sql", DESTRUCTIVE)
def test_destructive_queries_are_refused_before_they_reach_postgresql(pg: SqlBackend,
                                                                      sql: str) -> None:
    with pytest.raises(BackendError, match=r"gate only reads|statements|SELECT") as info:
        _run(pg, sql)
    assert "rejected the query" not in info.value.message  # refused here, not by the server


@pytest.mark.usefixtures("sentinel")
@pytest.mark.parametrize("sql", [
    "DELETE FROM sentinel", "UPDATE sentinel SET note = 'gone'", "DROP TABLE sentinel",
    "INSERT INTO sentinel SELECT 2, 'added'",
    "WITH d AS (DELETE FROM sentinel RETURNING id) SELECT count(*) FROM d",
    "SELECT * INTO sentinel_copy FROM sentinel", "SELECT 1; DROP TABLE sentinel",
    "SELECT nextval('sentinel_seq')",
])
def test_the_read_only_transaction_stops_writes_the_check_would_have_refused(
        postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch, sql: str) -> None:
    # The second layer alone, as the superuser, whom no grant restrains.
    postgres_cluster.admin_sql("CREATE SEQUENCE IF NOT EXISTS sentinel_seq")
    monkeypatch.setattr(sqlengine, "read_only_problem", lambda *_args, **_kw: None)
    backend = _backend(postgres_cluster.url(ADMIN))
    try:
        with pytest.raises(BackendError) as info:
            _run(backend, sql)
        assert ("read-only transaction" in info.value.message
                or "multiple commands" in info.value.message), info.value.message
    finally:
        backend.close()


@pytest.mark.usefixtures("sentinel")
def test_every_transaction_is_rolled_back_even_one_that_wrote(
        postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # The last layer alone: no query check, no read-only session, the superuser; the insert
    # runs and answers, and is gone after, as nothing a gate runs is ever committed.
    monkeypatch.setattr(sqlengine, "read_only_problem", lambda *_args, **_kw: None)
    monkeypatch.setitem(sqlengine._SESSIONS, "postgres", dataclasses.replace(
        sqlengine._SESSIONS["postgres"], on_connect=(), begin=None))
    backend = _backend(postgres_cluster.url(ADMIN))
    try:
        assert _run(backend, "INSERT INTO sentinel VALUES (2, 'added') RETURNING id") == (
            Sample((), 2.0),)
        assert _run(backend, "SELECT count(*) FROM sentinel") == (Sample((), 1.0),)
    finally:
        backend.close()


@pytest.mark.usefixtures("sentinel")
@pytest.mark.parametrize("sql", [
    "COPY sentinel TO PROGRAM 'touch /tmp/slo-copy-to-program'",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/slo-lo-export')",
])
def test_the_read_only_role_stops_what_a_read_only_transaction_allows(
        pg: SqlBackend, monkeypatch: pytest.MonkeyPatch, sql: str) -> None:
    # The third layer alone: COPY TO and server-file functions pass a read-only transaction.
    monkeypatch.setattr(sqlengine, "read_only_problem", lambda *_args, **_kw: None)
    with pytest.raises(BackendError, match=r"permission denied|must be superuser|read-only"):
        _run(pg, sql)
    assert not Path("/tmp/slo-copy-to-program").exists()
    assert not Path("/tmp/slo-lo-export").exists()


def test_a_pooled_connection_stays_read_only(pg: SqlBackend) -> None:
    for _ in range(3):
        assert _run(pg, "SELECT CASE WHEN current_setting('transaction_read_only') = 'on' "
                        "THEN 1 ELSE 0 END") == (Sample((), 1.0),)


# -- timeouts, outages, credentials --------------------------------------------------------------


def test_a_slow_query_times_out_in_the_engine(postgres_cluster: PostgresCluster) -> None:
    backend = _backend(postgres_cluster.url(), timeout="300ms")
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"timed out after 300ms \(.*statement timeout"):
        _run(backend, "SELECT count(*) FROM pg_sleep(5)")
    assert time.monotonic() - started < 3
    # The connection's next query has its own timeout and runs.
    assert _run(backend, "SELECT 1") == (Sample((), 1.0),)
    backend.close()


def test_the_run_deadline_shortens_the_timeout(pg: SqlBackend) -> None:
    started = time.monotonic()
    with deadline_at(time.monotonic() + 0.4), pytest.raises(BackendError, match="timed out"):
        _run(pg, "SELECT count(*) FROM pg_sleep(5)")
    assert time.monotonic() - started < 3
    with deadline_at(time.monotonic() - 1), pytest.raises(BackendError, match="deadline"):
        _run(pg, "SELECT 1")


def test_a_server_stopped_mid_run_is_an_error_then_recovers(
        postgres_cluster: PostgresCluster) -> None:
    backend = _backend(postgres_cluster.url(), timeout="5s")
    assert _run(backend, "SELECT count(*) FROM ratings WHERE stage = :stage")[0].value
    postgres_cluster.pause()
    try:
        with pytest.raises(BackendError, match="cannot reach") as info:
            _run(backend, "SELECT 1")
        assert GATE[1] not in info.value.message
    finally:
        postgres_cluster.resume()
    assert _run(backend, "SELECT 1") == (Sample((), 1.0),)
    backend.close()


def test_a_wrong_password_is_redacted(postgres_cluster: PostgresCluster) -> None:
    wrong = "wr0ng-Passw0rd"
    backend = _backend(postgres_cluster.url(password=wrong))
    with pytest.raises(BackendError) as info:
        _run(backend, "SELECT 1")
    assert "password authentication failed" in info.value.message
    assert wrong not in info.value.message and wrong not in backend.describe()
    # The whole user part is masked, as every backend masks a url's credentials.
    assert backend.describe() == (f"sql, postgresql+psycopg://***@127.0.0.1:"
                                  f"{postgres_cluster.port}/events")
    backend.close()


def test_the_password_setting_replaces_the_urls(postgres_cluster: PostgresCluster) -> None:
    url = f"postgresql+psycopg://{GATE[0]}@127.0.0.1:{postgres_cluster.port}/events"
    backend = _backend(url, password=GATE[1])
    assert _run(backend, "SELECT 1") == (Sample((), 1.0),)
    assert GATE[1] not in backend.describe()
    backend.close()


def test_the_pool_holds_max_concurrency_connections(postgres_cluster: PostgresCluster) -> None:
    backend = _backend(postgres_cluster.url(), max_concurrency=3)
    assert backend.max_concurrency == 3
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            _run(backend, "SELECT count(*) FROM pg_sleep(1)")
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    # Side by side (about 1 s), not one after another (3 s), with room for a loaded machine.
    assert time.monotonic() - started < 2.5
    assert backend._engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    backend.close()


# -- answers -------------------------------------------------------------------------------------


def _sqlite_count(events_db: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(events_db)
    try:
        return connection.execute(sql, PARAMS).fetchall()
    finally:
        connection.close()


def test_answers_are_read_as_strictly_as_prometheus_answers(pg: SqlBackend,
                                                            events_db: Path) -> None:
    assert _run(pg, "SELECT NULL::integer") == (Sample((), None),)
    assert _run(pg, "SELECT 0.1::numeric") == (Sample((), 0.1),)
    assert _run(pg, "SELECT 9007199254740993::bigint - 1") == (Sample((), 2.0**53),)
    by_stage = "SELECT stage, count(*) FROM ratings GROUP BY stage ORDER BY stage"
    assert _run(pg, by_stage) == tuple(
        Sample((("stage", stage),), float(n)) for stage, n in _sqlite_count(events_db, by_stage))
    for sql, message in (("SELECT 'x'::text", "holds str 'x', not a number"),
                         ("SELECT 'NaN'::float8", "not a finite number"),
                         ("SELECT 'Infinity'::numeric", "not a finite number"),
                         ("SELECT true", "holds bool"),
                         ("SELECT 1, 2, 3", "3 columns")):
        with pytest.raises(BackendError, match=message):
            _run(pg, sql)


def test_timestamp_parameters_compare_with_timestamptz_columns(pg: SqlBackend) -> None:
    numeric = _run(pg, "SELECT count(*) FROM ratings WHERE stage = :stage "
                       "AND ts >= :window_start AND ts < :window_end")
    typed = _run(pg, "SELECT count(*) FROM ratings WHERE stage = :stage "
                     "AND to_timestamp(ts) >= :window_start_ts AND to_timestamp(ts) < :at_ts")
    assert numeric == typed and numeric[0].value


def test_a_missing_parameter_names_it(pg: SqlBackend) -> None:
    with pytest.raises(BackendError, match=r"region.*bound here: :at, :at_ts"):
        _run(pg, "SELECT count(*) FROM ratings WHERE stage = :region", {"at": AT})


# -- DuckDB --------------------------------------------------------------------------------------


@pytest.fixture
def duck(events_duckdb: Path) -> Iterator[SqlBackend]:
    backend = _backend(f"duckdb:///{events_duckdb}", timeout="5s")
    yield backend
    backend.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_duckdb_refuses_every_write_whichever_layer(duck: SqlBackend, events_duckdb: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    before = _digest(events_duckdb)
    statements = ["DELETE FROM ratings", "UPDATE ratings SET thumbs = 'up'", "DROP TABLE ratings",
                  "INSERT INTO ratings SELECT * FROM ratings",
                  f"COPY ratings TO '{tmp_path / 'out.csv'}'",
                  f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
                  "CREATE TABLE x AS SELECT 1", "SELECT 1; DROP TABLE ratings"]
    for sql in statements:
        with pytest.raises(BackendError, match=r"gate only reads|statements"):
            _run(duck, sql)
    monkeypatch.setattr(sqlengine, "read_only_problem", lambda *_args, **_kw: None)
    for sql in statements[:4] + statements[6:7]:
        with pytest.raises(BackendError, match="read-only"):
            _run(duck, sql)
    assert _digest(events_duckdb) == before
    assert list(tmp_path.iterdir()) == []


GA_RATINGS = ("SELECT count(*) FROM ratings WHERE stage = :stage AND ts >= :window_start "
              "AND ts < :window_end")


def test_duckdb_timeout_interrupts_the_query(events_duckdb: Path, events_db: Path) -> None:
    backend = _backend(f"duckdb:///{events_duckdb}", timeout="200ms")
    started = time.monotonic()
    with pytest.raises(BackendError, match="timed out"):
        _run(backend, "SELECT count(*) FROM range(100000000000) a, range(100) b")
    assert time.monotonic() - started < 5
    assert _run(backend, GA_RATINGS) == (Sample((), _sqlite_count(events_db, GA_RATINGS)[0][0]),)
    backend.close()


def test_duckdb_relative_path_and_timestamps(events_duckdb: Path, events_db: Path) -> None:
    backend = _backend(f"duckdb:///{events_duckdb.name}", events_duckdb.parent)
    typed = _run(backend, "SELECT count(*) FROM ratings WHERE stage = :stage "
                          "AND to_timestamp(ts) >= :window_start_ts AND to_timestamp(ts) < :at_ts")
    assert typed == (Sample((), float(_sqlite_count(events_db, GA_RATINGS)[0][0])),)
    backend.close()
