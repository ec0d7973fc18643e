"""The checks made before an objective is judged, end to end on SQLite: freshness, exposure.

Each test writes the ``req`` events table of test_plugin_e2e.py (its rows a minute before
AT, unless moved) and a spec whose backend carries the check, then asserts outcomes, the
output and the parsed JUnit XML.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from fractions import Fraction
from pathlib import Path

import pytest

# Imported here, before any in-process run: pytester unloads what a run imported, and SciPy's
# extension modules cannot be loaded twice in one process.
import scipy.stats  # noqa: F401
from specdata import AT, ERROR_RATE
from test_exposure import reference_p
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


ROLLOUT = """\
stages:
  beta:
    variables: {window: 6h}
    rollout: {flag: conflict_resolver, percent: 10%}
  ga:
    rollout: {flag: conflict_resolver, all: true}
"""
EXPOSURE = """\
exposure:
  backend: events
  canary: SELECT count(*) FROM req WHERE region = 'canary' AND ts >= :window_start
  all: SELECT count(*) FROM req WHERE ts >= :window_start
  units: requests
"""


def exposure_spec(pytester: pytest.Pytester, exposure: str = EXPOSURE) -> Path:
    spec = write_spec(pytester, ERROR_RATE, ERROR_RATE.replace("error_rate", "errors_again"),
                      stages=ROLLOUT)
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("objectives:\n", f"{exposure}objectives:\n"), encoding="utf-8")
    return spec


def test_a_share_that_matches_the_flag_is_judged(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"canary": (0, 104), "eu": (10, 896)})
    exposure_spec(pytester)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 2}


def test_a_sample_ratio_mismatch_errors_every_objective_of_the_stage(
        pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"canary": (0, 21), "eu": (10, 979)})
    exposure_spec(pytester)
    junit = pytester.path / "junit.xml"
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}", f"--junitxml={junit}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"errors": 2}
    # p: the exact two-sided binomial tail, 5.07e-23 by math.comb (test_exposure.py).
    message = ("the canary carried 2.1% of 1,000 requests; the flag promises 10% (sample ratio "
               "mismatch, p = 5.1e-23): the stage did not get its share, so its objectives "
               "cannot be judged")
    result.stdout.fnmatch_lines([lit(f"error_rate[beta] ERROR: {message}"),
                                 lit(f"errors_again[beta] ERROR: {message}")],
                                consecutive=False)
    assert {name: kind(case) for name, case in junit_cases(junit).items()} == {
        "error_rate[beta]": "error", "errors_again[beta]": "error"}


def test_too_few_units_to_test_is_not_a_pass(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"canary": (0, 4), "eu": (1, 36)})
    exposure_spec(pytester)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}")
    assert result.parseoutcomes() == {"errors": 2}
    result.stdout.fnmatch_lines([lit(
        "error_rate[beta] ERROR: exposure check: 40 requests are too few to tell the canary's "
        "share from the flag's 10% at p < 0.001: about 73 are needed; the stage's objectives "
        "cannot be judged")])


def test_a_stage_without_a_percentage_is_not_checked(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"canary": (0, 21), "eu": (10, 979)})
    exposure_spec(pytester)
    assert run(pytester, "--slo-stage=ga", f"--slo-at={AT}").ret == pytest.ExitCode.OK


@pytest.mark.parametrize(("exposure", "key", "message"), [
    (EXPOSURE.replace("backend: events", "backend: nowhere"), "exposure.backend",
     "unknown backend 'nowhere'"),
    (EXPOSURE.replace("  units: requests\n", "  units: clicks\n"), "exposure.units",
     "got 'clicks'; accepted: users, sessions, requests"),
    (EXPOSURE + "  threshold: 5\n", "exposure.threshold", "must be a p-value above 0"),
    (EXPOSURE.replace(":window_start", ":since"), "exposure.canary",
     "the query uses :since, which is not bound at stage 'beta'"),
    (EXPOSURE.replace("SELECT count(*) FROM req WHERE ts", "DELETE FROM req WHERE ts"),
     "exposure.all", "SELECT"),
])
def test_exposure_mistakes_are_spec_errors(pytester: pytest.Pytester, exposure: str, key: str,
                                           message: str) -> None:
    make_db(pytester.path / "events.db")
    spec = exposure_spec(pytester, exposure)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{spec.name}:*: {key}: *{lit(message)}*"])


def test_the_evidence_carries_both_checks(pytester: pytest.Pytester) -> None:
    # With -n 2 the records cross from the workers as plain values, checks included.
    make_db(pytester.path / "events.db", {"canary": (0, 104), "eu": (10, 896)})
    with_backend_settings(exposure_spec(pytester), FRESHNESS)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={AT}", "-n", "2",
                 "--slo-report-json=evidence.json", "--slo-report-md=summary.md")
    assert result.ret == pytest.ExitCode.OK
    document = json.loads((pytester.path / "evidence.json").read_text(encoding="utf-8"))
    checks = [objective["checks"] for objective in document["objectives"]]
    assert len(checks) == 2 and checks[0] == checks[1]
    exposure = checks[0]["exposure"]
    assert {key: exposure[key] for key in ("canary", "total", "share", "promised", "threshold",
                                           "units", "problem", "rounded")} == {
        "canary": 104, "total": 1000, "share": 0.104, "promised": 0.1, "threshold": 0.001,
        "units": "requests", "problem": "", "rounded": False}
    assert exposure["p_value"] == pytest.approx(reference_p(104, 1000, Fraction(1, 10)))
    assert checks[0]["freshness"] == [{
        "what": "the freshness query", "at": AT, "newest": "2026-11-26T11:59:00Z",
        "age_seconds": 60.0, "max_age_seconds": 300.0, "searched_seconds": None,
        "fresh": True}]
    summary = (pytester.path / "summary.md").read_text(encoding="utf-8")
    p = f"{exposure['p_value']:.2g}"
    assert ("- Exposure at beta: the canary carried 10.4% of 1,000 requests; the flag promises "
            f"10% (exact binomial test, p = {p}, a mismatch below 0.001): as promised"
            in summary)
    assert ("- Freshness: the freshness query: newest sample 2026-11-26T11:59:00Z, 1m before the "
            "evaluation time (bound 5m): fresh" in summary)
