"""The sqlite backend against real database files in tmp_path, and resolve_env."""

from __future__ import annotations

import contextlib
import hashlib
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import Query, Sample, resolve_env
from pytest_rollout_slo.backends.sqlite import SQLITE, SqliteBackend
from pytest_rollout_slo.errors import BackendConfigError, BackendError

AT = 1_790_000_000.0
PARAMS: dict[str, str | int | float] = {
    "at": AT, "window_start": AT - 3600, "window_end": AT, "stage": "beta",
    "feature": "conflict_resolver"}
# About 30 s of work: far beyond a 0.2 s timeout, yet finite if the timeout were broken.
LONG_QUERY = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
              "SELECT count(*) FROM n")


def _create_db(path: Path) -> Path:
    connection = sqlite3.connect(path)
    with connection:
        connection.executescript("""
            CREATE TABLE requests (ts REAL, stage TEXT, region TEXT, outcome TEXT,
                                   duration REAL, note TEXT);
            INSERT INTO requests VALUES
                (1789999000, 'beta', 'eu', 'ok', 1.5, 'fine'),
                (1789999100, 'beta', 'eu', 'error', 2.5, NULL),
                (1789999200, 'beta', 'us', 'ok', 0.5, 'fine'),
                (1789990000, 'beta', 'us', 'ok', 9.0, 'too old'),
                (1789999300, 'ga', 'us', 'ok', 4.0, 'other stage');
        """)
    connection.close()
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return _create_db(tmp_path / "events.db")


@pytest.fixture
def backend(db_path: Path) -> Iterator[SqliteBackend]:
    backend = SqliteBackend("events", db_path, timeout=5.0)
    yield backend
    backend.close()


def _run(backend: SqliteBackend, sql: str,
         params: dict[str, str | int | float] | None = None) -> tuple[Sample, ...]:
    return backend.query(Query(sql, AT, PARAMS if params is None else params)).samples


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- answers -------------------------------------------------------------------------------------


def test_one_numeric_column_one_row(backend: SqliteBackend) -> None:
    assert _run(backend, "SELECT count(*) FROM requests") == (Sample((), 5.0),)


def test_one_numeric_column_several_rows(backend: SqliteBackend) -> None:
    samples = _run(backend, "SELECT duration FROM requests WHERE stage = 'beta' ORDER BY ts")
    assert samples == (Sample((), 9.0), Sample((), 1.5), Sample((), 2.5), Sample((), 0.5))


def test_values_are_floats(backend: SqliteBackend) -> None:
    (sample,) = _run(backend, "SELECT 3")
    assert type(sample.value) is float


def test_label_value_rows_use_the_column_name_as_label(backend: SqliteBackend) -> None:
    samples = _run(backend, "SELECT region, count(*) AS n FROM requests "
                            "WHERE stage = 'beta' GROUP BY region ORDER BY region")
    assert samples == (Sample((("region", "eu"),), 2.0), Sample((("region", "us"),), 2.0))
    assert samples[0].label_text() == '{region="eu"}'


def test_null_is_a_sample_without_value(backend: SqliteBackend) -> None:
    samples = _run(backend, "SELECT max(duration) FROM requests WHERE stage = 'nope'")
    assert samples == (Sample((), None),)
    assert samples[0].is_missing
    assert _run(backend, "SELECT 'eu', NULL") == (Sample((("'eu'", "eu"),), None),)


def test_no_row_is_no_samples(backend: SqliteBackend) -> None:
    assert _run(backend, "SELECT duration FROM requests WHERE stage = 'nope'") == ()


def test_text_value_names_the_row_and_column(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError) as info:
        _run(backend, "SELECT region, note FROM requests WHERE stage = 'beta' ORDER BY ts")
    message = info.value.message
    assert "row 1" in message and "'note'" in message and "'too old'" in message
    assert "not a number" in message
    assert info.value.backend == "events"
    assert info.value.query is not None and "SELECT region, note" in info.value.query


