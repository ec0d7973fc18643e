"""End-to-end tests of the plugin through ``pytester``: specs in, outcomes, text and JUnit out.

Each test writes a small SQLite events database and one or more spec files into
``pytester.path`` and runs pytest on them, asserting exit codes, outcomes, output lines and
the parsed JUnit XML, as SPEC-V1.md states them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import pytest
from specdata import AT, AT_UNIX, ERROR_RATE, QUIET_SKIP

pytest_plugins = ["pytester"]

AT_OPTION = f"--slo-at={AT}"

STAGES = """\
stages:
  internal: {}
  beta:
    variables: {window: 6h}
  ga:
    variables: {window: 24h}
"""

LATENCY = """\
- name: latency_p95
  query: SELECT 0.25
  min: 100ms
  max: 1s
"""

AVAILABILITY = """\
- name: availability
  ratio:
    numerator: >-
      SELECT count(*) FROM req WHERE outcome = 'ok'
      AND ts >= :window_start AND ts < :window_end
    denominator: SELECT count(*) FROM req WHERE ts >= :window_start AND ts < :window_end
  min: 90%
"""

NUMERATOR_QUERY = ("SELECT count(*) FROM req WHERE feature = 'conflict_resolver' AND "
                   "outcome = 'error' AND ts >= :window_start AND ts < :window_end")
DENOMINATOR_QUERY = ("SELECT count(*) FROM req WHERE feature = 'conflict_resolver' "
                     "AND ts >= :window_start AND ts < :window_end")


def make_db(path: Path, traffic: Mapping[str, tuple[int, int]] | None = None) -> Path:
    """Write an events database: per region ``(errors, requests)``, a minute before AT."""
    path.parent.mkdir(parents=True, exist_ok=True)
    traffic = {"eu": (62, 1000)} if traffic is None else traffic
    rows = [(AT_UNIX - 60.0, "conflict_resolver", region, "error" if i < errors else "ok")
            for region, (errors, requests) in traffic.items() for i in range(requests)]
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE req (ts REAL, feature TEXT, region TEXT, outcome TEXT)")
        db.executemany("INSERT INTO req VALUES (?, ?, ?, ?)", rows)
        db.commit()
    return path


def write_spec(pytester: pytest.Pytester, *objectives: str, path: str = "slo_specs/x.yaml",
               db: str = "../events.db", stages: str = STAGES) -> Path:
    """Write a spec file with the ``events`` sqlite backend and the given objectives."""
    body = "".join(textwrap.indent(o, "  ") for o in objectives)
    text = ("version: 1\nservice: conflict-resolver\nbackends:\n  events:\n    type: sqlite\n"
            f"    path: {db}\nvariables:\n  feature: conflict_resolver\n  window: 1h\n"
            f"{stages}objectives:\n{body}")
    target = pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


# Hypothesis's plugin imports hypothesis inside every in-process run; pytester then unloads it
# and the next run rewrites and compiles it again (~1 s a run without bytecode caching).
QUIET = ("-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *QUIET, *args)


def lit(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself."""
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def junit_cases(path: Path) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in ET.parse(path).getroot().iter("testcase")}


def props(case: ET.Element) -> dict[str, str]:
    return {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}


def kind(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


def objective_line(spec: Path, name: str) -> int:
    """The 1-based line of ``- name: <name>`` in ``spec``."""
    lines = spec.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == f"- name: {name}")


# -- verdicts ---------------------------------------------------------------------------


def test_pass_exits_0_with_summary_table(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, ERROR_RATE)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "-v")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    result.stdout.fnmatch_lines([
        lit("slo_specs/x.yaml::error_rate[beta] PASSED") + "*",
        "*= SLO summary =*",
        "objective*stage*value*threshold*verdict",
        "error_rate*beta*1.00%*max 5.00%*PASS",
    ])


def test_summary_table_columns_line_up_with_colour_on(pytester: pytest.Pytester) -> None:
    # Column widths count what is seen, not the colour codes around the verdict; a column is
    # at least its header plus two wide, and no line ends in spaces.
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "--color=yes")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("objective  "))
    red, green, plain = "\x1b[31m\x1b[1m", "\x1b[32m\x1b[1m", "\x1b[0m"
    assert lines[start:start + 4] == [
        "objective    stage    value    threshold          verdict",
        "-----------  -------  -------  -----------------  ---------",
        f"error_rate   beta     6.20%    max 5.00%          {red}FAIL{plain}",
        f"latency_p95  beta     250ms    min 100ms, max 1s  {green}PASS{plain}",
    ]


