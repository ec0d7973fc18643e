"""The checks made before an objective is judged, end to end on SQLite: freshness.

Each test writes the ``req`` events table of test_plugin_e2e.py (its rows a minute before
AT, unless moved) and a spec whose backend carries the check, then asserts outcomes, the
output and the parsed JUnit XML.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from specdata import AT, ERROR_RATE
from test_plugin_e2e import junit_cases, kind, lit, make_db, run, write_spec

pytest_plugins = ["pytester"]

FRESHNESS = """\
    freshness:
      query: SELECT max(ts) FROM req WHERE ts <= :at
"""


def with_backend_settings(spec: Path, settings: str) -> Path:
    """``spec`` with ``settings`` added under its ``events`` backend."""
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("    path: ../events.db\n", f"    path: ../events.db\n{settings}"),
                    encoding="utf-8")
    return spec


def move_events(db: Path, seconds: float) -> None:
    """Every event ``seconds`` earlier: the export stopped that much before AT."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("UPDATE req SET ts = ts - ?", (seconds,))
        connection.commit()


def test_recent_events_are_judged(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    with_backend_settings(write_spec(pytester, ERROR_RATE), FRESHNESS)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}


def test_a_stale_events_table_is_an_error_naming_its_age(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    move_events(db, 20 * 60 + 4)  # newest event 21m 4s before AT
    with_backend_settings(write_spec(pytester, ERROR_RATE), FRESHNESS)
    junit = pytester.path / "junit.xml"
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}", f"--junitxml={junit}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"errors": 1}
    message = ("error_rate[beta] ERROR: the newest sample of the freshness query is 21m 4s older "
               f"than the evaluation time {AT} (the bound is max_age 5m); events may have "
               "stopped arriving; remove freshness from the backend to judge without this check")
    result.stdout.fnmatch_lines([lit(message)])
    case = junit_cases(junit)["error_rate[beta]"]
    assert kind(case) == "error"


def test_a_longer_bound_judges_older_events(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    move_events(db, 20 * 60)
    with_backend_settings(write_spec(pytester, ERROR_RATE), FRESHNESS + "      max_age: 30m\n")
    assert run(pytester, "--slo-stage=beta", f"--slo-at={AT}").ret == pytest.ExitCode.OK


def test_an_empty_events_table_is_an_error(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {})
    with_backend_settings(write_spec(pytester, ERROR_RATE), FRESHNESS)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}")
    assert result.parseoutcomes() == {"errors": 1}
    result.stdout.fnmatch_lines(["*the freshness query found no sample at all before the "
                                 f"evaluation time {AT}*"])


def test_a_freshness_query_that_writes_is_a_spec_error(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    spec = with_backend_settings(write_spec(pytester, ERROR_RATE),
                                 "    freshness: {query: DELETE FROM req}\n")
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{spec.relative_to(pytester.path)}:*freshness.query*"])