def test_blob_value_is_refused(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError, match="row 1 column 'v' holds bytes"):
        _run(backend, "SELECT x'00ff' AS v")


@pytest.mark.parametrize("sql", ["SELECT 9e999", "SELECT -9e999", "SELECT 'x', -9e999"])
def test_an_infinity_is_refused(backend: SqliteBackend, sql: str) -> None:
    with pytest.raises(BackendError, match=r"holds -?inf, not a finite number; return NULL"):
        _run(backend, sql)


def test_a_number_written_as_text_is_refused(backend: SqliteBackend) -> None:
    # '0.01' compares and sums like a number in SQLite, but a column of text is a schema
    # mistake the gate must show, not read.
    with pytest.raises(BackendError, match=r"holds str '0\.01', not a number"):
        _run(backend, "SELECT '0.01'")


def test_a_huge_text_value_is_shown_short(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError) as info:
        _run(backend, "SELECT printf('%.*c', 100000, 'x')")
    assert len(info.value.message) < 300


sqlite_values = st.one_of(st.none(), st.floats(), st.integers(-2**63, 2**63 - 1),
                          st.text(max_size=5), st.binary(max_size=4), st.booleans())


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.text(max_size=3), sqlite_values), max_size=4))
def test_generated_columns_give_finite_numbers_or_an_error(tmp_path: Path,
                                                           rows: list[tuple[str, object]]) -> None:
    path = tmp_path / "generated.db"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE t (label TEXT, v)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", rows)
    connection.close()
    backend = SqliteBackend("events", path, timeout=5.0)
    try:
        samples = _run(backend, "SELECT label, v FROM t ORDER BY rowid")
    except BackendError as exc:
        assert "not a number" in exc.message or "non-finite" in exc.message
        return
    finally:
        backend.close()
    assert len(samples) == len(rows)
    for sample, (_, stored) in zip(samples, rows, strict=True):
        assert sample.value is None or math.isfinite(sample.value)
        assert isinstance(stored, (int, float, type(None)))


def test_three_columns_lists_the_columns(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError) as info:
        _run(backend, "SELECT stage, region, duration FROM requests")
    assert "3 columns (stage, region, duration)" in info.value.message
    assert "one numeric column, or two: label, value" in info.value.message


def test_sql_syntax_error(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError) as info:
        _run(backend, "SELEC count(*) FROM requests")
    assert "SQLite rejected the query" in info.value.message
    assert "syntax error" in info.value.message


def test_unknown_table(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError, match="no such table: ratings"):
        _run(backend, "SELECT count(*) FROM ratings")


# -- never writes --------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "INSERT INTO requests VALUES (1, 'beta', 'eu', 'ok', 1.0, NULL)",
    "UPDATE requests SET outcome = 'ok'",
    "DELETE FROM requests",
    "CREATE TABLE hacked (x)",
    "DROP TABLE requests",
    "INSERT INTO requests VALUES (1, 'beta', 'eu', 'ok', 1.0, NULL) RETURNING 1",
])
def test_write_statements_are_refused(backend: SqliteBackend, db_path: Path, sql: str) -> None:
    before = _digest(db_path)
    with pytest.raises(BackendError, match="a gate only reads"):
        _run(backend, sql)
    assert _digest(db_path) == before
    assert _run(backend, "SELECT count(*) FROM requests") == (Sample((), 5.0),)


def test_query_only_cannot_be_switched_off_to_write(backend: SqliteBackend,
                                                    db_path: Path) -> None:
    before = _digest(db_path)
    for sql in ("PRAGMA query_only = OFF", "INSERT INTO requests (ts) VALUES (1)"):
        with pytest.raises(BackendError):
            _run(backend, sql)
    assert _digest(db_path) == before