def test_fail_text_has_the_spec_shape_and_no_traceback(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE)
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines([lit(line) for line in [
        "error_rate[beta] FAILED: 6.20% > max 5.00%",
        f"  numerator 62, denominator 1000 (window 6h, at {AT})",
        f"  backend events (sqlite, {db})",
        f"  numerator query: {NUMERATOR_QUERY}",
        f"  denominator query: {DENOMINATOR_QUERY}",
    ]], consecutive=True)
    result.stdout.fnmatch_lines(["error_rate*beta*6.20%*max 5.00%*FAIL"])
    for traceback_line in ("*def runtest*", "*raise *", "*Traceback*", "E   *"):
        result.stdout.no_fnmatch_line(traceback_line)


@pytest.mark.parametrize("how", ["option", "ini"])
def test_full_trace_shows_the_traceback(pytester: pytest.Pytester, how: str) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE)
    if how == "ini":
        pytester.makeini("[pytest]\nslo_full_trace = true\n")
    args = ["--slo-full-trace"] if how == "option" else []
    result = run(pytester, "--slo-stage=beta", AT_OPTION, *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines([
        "*def runtest(self)*",
        "*raise SloCheckFailed(*",
        "E   *" + lit("error_rate[beta] FAILED: 6.20% > max 5.00%"),
    ])


# -- no data ----------------------------------------------------------------------------


def test_no_data_fail_is_the_default(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {})
    write_spec(pytester, ERROR_RATE)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines([
        lit("error_rate[beta] NO DATA: 0/0 (no traffic in window 6h)"),
        "error_rate*beta*no data*max 5.00%*NO DATA",
    ])
    case = junit_cases(pytester.path / "slo.xml")["error_rate[beta]"]
    assert kind(case) == "failure"
    assert props(case)["slo.verdict"] == "no_data"


def test_no_data_skip_skips_with_the_reason(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {})
    write_spec(pytester, ERROR_RATE.replace("  max: 5%\n", "  max: 5%\n  on_no_data: skip\n"))
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "-rs", "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"skipped": 1}
    reason = "error_rate[beta] NO DATA: 0/0 (no traffic in window 6h)"
    result.stdout.fnmatch_lines(["error_rate*beta*no data*max 5.00%*NO DATA (skip)",
                                 "SKIPPED [[]1[]] *: " + lit(reason)])
    case = junit_cases(pytester.path / "slo.xml")["error_rate[beta]"]
    skipped = case.find("skipped")
    assert skipped is not None
    assert reason in skipped.attrib["message"]


def test_no_data_pass_passes_and_still_says_no_data(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {})
    write_spec(pytester, ERROR_RATE.replace("  max: 5%\n", "  max: 5%\n  on_no_data: pass\n"))
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    result.stdout.fnmatch_lines(["error_rate*beta*no data*max 5.00%*NO DATA (pass)"])
    case = junit_cases(pytester.path / "slo.xml")["error_rate[beta]"]
    assert kind(case) == "passed"
    assert props(case)["slo.verdict"] == "no_data"


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("db", "query", "message"), [
    pytest.param("../missing.db", "SELECT 1", "ERROR: database file not found: *missing.db",
                 id="missing-db"),
    pytest.param("../events.db", "SELEC 1", "ERROR: SQLite rejected the query: *syntax error*",
                 id="sql-syntax"),
    pytest.param("../events.db", "SELECT 'fast'", "ERROR: *'fast'*not a number*",
                 id="text-value"),
    pytest.param("${env:SLO_E2E_MISSING_DB}", "SELECT 1",
                 "ERROR: *environment variable SLO_E2E_MISSING_DB is not set*", id="missing-env"),
])
def test_backend_error_is_an_error_even_with_on_no_data_pass(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        db: str, query: str, message: str) -> None:
    monkeypatch.delenv("SLO_E2E_MISSING_DB", raising=False)
    make_db(pytester.path / "events.db")
    write_spec(pytester, f"- name: error_rate\n  query: {query}\n  max: 5\n  on_no_data: pass\n",
               db=db)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # Not evaluated is not a breach: an error (JUnit <error>), which GitLab counts apart.
    assert result.parseoutcomes() == {"errors": 1}
    result.stdout.fnmatch_lines([lit("error_rate[beta] ") + message,
                                 "error_rate*beta*error*max 5*ERROR"])
    case = junit_cases(pytester.path / "slo.xml")["error_rate[beta]"]
    assert kind(case) == "error"
    assert props(case)["slo.verdict"] == "error"
    # GitLab shows the element's text: the verdict text, with no traceback.
    text = case.findtext("error") or ""
    assert text.startswith("error_rate[beta] ERROR: ") and "Traceback" not in text
    assert "items.py" not in text


