"""The sql backend without a server: the read-only check (with Hypothesis), spec errors at
collection, dialects without drivers here (ClickHouse, Snowflake, BigQuery, Trino), missing
drivers, SQLite URLs, and the answer and parameter rules every SQL backend shares."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends import sqlengine
from pytest_rollout_slo.backends.base import BackendType, Query, Sample
from pytest_rollout_slo.backends.registry import BUILTIN_TYPES
from pytest_rollout_slo.backends.sql import SQL
from pytest_rollout_slo.backends.sqlanswer import bind_params, samples_from_rows
from pytest_rollout_slo.backends.sqlcheck import DIALECTS, read_only_problem
from pytest_rollout_slo.backends.sqlite import SqliteBackend
from pytest_rollout_slo.errors import BackendConfigError, BackendError, SpecError
from pytest_rollout_slo.spec.load import load_spec

TYPES: Mapping[str, BackendType] = {t.name: t for t in BUILTIN_TYPES}
AT = 1_795_176_000.0

# -- the read-only check -------------------------------------------------------------------------

ENGINES = ("postgres", "duckdb", "clickhouse", "snowflake", "bigquery", "trino", "sqlite",
           "mysql", "tsql")

READS = [
    "SELECT count(*) FROM events WHERE stage = :stage AND ts >= :window_start",
    "WITH w AS (SELECT * FROM events WHERE ts < :at) SELECT count(*) FROM w",
    "SELECT a FROM t UNION ALL SELECT b FROM u",
    "SELECT region, avg(duration) FROM events GROUP BY region ORDER BY region",
    "SELECT (SELECT max(x) FROM t) / nullif((SELECT count(*) FROM u), 0)",
    "SELECT count(*) FROM t WHERE ts >= :window_start -- a comment; DROP TABLE t",
    "SELECT 1;",
]

WRITES = {
    "DELETE FROM t": "is DELETE",
    "UPDATE t SET x = 1": "is UPDATE",
    "DROP TABLE t": "is DROP",
    "INSERT INTO t SELECT * FROM u": "is INSERT",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d": "contains DELETE",
    "SELECT 1; DROP TABLE t": "holds 2 statements",
    "COPY t TO PROGRAM 'rm -rf /'": "is COPY",
    "CALL refresh_everything()": "is a command",
    "SELECT * INTO t2 FROM t": "SELECT ... INTO",
    "SELECT x FROM t FOR UPDATE": "row lock",
    "SELECT set_config('default_transaction_read_only', 'off', false)": "calls set_config()",
    "SELECT pg_catalog.lo_export(1, '/tmp/x')": "calls lo_export()",
    "SELECT dblink_exec('host=x', 'DELETE FROM t')": "calls dblink_exec()",
    "TRUNCATE t": "TRUNCATE",
    "": "is empty",
    "SELEC 1": "cannot be parsed",
}


@pytest.mark.parametrize("sql", READS)
def test_reads_are_accepted(sql: str) -> None:
    assert read_only_problem(sql, "postgres") is None


@pytest.mark.parametrize(("sql", "phrase"), WRITES.items(), ids=list(WRITES))
def test_anything_else_is_refused_and_named(sql: str, phrase: str) -> None:
    problem = read_only_problem(sql, "postgres")
    assert problem is not None and phrase in problem


@pytest.mark.parametrize("dialect", ENGINES)
def test_every_dialect_reads_the_bound_parameters_and_refuses_writes(dialect: str) -> None:
    assert read_only_problem("SELECT count(*) FROM t WHERE ts >= :window_start "
                             "AND stage = :stage", dialect) is None
    for sql in ("DELETE FROM t", "SELECT 1; DROP TABLE t", "INSERT INTO t SELECT 1",
                "UPDATE t SET x = 1"):
        assert read_only_problem(sql, dialect) is not None, (dialect, sql)


def test_engine_specific_statements() -> None:
    assert read_only_problem("SELECT count() FROM t SETTINGS readonly = 0", "clickhouse")
    assert read_only_problem("SELECT count() FROM t WHERE ts >= :at", "clickhouse") is None
    assert read_only_problem("ATTACH 'other.duckdb'", "duckdb")
    assert read_only_problem("COPY (SELECT 1) TO 'out.csv'", "duckdb")
    assert read_only_problem("PRAGMA query_only = OFF", "sqlite")
    assert read_only_problem("SELECT * FROM read_parquet('e/*.parquet')", "duckdb") is None
    assert read_only_problem("SELECT COUNT(*) FROM `p.d.t`", "bigquery") is None
    assert read_only_problem("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
                             "snowflake")


_WORDS = st.sampled_from(["events", "ts", "stage", "x", "count(*)", "1", "'a'", ":at",
                          "(SELECT 1)", "max(ts)"])
_SELECTS = st.builds(
    lambda what, table, cond: f"SELECT {what} FROM {table} WHERE {cond}",
    _WORDS, st.sampled_from(["events", "t", "s.t"]),
    st.builds(lambda a, op, b: f"{a} {op} {b}", _WORDS, st.sampled_from(["=", "<", ">=", "<>"]),
              _WORDS))
_WRITES = st.sampled_from(["DELETE FROM t", "UPDATE t SET x = 1", "DROP TABLE t",
                           "INSERT INTO t VALUES (1)", "CREATE TABLE u (x int)",
                           "TRUNCATE t", "ALTER TABLE t ADD COLUMN y int"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(select=_SELECTS, dialect=st.sampled_from(ENGINES))
def test_generated_selects_are_read_only(select: str, dialect: str) -> None:
    assert read_only_problem(select, dialect) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(select=_SELECTS, write=_WRITES, shape=st.integers(0, 3),
       dialect=st.sampled_from(("postgres", "duckdb", "sqlite")))
def test_a_write_anywhere_in_the_text_is_refused(select: str, write: str, shape: int,
                                                 dialect: str) -> None:
    text = [f"{select}; {write}", f"{write}; {select}", write,
            f"WITH d AS ({write} RETURNING 1) {select}"][shape]
    assert read_only_problem(text, dialect) is not None


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_gets_an_answer_never_an_exception(text: str) -> None:
    problem = read_only_problem(text, "postgres")
    assert problem is None or isinstance(problem, str)


# -- at collection -------------------------------------------------------------------------------


def _spec(tmp_path: Path, backend: str, query: str) -> Path:
    path = tmp_path / "s.slo.yaml"
    settings = "".join(f"    {line}\n" for line in backend.splitlines())
    path.write_text(
        "version: 1\n"
        "service: s\n"
        "backends:\n"
        "  events:\n"
        f"{settings}"
        "variables: {table: ratings}\n"
        "stages:\n"
        "  beta: {variables: {window: 1h}}\n"
        "  ga: {variables: {table: 't; DROP TABLE t'}}\n"
        "objectives:\n"
        "  - name: one\n"
        f"    query: {query}\n"
        "    max: 10\n", encoding="utf-8")
    return path


PG = "type: sql\nurl: postgresql+psycopg://gate@db/events"


def test_a_destructive_query_is_a_spec_error_naming_its_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, PG, "DELETE FROM ratings"), TYPES)
    assert info.value.line == 13
    assert info.value.key == "objectives.one.query"
    assert "is DELETE" in info.value.message


def test_a_variable_cannot_smuggle_a_statement_in(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, PG, "SELECT count(*) FROM ${table}"), TYPES)
    assert "holds 2 statements" in info.value.message
    assert "resolved at stage 'ga'" in info.value.message


def test_sqlite_specs_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is UPDATE"):
        load_spec(_spec(tmp_path, "type: sqlite\npath: e.db", "UPDATE t SET x = 1"), TYPES)


def test_a_url_from_the_environment_needs_a_dialect(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, "type: sql\nurl: ${env:EVENTS_URL}", "SELECT 1"), TYPES)
    assert info.value.key == "backends.events.dialect"
    assert "add dialect: postgresql" in info.value.message
    spec = load_spec(_spec(tmp_path, "type: sql\nurl: ${env:EVENTS_URL}\ndialect: duckdb",
                           "SELECT 1"), TYPES)
    assert spec.backends["events"].settings["dialect"] == "duckdb"


def test_an_unknown_engine_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, "type: sql\nurl: couchdb://x/y", "SELECT 1"), TYPES)
    assert info.value.key == "backends.events.url" and info.value.line == 6
    assert "'couchdb' is not an SQL engine" in info.value.message


# -- creation without a server -------------------------------------------------------------------


def test_a_missing_driver_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    with pytest.raises(BackendConfigError) as info:
        SQL.create("events", {"url": "postgresql+psycopg://gate@db/events"}, tmp_path)
    assert "pip install 'pytest-rollout-slo[postgres]'" in info.value.message
    with pytest.raises(BackendConfigError, match=r"pytest-rollout-slo\[trino\]"):
        SQL.create("events", {"url": "trino://gate@db:8080/hive"}, tmp_path)
    with pytest.raises(BackendConfigError, match=r"mysql\+nosuchdriver is not installed.*"
                                                 r"\[sql\]' and the engine's SQLAlchemy driver"):
        SQL.create("events", {"url": "mysql+nosuchdriver://gate@db/e"}, tmp_path)


def test_missing_sqlalchemy_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setattr(sqlengine, "sqlalchemy", None)
    with pytest.raises(BackendConfigError, match=r"needs SQLAlchemy.*\[duckdb\]"):
        SQL.create("events", {"url": "duckdb:///e.duckdb"}, tmp_path)


def test_creation_opens_no_connection_and_hides_the_password(tmp_path: Path) -> None:
    backend = SQL.create("events", {"url": "postgresql+psycopg://gate:pw-123@db.invalid/e",
                                    "max_concurrency": 2, "timeout": "2s"}, tmp_path)
    assert isinstance(backend, sqlengine.SqlBackend)
    assert "pw-123" not in backend.describe() and backend.max_concurrency == 2
    assert backend.timeout == 2.0
    backend.close()


@pytest.mark.parametrize(("settings", "phrase"), [
    ({"url": "duckdb:///e.duckdb", "timeout": "soon"}, "setting timeout"),
    ({"url": "duckdb:///e.duckdb", "max_concurrency": 0}, "max_concurrency"),
    ({"url": "sqlite:///e.db?mode=rwc"}, "no query options"),
    ({"url": "sqlite://"}, "names a database file"),
])
def test_bad_settings_at_run_time(tmp_path: Path, settings: dict[str, Any], phrase: str) -> None:
    with pytest.raises(BackendConfigError, match=phrase):
        SQL.create("events", settings, tmp_path)


def test_a_sqlite_url_keeps_sqlites_guarantees(tmp_path: Path) -> None:
    backend = SQL.create("events", {"url": "sqlite:///data/e.db"}, tmp_path)
    assert isinstance(backend, SqliteBackend)  # mode=ro, query_only, the authorizer
    assert backend.path == (tmp_path / "data" / "e.db").resolve()


def test_parameters_compile_to_each_installed_dialects_style() -> None:
    statement = sqlalchemy.text("SELECT count(*) FROM t WHERE ts >= :window_start_ts "
                                "AND stage = :stage")
    for name, marker in (("postgresql", "%(window_start_ts)s"), ("sqlite", "?"),
                         ("mysql", "%s")):
        dialect = sqlalchemy.create_engine(f"{name}://").dialect \
            if name == "sqlite" else _dialect(name)
        assert marker in str(statement.compile(dialect=dialect)), name


def _dialect(name: str) -> sqlalchemy.engine.Dialect:
    module = __import__(f"sqlalchemy.dialects.{name}", fromlist=["dialect"])
    dialect: sqlalchemy.engine.Dialect = module.dialect()
    return dialect


def test_every_known_engine_has_a_dialect() -> None:
    assert set(DIALECTS.values()) >= {"postgres", "duckdb", "clickhouse", "snowflake",
                                      "bigquery", "trino"}


# -- answers and parameters ----------------------------------------------------------------------


def test_answers_decimal_and_integers() -> None:
    samples = samples_from_rows(["v"], [(Decimal("0.1"),), (2**53,), (None,), (3.5,)],
                                backend="b", query="q")
    assert samples == (Sample((), 0.1), Sample((), 2.0**53), Sample((), None), Sample((), 3.5))


@pytest.mark.parametrize(("value", "phrase"), [
    (math.inf, "not a finite number"), (math.nan, "not a finite number"),
    (Decimal("NaN"), "not a finite number"), (Decimal("-Infinity"), "not a finite number"),
    (Decimal("1e400"), "beyond the range"), (10**400, "beyond the range"),
    ("12", "holds str '12'"), (True, "holds bool"), (b"\x00", "holds bytes"),
])
def test_answers_that_are_not_finite_numbers_are_errors(value: object, phrase: str) -> None:
    with pytest.raises(BackendError, match=phrase) as info:
        samples_from_rows(["label", "v"], [("eu", 1), ("us", value)], backend="b", query="q")
    assert "row 2 column 'v'" in info.value.message


def test_timestamp_parameters() -> None:
    bound = bind_params({"at": AT, "window_start": AT - 3600, "stage": "ga"}, "datetime")
    assert bound["at_ts"] == datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    assert bound["window_start_ts"] == datetime(2026, 11, 20, 11, tzinfo=timezone.utc)
    assert "window_end_ts" not in bound and bound["stage"] == "ga"
    assert bind_params({"at": AT}, "text")["at_ts"] == "2026-11-20 12:00:00"


def test_sqlite_binds_timestamp_text_and_refuses_infinity(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "e.db"
    sqlite3.connect(path).close()
    backend = SqliteBackend("e", path, timeout=5)
    assert backend.query(Query("SELECT :at_ts = '2026-11-20 12:00:00'", AT,
                               {"at": AT})).samples == (Sample((), 1.0),)
    with pytest.raises(BackendError, match="not a finite number"):
        backend.query(Query("SELECT 9e999", AT))
    backend.close()


@pytest.mark.parametrize("option", ["", "--slo-record=answers.json"])
def test_a_destructive_query_is_a_collection_error_also_when_recording(
        pytester: pytest.Pytester, option: str) -> None:
    pytester.makefile(".slo.yaml", gates="""
        version: 1
        service: s
        backends:
          events: {type: sql, url: "duckdb:///never-opened.duckdb"}
        stages: {ga: {}}
        objectives:
          - name: wipe
            query: WITH d AS (DELETE FROM ratings RETURNING 1) SELECT count(*) FROM d
            max: 1
        """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slo-stage=ga",
                                *([option] if option else []))
    result.stdout.fnmatch_lines(["*gates.slo.yaml:8: objectives.wipe.query: the query "
                                 "contains DELETE; a gate only reads*"])
    assert result.ret != 0
    assert not (pytester.path / "never-opened.duckdb").exists()