def test_no_file_is_written_through_attach(backend: SqliteBackend, tmp_path: Path) -> None:
    # A gate never writes: not to the events db and not to any other file either.
    other = tmp_path / "other.db"
    for sql in (f"ATTACH DATABASE 'file:{other}?mode=rwc' AS other",
                "PRAGMA query_only = OFF",
                "CREATE TABLE other.t (x)"):
        with contextlib.suppress(BackendError):
            _run(backend, sql)
    assert not other.exists()


def test_missing_database_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    backend = SqliteBackend("events", missing, timeout=5.0)
    with pytest.raises(BackendError, match="database file not found") as info:
        _run(backend, "SELECT 1")
    assert str(missing) in info.value.message
    assert info.value.backend == "events"
    assert not missing.exists()
    backend.close()


# -- parameters ----------------------------------------------------------------------------------


def test_named_parameters_are_bound(backend: SqliteBackend) -> None:
    samples = _run(backend, "SELECT count(*) FROM requests WHERE stage = :stage "
                            "AND ts >= :window_start AND ts < :at")
    assert samples == (Sample((), 3.0),)
    assert _run(backend, "SELECT :window_end - :window_start") == (Sample((), 3600.0),)


def test_unused_parameters_are_fine(backend: SqliteBackend) -> None:
    assert _run(backend, "SELECT 1", {"at": AT, "unused": "x"}) == (Sample((), 1.0),)


def test_missing_window_parameter_hints_at_the_window_variable(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError) as info:
        _run(backend, "SELECT count(*) FROM requests WHERE ts >= :window_start",
             {"at": AT, "stage": "beta"})
    message = info.value.message
    assert "window_start" in message
    assert "need a `window` variable" in message
    assert ":at, :stage" in message


def test_missing_other_parameter_names_it(backend: SqliteBackend) -> None:
    with pytest.raises(BackendError) as info:
        _run(backend, "SELECT count(*) FROM requests WHERE region = :region", {"at": AT})
    assert ":region" in info.value.message
    assert "window" not in info.value.message


# -- timeout -------------------------------------------------------------------------------------


def test_long_query_times_out(db_path: Path) -> None:
    backend = SqliteBackend("events", db_path, timeout=0.2)
    with pytest.raises(BackendError, match="timed out after 200ms") as info:
        _run(backend, LONG_QUERY)
    assert info.value.query == LONG_QUERY
    # The connection stays usable after an interrupted query.
    assert _run(backend, "SELECT count(*) FROM requests") == (Sample((), 5.0),)
    backend.close()


def test_timeout_setting_is_used(db_path: Path, tmp_path: Path) -> None:
    backend = SQLITE.create("events", {"path": "events.db", "timeout": "200ms"}, tmp_path)
    assert isinstance(backend, SqliteBackend)
    assert backend.timeout == 0.2
    with pytest.raises(BackendError, match="timed out"):
        backend.query(Query(LONG_QUERY, AT))
    backend.close()


# -- creation ------------------------------------------------------------------------------------


def test_relative_path_is_resolved_against_the_spec_dir(tmp_path: Path) -> None:
    spec_dir = tmp_path / "slo_specs"
    spec_dir.mkdir()
    (tmp_path / "data").mkdir()
    db = _create_db(tmp_path / "data" / "events.db")
    backend = SQLITE.create("events", {"path": "../data/events.db"}, spec_dir)
    assert isinstance(backend, SqliteBackend)
    assert backend.path == db.resolve()
    assert backend.query(Query("SELECT count(*) FROM requests", AT)).samples == (
        Sample((), 5.0),)
    assert backend.describe() == f"sqlite, {db.resolve()}"
    assert backend.timeout == 30.0
    backend.close()


def test_absolute_path_is_kept(db_path: Path, tmp_path: Path) -> None:
    backend = SQLITE.create("events", {"path": str(db_path)}, tmp_path / "elsewhere")
    assert isinstance(backend, SqliteBackend)
    assert backend.path == db_path.resolve()