# -- several values, bounds, stages ------------------------------------------------------


BY_REGION_QUERY = """\
- name: error_rate
  query: >-
    SELECT region, CAST(sum(outcome = 'error') AS REAL) / count(*) FROM req
    WHERE ts >= :window_start AND ts < :window_end GROUP BY region ORDER BY region
  max: 5%
"""

BY_REGION_RATIO = """\
- name: error_rate
  ratio:
    numerator: >-
      SELECT region, sum(outcome = 'error') FROM req
      WHERE ts >= :window_start AND ts < :window_end GROUP BY region ORDER BY region
    denominator: >-
      SELECT region, count(*) FROM req
      WHERE ts >= :window_start AND ts < :window_end GROUP BY region ORDER BY region
  max: 5%
"""


@pytest.mark.parametrize("objective", [BY_REGION_QUERY, BY_REGION_RATIO], ids=["query", "ratio"])
def test_labelled_rows_fail_listing_each_one_outside(pytester: pytest.Pytester,
                                                     objective: str) -> None:
    make_db(pytester.path / "events.db", {"ap": (20, 1000), "eu": (10, 1000), "us": (80, 1000)})
    write_spec(pytester, objective)
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines([lit("error_rate[beta] FAILED: ") + "*",
                                 '  {region="us"}: 8.00% > max 5.00%*'])
    result.stdout.no_fnmatch_line('*{region="eu"}: *')
    result.stdout.no_fnmatch_line('*{region="ap"}: *')


@pytest.mark.parametrize("objective", [BY_REGION_QUERY, BY_REGION_RATIO], ids=["query", "ratio"])
def test_labelled_rows_all_inside_pass(pytester: pytest.Pytester, objective: str) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000), "us": (30, 1000)})
    write_spec(pytester, objective)
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}


@pytest.mark.parametrize(("value", "outcome", "headline"), [
    ("0.25", "passed", None),
    ("0.1", "passed", None),
    ("1", "passed", None),
    ("0.05", "failed", "latency_p95[beta] FAILED: 50ms < min 100ms"),
    ("2.5", "failed", "latency_p95[beta] FAILED: 2.5s > max 1s"),
])
def test_min_and_max_are_inclusive_bounds(pytester: pytest.Pytester, value: str, outcome: str,
                                          headline: str | None) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, LATENCY.replace("SELECT 0.25", f"SELECT {value}"))
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.parseoutcomes() == {outcome: 1}
    if headline is not None:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([lit(headline)])
    else:
        assert result.ret == pytest.ExitCode.OK


def test_stage_thresholds_override(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (60, 1000)})
    write_spec(pytester, ERROR_RATE.replace("  max: 5%\n",
                                            "  max: 10%\n  thresholds:\n    ga: {max: 2%}\n"))
    beta = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert beta.ret == pytest.ExitCode.OK
    assert beta.parseoutcomes() == {"passed": 1}
    beta.stdout.fnmatch_lines(["error_rate*beta*6.00%*max 10.00%*PASS"])
    ga = run(pytester, "--slo-stage=ga", AT_OPTION)
    assert ga.ret == pytest.ExitCode.TESTS_FAILED
    assert ga.parseoutcomes() == {"failed": 1}
    ga.stdout.fnmatch_lines([lit("error_rate[ga] FAILED: 6.00% > max 2.00%"),
                             lit(f"  numerator 60, denominator 1000 (window 24h, at {AT})")])


def test_objective_of_other_stages_is_not_collected(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, ERROR_RATE, LATENCY + "  stages: [ga]\n")
    beta = run(pytester, "--slo-stage=beta", AT_OPTION, "-v")
    assert beta.parseoutcomes() == {"passed": 1}
    beta.stdout.no_fnmatch_line("*latency_p95*")
    ga = run(pytester, "--slo-stage=ga", "--co", "-q")
    ga.stdout.fnmatch_lines([lit("slo_specs/x.yaml::error_rate[ga]"),
                             lit("slo_specs/x.yaml::latency_p95[ga]")])


# -- exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("objective", "line", "message"), [
    pytest.param(ERROR_RATE + "  max: 6%\n", 26, "*max: duplicate key*", id="duplicate-key"),
    pytest.param(ERROR_RATE + "  maxx: 6%\n", 26, "*maxx: unknown key*max*", id="unknown-key"),
    pytest.param(LATENCY.replace("max: 1s", "max: fast"), 20, "*max: expected *got 'fast'*",
                 id="bad-threshold"),
    pytest.param(LATENCY.replace("SELECT 0.25", "SELECT '${nope}'"), 18,
                 "*query: undefined variable ${nope}*", id="undefined-variable"),
    pytest.param(LATENCY + "  backend: metrics\n", 21, "*backend: unknown backend 'metrics'*",
                 id="unknown-backend"),
    pytest.param(LATENCY.replace("max: 1s", "max: 10ms"), 19, "*min*greater than max*",
                 id="min-above-max"),
    pytest.param(LATENCY.replace("max: 1s", "max: !!float abc"), 20,
                 "objectives?0?.max: explicit YAML tags (!!float) are not accepted*",
                 id="explicit-tag"),
    pytest.param(ERROR_RATE.replace("max: 5%", "max: 5"), 25,
                 "objectives.error_rate.max: a ratio lies in 0..1, so 5 would be 500.00%; "
                 "write 5%*", id="ratio-unit"),
    pytest.param(LATENCY.replace("SELECT 0.25", "SELECT :nope"), 18,
                 "objectives.latency_p95.query: the query uses :nope, which is not bound at "
                 "stage 'internal'; bound: :at, :feature, :service, :stage, :window*",
                 id="unbound-sql-parameter"),
])
def test_spec_error_is_a_collection_error_naming_file_line_and_key(
        pytester: pytest.Pytester, objective: str, line: int, message: str) -> None:
    write_spec(pytester, objective)  # no database: collection must not need one
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting slo_specs/x.yaml*",
                                 f"*slo_specs/x.yaml:{line}: {message}"])
    assert result.parseoutcomes() == {"errors": 1}
    assert "Traceback" not in result.stdout.str()


def test_unknown_stage_is_a_usage_error_listing_the_stages(pytester: pytest.Pytester) -> None:
    write_spec(pytester, ERROR_RATE)
    result = run(pytester, "--slo-stage=prod", AT_OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown stage 'prod'*internal, beta, ga*"])


def test_usage_errors_found_by_xdist_workers_reach_the_controller(
        pytester: pytest.Pytester) -> None:
    # A worker's usage error must not turn into "no tests ran" (exit 5) without a word.
    write_spec(pytester, ERROR_RATE)
    result = pytester.runpytest_subprocess(*QUIET, "-p", "no:benchmark", "-n", "2",
                                           "--slo-stage=prod", AT_OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["ERROR: unknown stage 'prod'*internal, beta, ga*"])


def test_stage_without_objectives_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE + "  stages: [ga]\n")
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stage 'beta' selects no objective*"])


@pytest.mark.parametrize("at", ["yesterday", "2026-11-26T12:00:00", "2026-13-01T00:00:00Z"])
def test_bad_slo_at_is_a_usage_error(pytester: pytest.Pytester, at: str) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={at}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--slo-at '{at}'*"])


def test_no_spec_file_with_a_stage_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok() -> None:\n    pass\n")
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slo-stage=beta: no spec file was collected*"])


# -- collection and selection -----------------------------------------------------------


@pytest.mark.parametrize("broken", [False, True], ids=["valid-spec", "broken-spec"])
def test_dormant_without_a_stage(pytester: pytest.Pytester, broken: bool) -> None:
    write_spec(pytester, ERROR_RATE + ("  max: 6%\n" if broken else ""), db="../missing.db")
    (pytester.path / "slo_specs" / "test_plain.py").write_text(
        "def test_ok() -> None:\n    pass\n", encoding="utf-8")
    result = run(pytester, "-v")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    result.stdout.fnmatch_lines(["slo_specs/test_plain.py::test_ok PASSED*"])
    result.stdout.no_fnmatch_line("*x.yaml*")
    result.stdout.no_fnmatch_line("*SLO summary*")