def test_path_with_uri_characters(tmp_path: Path) -> None:
    folder = tmp_path / "odd dir #1 ?x=%20"
    folder.mkdir()
    db = _create_db(folder / "events.db")
    backend = SQLITE.create("events", {"path": str(db)}, tmp_path)
    assert backend.query(Query("SELECT count(*) FROM requests", AT)).samples == (
        Sample((), 5.0),)
    backend.close()


def test_bad_timeout_setting(tmp_path: Path) -> None:
    with pytest.raises(BackendConfigError, match="setting timeout"):
        SQLITE.create("events", {"path": "e.db", "timeout": "soon"}, tmp_path)


# -- resolve_env ---------------------------------------------------------------------------------


def test_resolve_env_substitutes_variables() -> None:
    environ = {"DB_DIR": "/data", "NAME": "events"}
    assert resolve_env("${env:DB_DIR}/${env:NAME}.db", "events", environ) == "/data/events.db"


def test_resolve_env_default() -> None:
    assert resolve_env("${env:NOT_SET:-fallback}", "events", {}) == "fallback"
    assert resolve_env("${env:NOT_SET:-}", "events", {}) == ""
    assert resolve_env("${env:SET:-fallback}", "events", {"SET": "real"}) == "real"


def test_resolve_env_default_applies_to_an_empty_variable() -> None:
    # `:-` as in the shell: the default also replaces a variable that is set but empty.
    assert resolve_env("${env:EMPTY:-fallback}", "events", {"EMPTY": ""}) == "fallback"


def test_resolve_env_missing_variable_names_it() -> None:
    with pytest.raises(BackendConfigError) as info:
        resolve_env({"url": "http://x", "basic_auth": {"password": "${env:PROM_PASSWORD}"}},
                    "metrics", {})
    message = info.value.message
    assert "PROM_PASSWORD" in message
    assert "backend metrics" in message
    assert "basic_auth.password" in message
    assert info.value.backend == "metrics"


def test_resolve_env_nested_and_untouched_values() -> None:
    settings = {"path": "${env:P}", "timeout": 5, "headers": {"X-Org": "${env:ORG}"},
                "verify": False, "list": ["${env:P}", "plain"]}
    assert resolve_env(settings, "b", {"P": "x.db", "ORG": "42"}) == {
        "path": "x.db", "timeout": 5, "headers": {"X-Org": "42"}, "verify": False,
        "list": ["x.db", "plain"]}


def test_resolve_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLO_TEST_DB", "from-env.db")
    assert resolve_env("${env:SLO_TEST_DB}", "events") == "from-env.db"


def test_resolve_env_leaves_query_style_placeholders_alone() -> None:
    assert resolve_env("${feature} ${stage}", "b", {"feature": "x"}) == "${feature} ${stage}"


# -- threads -------------------------------------------------------------------------------------


def test_four_threads_query_the_same_backend_at_once(backend: SqliteBackend) -> None:
    barrier = threading.Barrier(4)
    results: dict[int, tuple[Sample, ...]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=5)
            for _ in range(20):
                results[index] = _run(backend, "SELECT count(*) + :n FROM requests",
                                      {"n": index})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == {i: (Sample((), 5.0 + i),) for i in range(4)}


def test_closing_while_a_query_runs_interrupts_it_instead_of_crashing(db_path: Path) -> None:
    # The executor closes backends at the end of a run without waiting for its threads;
    # closing an sqlite3 connection under a running statement used to crash the interpreter.
    backend = SqliteBackend("events", db_path, timeout=60.0)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _run(backend, LONG_QUERY)
        except BaseException as exc:  # what the thread saw, checked below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    while not (backend._connections and backend._connections[0][1].locked()):
        thread.join(0.001)  # until the statement runs
    backend.close()
    thread.join(10)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [BackendError]
    assert "closed at the end of the run" in str(errors[0])
    with pytest.raises(BackendError, match="closed at the end of the run"):
        _run(backend, "SELECT 1")