def test_collect_only_works_without_the_database(pytester: pytest.Pytester) -> None:
    write_spec(pytester, ERROR_RATE, LATENCY, db="../missing.db")
    result = run(pytester, "--slo-stage=beta", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([lit("slo_specs/x.yaml::error_rate[beta]"),
                                 lit("slo_specs/x.yaml::latency_p95[beta]"),
                                 "2 tests collected*"])


def test_keyword_selects_objectives(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "-k", "error_rate")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1, "deselected": 1}
    result.stdout.no_fnmatch_line("*latency_p95*")


def test_last_failed_reruns_only_the_failed_objective(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY)
    first = pytester.runpytest(*QUIET, "--slo-stage=beta", AT_OPTION)
    assert first.parseoutcomes() == {"failed": 1, "passed": 1}
    again = pytester.runpytest(*QUIET, "--slo-stage=beta", AT_OPTION, "--lf", "-v")
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = again.parseoutcomes()
    # pytest versions differ on whether the passing objective is counted as deselected.
    assert outcomes["failed"] == 1 and "passed" not in outcomes
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*",
                                lit("slo_specs/x.yaml::error_rate[beta] FAILED") + "*"])
    again.stdout.no_fnmatch_line("*latency_p95*PASSED*")


def test_without_cacheprovider(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, ERROR_RATE)
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    assert not (pytester.path / ".pytest_cache").exists()


def test_slo_yaml_files_anywhere_are_collected(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, ERROR_RATE, path="deep/gates/api.slo.yaml", db="../../events.db")
    write_spec(pytester, LATENCY, path="web/gate.slo.yml", db="../events.db")
    write_spec(pytester, ERROR_RATE, path="config/settings.yaml", db="../events.db")
    listed = run(pytester, "--slo-stage=beta", "--co", "-q")
    listed.stdout.fnmatch_lines([lit("deep/gates/api.slo.yaml::error_rate[beta]"),
                                 lit("web/gate.slo.yml::latency_p95[beta]"),
                                 "2 tests collected*"])
    listed.stdout.no_fnmatch_line("*settings.yaml*")
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 2}


def test_ini_slo_files_replaces_the_patterns(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, ERROR_RATE)
    write_spec(pytester, ERROR_RATE, path="other.slo.yaml", db="events.db")
    write_spec(pytester, LATENCY, path="gates/y.yaml")
    pytester.makeini("[pytest]\nslo_files =\n    gates/*.yaml\n")
    result = run(pytester, "--slo-stage=beta", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([lit("gates/y.yaml::latency_p95[beta]"), "1 test collected*"])
    result.stdout.no_fnmatch_line("*error_rate*")


AT_PROBE = """\
- name: evaluated_at
  query: SELECT :at
  min: 0
"""


def test_ini_stage_and_time_and_the_options_beat_them(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, AT_PROBE)
    pytester.makeini(f"[pytest]\nslo_stage = beta\nslo_at = {AT}\n")
    from_ini = run(pytester, "--junitxml=ini.xml")
    assert from_ini.ret == pytest.ExitCode.OK
    assert from_ini.parseoutcomes() == {"passed": 1}
    case = junit_cases(pytester.path / "ini.xml")["evaluated_at[beta]"]
    assert (props(case)["slo.stage"], props(case)["slo.at"]) == ("beta", AT)
    assert props(case)["slo.value"] == str(AT_UNIX)
    from_option = run(pytester, "--slo-stage=ga", f"--slo-at={AT_UNIX + 60}",
                      "--junitxml=option.xml")
    assert from_option.ret == pytest.ExitCode.OK
    case = junit_cases(pytester.path / "option.xml")["evaluated_at[ga]"]
    assert (props(case)["slo.stage"], props(case)["slo.at"]) == ("ga", "2026-11-26T12:01:00Z")
    assert props(case)["slo.value"] == str(AT_UNIX + 60)


ONE_TIME = """\
- name: evaluated_at
  query: SELECT :at
  min: 1795694400
  max: 1795694400
- name: window_end_is_at
  ratio:
    numerator: SELECT :window_end
    denominator: SELECT :at
  min: 1
  max: 1
- name: window_start
  query: SELECT :window_start
  min: 1795672800
  max: 1795672800
"""


@pytest.mark.parametrize("at", [AT, str(AT_UNIX), "2026-11-26T13:00:00+01:00", "1795694400.0"])
def test_slo_at_sets_the_one_time_of_every_query(pytester: pytest.Pytester, at: str) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ONE_TIME)
    result = run(pytester, "--slo-stage=beta", f"--slo-at={at}", "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 3}
    cases = junit_cases(pytester.path / "slo.xml")
    assert {name: props(case)["slo.at"] for name, case in cases.items()} == {
        "evaluated_at[beta]": AT, "window_end_is_at[beta]": AT, "window_start[beta]": AT}
    assert props(cases["evaluated_at[beta]"])["slo.value"] == str(AT_UNIX)


# -- JUnit --------------------------------------------------------------------------------


def test_junit_names_properties_and_failure_text(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = junit_cases(pytester.path / "slo.xml")
    assert set(cases) == {"error_rate[beta]", "latency_p95[beta]"}
    failed, passed = cases["error_rate[beta]"], cases["latency_p95[beta]"]
    assert failed.attrib["classname"] == "slo_specs.x.yaml"
    got = props(failed)
    expected = {
        "slo.service": "conflict-resolver", "slo.stage": "beta", "slo.objective": "error_rate",
        "slo.verdict": "fail", "slo.value": "6.20%", "slo.min": "", "slo.max": "5.00%",
        "slo.unit": "percent", "slo.backend": f"events (sqlite, {db})", "slo.window": "6h",
        "slo.at": AT,
    }
    assert {k: got.get(k) for k in expected} == expected
    assert NUMERATOR_QUERY in got["slo.query"]
    assert DENOMINATOR_QUERY in got["slo.query"]
    expected_pass = {
        "slo.objective": "latency_p95", "slo.verdict": "pass", "slo.value": "250ms",
        "slo.min": "100ms", "slo.max": "1s", "slo.unit": "seconds", "slo.query": "SELECT 0.25",
        "slo.window": "6h", "slo.at": AT,
    }
    assert {k: props(passed).get(k) for k in expected_pass} == expected_pass
    assert kind(passed) == "passed"
    failure = failed.find("failure")
    assert failure is not None and failure.text is not None
    assert failure.text.splitlines()[:5] == [
        "error_rate[beta] FAILED: 6.20% > max 5.00%",
        f"  numerator 62, denominator 1000 (window 6h, at {AT})",
        f"  backend events (sqlite, {db})",
        f"  numerator query: {NUMERATOR_QUERY}",
        f"  denominator query: {DENOMINATOR_QUERY}",
    ]
    # The whole terminal failure section, nothing less, is in <failure>.
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("error_rate[beta] FAILED"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(("=", "-", "_")))
    assert failure.text.rstrip("\n") == "\n".join(lines[start:end]).rstrip("\n")


@pytest.mark.parametrize("warning_filter", ["error", "error::pytest.PytestWarning"])
def test_no_warnings_under_w_error(pytester: pytest.Pytester, warning_filter: str) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY, QUIET_SKIP)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "-W", warning_filter,
                 "--junitxml=slo.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1, "passed": 1, "skipped": 1}
    result.stdout.no_fnmatch_line("*warnings summary*")
    result.stdout.no_fnmatch_line("*Warning*")
    cases = junit_cases(pytester.path / "slo.xml")
    assert {name: props(case)["slo.verdict"] for name, case in cases.items()} == {
        "error_rate[beta]": "fail", "latency_p95[beta]": "pass", "quiet_region[beta]": "no_data"}


def test_xdist_gives_the_same_verdicts(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    no_data_pass = QUIET_SKIP.replace("quiet_region", "quiet_pass").replace("skip", "pass")
    write_spec(pytester, ERROR_RATE, LATENCY, QUIET_SKIP, AVAILABILITY, no_data_pass)
    single = run(pytester, "--slo-stage=beta", AT_OPTION, "--junitxml=single.xml")
    assert single.parseoutcomes() == {"failed": 1, "passed": 3, "skipped": 1}
    parallel = pytester.runpytest_subprocess("-p", "no:cacheprovider", *QUIET, "-n", "2",
                                             "--slo-stage=beta", AT_OPTION,
                                             "--junitxml=parallel.xml")
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED
    assert parallel.parseoutcomes() == {"failed": 1, "passed": 3, "skipped": 1}
    parallel.stdout.fnmatch_lines_random([
        "*= SLO summary =*",
        "error_rate*beta*6.20%*max 5.00%*FAIL",
        "latency_p95*beta*250ms*min 100ms, max 1s*PASS",
        "quiet_region*beta*no data*max 5.00%*NO DATA (skip)",
        "quiet_pass*beta*no data*max 5.00%*NO DATA (pass)",
        "availability*beta*93.80%*min 90.00%*PASS",
    ])

    def verdicts(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
        return {name: (kind(case), props(case)) for name, case in junit_cases(path).items()}

    expected = verdicts(pytester.path / "single.xml")
    assert len(expected) == 5
    assert expected["error_rate[beta]"][1]["slo.verdict"] == "fail"
    assert verdicts(pytester.path / "parallel.xml") == expected


# -- reportinfo ---------------------------------------------------------------------------


def test_items_point_at_the_objective_line(pytester: pytest.Pytester) -> None:
    spec = write_spec(pytester, ERROR_RATE, LATENCY, db="../missing.db")
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider", *QUIET,
                                        "--slo-stage=beta")
    assert [item.nodeid for item in items] == ["slo_specs/x.yaml::error_rate[beta]",
                                               "slo_specs/x.yaml::latency_p95[beta]"]
    for item, name in zip(items, ["error_rate", "latency_p95"], strict=True):
        line = objective_line(spec, name) - 1
        path, lineno, description = item.reportinfo()
        assert (Path(path), lineno, description) == (spec, line, f"{name}[beta]")
        assert item.location == ("slo_specs/x.yaml", line, f"{name}[beta]")


@pytest.mark.parametrize(("option", "phrase"), [
    ("--slo-stage=", "--slo-stage is empty"),
    ("--slo-at=nan", "is not a time"),
    ("--slo-at=inf", "is not a time"),
    ("--slo-at=1795694400000", "is in the future"),
])
def test_options_that_would_gate_nothing_or_nowhere_are_usage_errors(
        pytester: pytest.Pytester, option: str, phrase: str) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE)
    args = (option,) if option.startswith("--slo-stage") else ("--slo-stage=beta", option)
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{phrase}*"])


def test_a_bug_in_a_backend_is_an_error_verdict_not_a_traceback(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_rollout_slo import Setting

        class Broken:
            name = "broken"
            settings = {}
            def create(self, name, settings, spec_dir):
                return self
            type_name = "broken"
            def describe(self):
                return "broken"
            def graph_url(self, query):
                return None
            def close(self):
                pass
            def query(self, query):
                raise KeyError("oops")

        def pytest_slo_backend_types():
            return [Broken()]
    """)
    pytester.makefile(".slo.yaml", gate="""
        version: 1
        service: s
        backends: {b: {type: broken}}
        stages: {beta: {}}
        objectives:
          - name: x
            query: anything
            max: 1
    """)
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["x[[]beta] ERROR: internal error (KeyError: 'oops'); run with "
                                 "--slo-full-trace for the traceback"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_full_trace_never_shows_frame_arguments_or_locals(pytester: pytest.Pytester) -> None:
    # A traceback through a backend passes its resolved settings from frame to frame.
    pytester.makeconftest("""
        def fetch(token):
            raise KeyError("oops")

        class Leaky:
            name = type_name = "leaky"
            settings = {}
            def create(self, name, settings, spec_dir):
                self.token = "SECRET-" + "123"
                return self
            def describe(self):
                return "leaky"
            def graph_url(self, query):
                return None
            def close(self):
                pass
            def query(self, query):
                token = self.token
                return fetch(token)

        def pytest_slo_backend_types():
            return [Leaky()]
    """)
    pytester.makefile(".slo.yaml", gate="""
        version: 1
        service: s
        backends: {b: {type: leaky}}
        stages: {beta: {}}
        objectives:
          - name: x
            query: anything
            max: 1
    """)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "--slo-full-trace", "-l")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*KeyError*oops*"])
    result.stdout.fnmatch_lines(["*return fetch(token)*"])  # the source line, not its values
    assert "SECRET-123" not in result.stdout.str() + result.stderr.str()
