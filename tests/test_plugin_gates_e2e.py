"""End-to-end tests of the gates of issue 4 through ``pytester``: warn levels, sustained
objectives, baselines (another cohort, an earlier time), quantiles, burn rates and matrices.

Each test writes a small SQLite events database with deterministic rows and one spec file
under ``slo_specs/``, runs pytest at a fixed ``--slo-at`` and asserts the outcome, the exit
code, the failure text, the parsed JUnit XML and the summary table. Every expected number is
computed here from the rows the test inserted, never copied from the plugin's output.
"""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

AT = "2026-11-26T12:00:00Z"
AT_UNIX = datetime(2026, 11, 26, 12, tzinfo=timezone.utc).timestamp()
AT_OPTION = f"--slo-at={AT}"
HOUR = 3600.0
DAY = 24 * HOUR

# ts, cohort, region, outcome, latency (seconds)
Row = tuple[float, str, str, str, float]

STAGES = """\
stages:
  internal: {}
  beta:
    variables: {window: 6h}
  ga:
    variables: {window: 24h}
"""
BETA_WINDOW = 6 * HOUR

ALL_ERRORS = "SELECT count(*) FROM req WHERE outcome = 'error' AND ts >= :window_start " \
             "AND ts < :window_end"
ALL_REQUESTS = "SELECT count(*) FROM req WHERE ts >= :window_start AND ts < :window_end"

ERROR_RATE = f"""\
- name: error_rate
  ratio:
    numerator: {ALL_ERRORS}
    denominator: {ALL_REQUESTS}
"""

# Hypothesis's plugin would be re-imported by every in-process run (see test_plugin_e2e.py).
QUIET = ("-p", "no:hypothesispytest")


# The outer suite runs under `filterwarnings = error` (pyproject.toml) and an in-process run
# inherits the outer warning filters below its own; reset them where a SloWarning must stay a
# warning, as it does for a user's run.
OWN_FILTERS = pytest.mark.filterwarnings("default")


# -- helpers ------------------------------------------------------------------------------


def traffic(ts: float, total: int, errors: int, *, cohort: str = "canary", region: str = "eu",
            latencies: Sequence[float] = ()) -> list[Row]:
    """``total`` requests at ``ts``, the first ``errors`` of them errors."""
    shown = list(latencies) or [0.1] * total
    assert len(shown) == total
    return [(ts, cohort, region, "error" if i < errors else "ok", shown[i])
            for i in range(total)]


def make_db(pytester: pytest.Pytester, rows: Iterable[Row]) -> Path:
    path = pytester.path / "events.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE req (ts REAL, cohort TEXT, region TEXT, outcome TEXT, "
                   "latency REAL)")
        db.executemany("INSERT INTO req VALUES (?, ?, ?, ?, ?)", list(rows))
        db.commit()
    return path


def write_spec(pytester: pytest.Pytester, *objectives: str, stages: str = STAGES,
               extra: str = "") -> Path:
    body = "".join(textwrap.indent(o, "  ") for o in objectives)
    text = ("version: 1\nservice: conflict-resolver\nbackends:\n  events:\n    type: sqlite\n"
            "    path: ../events.db\nvariables:\n  cohort: canary\n  window: 1h\n"
            f"{stages}{extra}objectives:\n{body}")
    target = pytester.path / "slo_specs" / "x.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *QUIET, "--slo-stage=beta", AT_OPTION,
                              "--junitxml=slo.xml", *args)


def lit(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself."""
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def junit_cases(pytester: pytest.Pytester) -> dict[str, ET.Element]:
    root = ET.parse(pytester.path / "slo.xml").getroot()
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def props(case: ET.Element) -> dict[str, str]:
    return {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}


def kind(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


def system_out(case: ET.Element) -> str:
    out = case.find("system-out")
    return "" if out is None or out.text is None else out.text


def in_window(rows: Iterable[Row], start: float, end: float, *, cohort: str | None = None,
              region: str | None = None) -> list[Row]:
    return [r for r in rows if start <= r[0] < end and cohort in (None, r[1])
            and region in (None, r[2])]


def error_ratio(rows: Iterable[Row], start: float, end: float, *, cohort: str | None = None,
                region: str | None = None) -> float:
    chosen = in_window(rows, start, end, cohort=cohort, region=region)
    return sum(r[3] == "error" for r in chosen) / len(chosen)


def pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def secs(value: float) -> str:
    """Seconds as the spec writes them: ``250ms``, ``1.5s``, ``2s``."""
    if value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:.2f}".rstrip("0").rstrip(".") + "s"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def line_of(spec: Path, start: str) -> int:
    """The 1-based line of the first line of ``spec`` that starts (stripped) with ``start``."""
    lines = spec.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(start))


# -- warn -------------------------------------------------------------------------------------

WARN = ERROR_RATE + "  max: 5%\n  warn: {max: 3%}\n"


def warn_rows(errors: int) -> list[Row]:
    return traffic(AT_UNIX - 60, 1000, errors)


def warn_text(rows: Sequence[Row], word: str = "WARN") -> list[str]:
    """The headline and detail line of a warn verdict, from the rows."""
    ratio = error_ratio(rows, AT_UNIX - BETA_WINDOW, AT_UNIX)
    errors = sum(r[3] == "error" for r in rows)
    return [f"error_rate[beta] {word}: {pct(ratio)} > warn max 3.00% (bounds max 5.00%)",
            f"  numerator {errors}, denominator {len(rows)} (window 6h, at {AT})"]


def test_warn_pass_inside_the_warning_level(pytester: pytest.Pytester) -> None:
    rows = warn_rows(20)
    make_db(pytester, rows)
    write_spec(pytester, WARN)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    ratio = pct(error_ratio(rows, AT_UNIX - BETA_WINDOW, AT_UNIX))
    result.stdout.fnmatch_lines([f"error_rate*beta*{ratio}*max 5.00%*PASS"])
    result.stdout.no_fnmatch_line("*warnings summary*")
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "passed"
    assert (props(case)["slo.verdict"], props(case)["slo.value"]) == ("pass", ratio)
    assert props(case)["slo.warn_max"] == "3.00%"
    assert system_out(case) == ""


@OWN_FILTERS
def test_warn_passes_with_a_slo_warning_and_the_text_everywhere(
        pytester: pytest.Pytester) -> None:
    rows = warn_rows(40)
    make_db(pytester, rows)
    write_spec(pytester, WARN)
    result = run(pytester, "-rP")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1, "warnings": 1}
    headline, detail = warn_text(rows)
    ratio = pct(error_ratio(rows, AT_UNIX - BETA_WINDOW, AT_UNIX))
    result.stdout.fnmatch_lines(["*warnings summary*", "*SloWarning: " + lit(headline)])
    # Printed: the passed item's captured output holds the whole text.
    result.stdout.fnmatch_lines([lit(headline), lit(detail)], consecutive=True)
    result.stdout.fnmatch_lines([f"error_rate*beta*{ratio}*max 5.00%*WARN"])
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "passed"
    got = props(case)
    assert (got["slo.verdict"], got["slo.value"], got["slo.max"], got["slo.warn_max"]) == (
        "warn", ratio, "5.00%", "3.00%")
    out = system_out(case)
    assert headline in out
    assert detail in out


def test_warn_fail_outside_the_bounds(pytester: pytest.Pytester) -> None:
    rows = warn_rows(62)
    make_db(pytester, rows)
    write_spec(pytester, WARN)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    ratio = pct(error_ratio(rows, AT_UNIX - BETA_WINDOW, AT_UNIX))
    result.stdout.fnmatch_lines([
        lit(f"error_rate[beta] FAILED: {ratio} > max 5.00%"),
        lit(f"  numerator 62, denominator 1000 (window 6h, at {AT})"),
    ], consecutive=True)
    result.stdout.fnmatch_lines([f"error_rate*beta*{ratio}*max 5.00%*FAIL"])
    result.stdout.no_fnmatch_line("*SloWarning*")
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "failure"
    assert (props(case)["slo.verdict"], props(case)["slo.value"]) == ("fail", ratio)


@OWN_FILTERS
def test_warn_is_an_error_under_w_error(pytester: pytest.Pytester) -> None:
    make_db(pytester, warn_rows(40))
    write_spec(pytester, WARN)
    result = run(pytester, "-W", "error")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines([
        lit(warn_text(warn_rows(40))[0]),
        "*(a warn verdict: failed because warnings are errors here, -W error)"])
    assert kind(junit_cases(pytester)["error_rate[beta]"]) == "failure"


@OWN_FILTERS
def test_warn_is_no_pytest_warning(pytester: pytest.Pytester) -> None:
    make_db(pytester, warn_rows(40))
    write_spec(pytester, WARN)
    result = run(pytester, "-W", "error::pytest.PytestWarning")
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1, "warnings": 1}
    case = junit_cases(pytester)["error_rate[beta]"]
    assert (kind(case), props(case)["slo.verdict"]) == ("passed", "warn")


@pytest.mark.parametrize("how", ["option", "ini"])
def test_strict_turns_warn_into_a_failure(pytester: pytest.Pytester, how: str) -> None:
    rows = warn_rows(40)
    make_db(pytester, rows)
    write_spec(pytester, WARN)
    if how == "ini":
        pytester.makeini("[pytest]\nslo_strict = true\n")
    result = run(pytester, *(["--slo-strict"] if how == "option" else []))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    headline, detail = warn_text(rows, "FAILED (warning under --slo-strict)")
    result.stdout.fnmatch_lines([lit(headline), lit(detail)], consecutive=True)
    result.stdout.no_fnmatch_line("*SloWarning*")
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "failure"
    failure = case.find("failure")
    assert failure is not None and failure.text is not None
    assert failure.text.splitlines()[:2] == [headline, detail]
    assert props(case)["slo.verdict"] == "warn"


@OWN_FILTERS
def test_warn_level_per_stage(pytester: pytest.Pytester) -> None:
    rows = warn_rows(20)
    make_db(pytester, rows)
    write_spec(pytester, WARN + "  thresholds:\n    ga: {max: 3%, warn: {max: 1%}}\n")
    beta = run(pytester)
    assert beta.ret == pytest.ExitCode.OK
    assert beta.parseoutcomes() == {"passed": 1}
    assert props(junit_cases(pytester)["error_rate[beta]"])["slo.verdict"] == "pass"
    ga = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "--slo-stage=ga", AT_OPTION,
                            "--junitxml=slo.xml")
    assert ga.ret == pytest.ExitCode.OK
    assert ga.parseoutcomes() == {"passed": 1, "warnings": 1}
    ratio = pct(error_ratio(rows, AT_UNIX - DAY, AT_UNIX))
    ga.stdout.fnmatch_lines([f"error_rate*ga*{ratio}*max 3.00%*WARN"])
    case = junit_cases(pytester)["error_rate[ga]"]
    got = props(case)
    assert (got["slo.verdict"], got["slo.max"], got["slo.warn_max"]) == ("warn", "3.00%", "1.00%")
    assert f"error_rate[ga] WARN: {ratio} > warn max 1.00% (bounds max 3.00%)" in system_out(case)


# -- sustained --------------------------------------------------------------------------------

SUSTAINED = ERROR_RATE + "  max: 5%\n  sustained: {over: 2d, step: 1h, max_violations: 2}\n"
HOURLY = """\
stages:
  internal: {}
  beta:
    variables: {window: 1h}
"""
STEP_TIMES = [AT_UNIX - 2 * DAY + k * HOUR for k in range(49)]


def sustained_rows(bad: dict[int, int], missing: Sequence[int] = ()) -> list[Row]:
    """50 requests in the middle of each step's 1h window; 1 error, or ``bad[k]`` at step k."""
    return [row for k, at in enumerate(STEP_TIMES) if k not in missing
            for row in traffic(at - 1800, 50, bad.get(k, 1))]


def points(rows: Sequence[Row]) -> list[tuple[float, float | None]]:
    """The error ratio at each step time over its 1h window; None without traffic."""
    return [(at, error_ratio(rows, at - HOUR, at) if in_window(rows, at - HOUR, at) else None)
            for at in STEP_TIMES]


def worst_lines(rows: Sequence[Row], limit: float) -> list[str]:
    outside = [(at, v) for at, v in points(rows) if v is not None and v > limit]
    outside.sort(key=lambda p: (-(p[1] - limit), p[0]))
    return [f"  {rfc3339(at)}: {pct(v)}" for at, v in outside[:5]]


def test_sustained_pass_within_max_violations(pytester: pytest.Pytester) -> None:
    rows = sustained_rows({7: 4, 30: 6})
    make_db(pytester, rows)
    write_spec(pytester, SUSTAINED, stages=HOURLY)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    outside = sum(1 for _, v in points(rows) if v is not None and v > 0.05)
    assert outside == 2
    value = f"{outside} of {len(STEP_TIMES)} points outside"
    result.stdout.fnmatch_lines([f"error_rate*beta*{value}*max 5.00%, max_violations 2*PASS"])
    got = props(junit_cases(pytester)["error_rate[beta]"])
    assert (got["slo.verdict"], got["slo.value"], got["slo.max_violations"]) == (
        "pass", value, "2")
    assert got["slo.sustained"] == "over 2d, step 1h"


def test_sustained_fail_shows_count_period_and_worst_points(pytester: pytest.Pytester) -> None:
    rows = sustained_rows({5: 4, 20: 6, 40: 5})
    make_db(pytester, rows)
    write_spec(pytester, SUSTAINED, stages=HOURLY)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    outside = sum(1 for _, v in points(rows) if v is not None and v > 0.05)
    total = len(STEP_TIMES)
    headline = (f"error_rate[beta] FAILED: {outside} of {total} points outside max 5.00% "
                "over 2d (step 1h); at most 2 allowed")
    worst = worst_lines(rows, 0.05)
    assert len(worst) == 3
    result.stdout.fnmatch_lines([lit(line) for line in [
        headline, f"  (window 1h, at {AT})", "  worst points:", *worst]], consecutive=True)
    value = f"{outside} of {total} points outside"
    result.stdout.fnmatch_lines([f"error_rate*beta*{value}*max 5.00%, max_violations 2*FAIL"])
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "failure"
    got = props(case)
    assert (got["slo.verdict"], got["slo.value"], got["slo.max_violations"]) == (
        "fail", value, "2")


def test_sustained_points_without_data_count_apart(pytester: pytest.Pytester) -> None:
    rows = sustained_rows({5: 4, 20: 6}, missing=[30])
    make_db(pytester, rows)
    write_spec(pytester, SUSTAINED, stages=HOURLY)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    found = points(rows)
    missing = sum(1 for _, v in found if v is None)
    outside = sum(1 for _, v in found if v is not None and v > 0.05)
    assert (missing, outside) == (1, 2)
    result.stdout.fnmatch_lines([lit(line) for line in [
        f"error_rate[beta] FAILED: {outside + missing} of {len(STEP_TIMES)} points outside "
        "max 5.00% over 2d (step 1h); at most 2 allowed",
        f"  (window 1h, at {AT})",
        "  worst points:",
        *worst_lines(rows, 0.05),
        f"  no data at {missing} point(s), counted as violations (on_no_data: fail)",
    ]], consecutive=True)


def test_sustained_without_data_at_any_point_is_no_data(pytester: pytest.Pytester) -> None:
    make_db(pytester, [])
    write_spec(pytester, SUSTAINED, stages=HOURLY)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines([
        lit(f"error_rate[beta] NO DATA: no data at any of the {len(STEP_TIMES)} points "
            "over 2d (step 1h)"),
        "error_rate*beta*no data*NO DATA",
    ])
    case = junit_cases(pytester)["error_rate[beta]"]
    assert (kind(case), props(case)["slo.verdict"]) == ("failure", "no_data")


# -- baseline: another cohort -------------------------------------------------------------------

COHORT_ERRORS = "SELECT count(*) FROM req WHERE cohort = '${cohort}' AND outcome = 'error' " \
                "AND ts >= :window_start AND ts < :window_end"
COHORT_REQUESTS = "SELECT count(*) FROM req WHERE cohort = '${cohort}' " \
                  "AND ts >= :window_start AND ts < :window_end"
CANARY_VS_CONTROL = f"""\
- name: error_rate
  ratio:
    numerator: {COHORT_ERRORS}
    denominator: {COHORT_REQUESTS}
  baseline:
    variables: {{cohort: control}}
    max_increase: 10%
"""


def cohort_rows(canary_errors: int, control_errors: int | None) -> list[Row]:
    rows = traffic(AT_UNIX - 60, 1000, canary_errors)
    if control_errors is not None:
        rows += traffic(AT_UNIX - 120, 1000, control_errors, cohort="control")
    return rows


def cohort_change(rows: Sequence[Row]) -> tuple[float, float, str]:
    """Canary ratio, control ratio and the change as the text words it."""
    start = AT_UNIX - BETA_WINDOW
    now = error_ratio(rows, start, AT_UNIX, cohort="canary")
    before = error_ratio(rows, start, AT_UNIX, cohort="control")
    word = "up" if now > before else "down"
    delta = abs(now - before)
    change = f"{word} {delta / before * 100:.1f}% ({delta * 100:.2f} points)"
    return now, before, change


def test_baseline_cohort_pass(pytester: pytest.Pytester) -> None:
    rows = cohort_rows(32, 30)
    make_db(pytester, rows)
    write_spec(pytester, CANARY_VS_CONTROL)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    now, before, _ = cohort_change(rows)
    assert (now - before) / before <= 0.10
    value = f"{pct(now)} vs baseline {pct(before)}"
    result.stdout.fnmatch_lines([f"error_rate*beta*{value}*max_increase 10%*PASS"])
    got = props(junit_cases(pytester)["error_rate[beta]"])
    assert (got["slo.verdict"], got["slo.value"], got["slo.max_increase"]) == (
        "pass", value, "10%")
    assert got["slo.baseline"] == "cohort=control"


def test_baseline_cohort_fail_shows_both_values_and_the_change(
        pytester: pytest.Pytester) -> None:
    rows = cohort_rows(43, 30)
    make_db(pytester, rows)
    write_spec(pytester, CANARY_VS_CONTROL)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    now, before, change = cohort_change(rows)
    assert change == "up 43.3% (1.30 points)"  # the numbers the rows were chosen for
    result.stdout.fnmatch_lines([lit(line) for line in [
        f"error_rate[beta] FAILED: {pct(now)} is {change} against the baseline {pct(before)} "
        "(cohort=control); max_increase is 10%",
        f"  (window 6h, at {AT})",
        f"  value: {pct(now)} against baseline {pct(before)} (cohort=control): {change}",
    ]], consecutive=True)
    result.stdout.fnmatch_lines([
        lit("  numerator query: " + COHORT_ERRORS.replace("${cohort}", "canary")),
    ])
    value = f"{pct(now)} vs baseline {pct(before)}"
    result.stdout.fnmatch_lines([f"error_rate*beta*{value}*max_increase 10%*FAIL"])
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "failure"
    got = props(case)
    assert (got["slo.verdict"], got["slo.value"], got["slo.max_increase"]) == (
        "fail", value, "10%")


# -- baseline: an earlier time ------------------------------------------------------------------

MEAN_LATENCY = "SELECT avg(latency) FROM req WHERE ts >= :window_start AND ts < :window_end"
WEEK_OVER_WEEK = f"""\
- name: latency
  query: {MEAN_LATENCY}
  baseline: {{offset: 7d, max_increase: 250ms}}
"""
WEEK = 7 * DAY


def week_rows(now: Sequence[float], before: Sequence[float] | None) -> list[Row]:
    rows = traffic(AT_UNIX - 60, len(now), 0, latencies=now)
    if before is not None:
        rows += traffic(AT_UNIX - WEEK - 60, len(before), 0, latencies=before)
    return rows


def mean_latency(rows: Sequence[Row], at: float) -> float:
    return statistics.fmean(r[4] for r in in_window(rows, at - BETA_WINDOW, at))


def test_baseline_offset_pass_exactly_at_max_increase(pytester: pytest.Pytester) -> None:
    rows = week_rows([1.0, 1.5], [1.0, 1.0])
    make_db(pytester, rows)
    write_spec(pytester, WEEK_OVER_WEEK)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    now, before = mean_latency(rows, AT_UNIX), mean_latency(rows, AT_UNIX - WEEK)
    assert now - before == 0.25  # inclusive: exactly the allowed increase passes
    value = f"{secs(now)} vs baseline {secs(before)}"
    result.stdout.fnmatch_lines([f"latency*beta*{value}*max_increase 250ms*PASS"])
    got = props(junit_cases(pytester)["latency[beta]"])
    assert (got["slo.verdict"], got["slo.value"], got["slo.max_increase"]) == (
        "pass", value, "250ms")
    assert (got["slo.baseline"], got["slo.unit"]) == ("7d earlier", "seconds")


def test_baseline_offset_fail_shows_both_values_and_the_change(
        pytester: pytest.Pytester) -> None:
    rows = week_rows([1.0, 2.0], [1.0, 1.0])
    make_db(pytester, rows)
    write_spec(pytester, WEEK_OVER_WEEK)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    now, before = mean_latency(rows, AT_UNIX), mean_latency(rows, AT_UNIX - WEEK)
    change = f"up {(now - before) / before * 100:.1f}% ({secs(now - before)})"
    result.stdout.fnmatch_lines([lit(line) for line in [
        f"latency[beta] FAILED: {secs(now)} is {change} against the baseline {secs(before)} "
        "(7d earlier); max_increase is 250ms",
        f"  (window 6h, at {AT})",
        f"  value: {secs(now)} against baseline {secs(before)} (7d earlier): {change}",
    ]], consecutive=True)
    value = f"{secs(now)} vs baseline {secs(before)}"
    result.stdout.fnmatch_lines([f"latency*beta*{value}*max_increase 250ms*FAIL"])
    case = junit_cases(pytester)["latency[beta]"]
    assert kind(case) == "failure"
    assert (props(case)["slo.verdict"], props(case)["slo.value"]) == ("fail", value)


THROUGHPUT = f"""\
- name: requests
  query: {ALL_REQUESTS}
  baseline: {{offset: 7d, max_decrease: 20%}}
"""


@pytest.mark.parametrize("now", [85, 70], ids=["pass", "fail"])
def test_baseline_max_decrease(pytester: pytest.Pytester, now: int) -> None:
    rows = [*traffic(AT_UNIX - 60, now, 0), *traffic(AT_UNIX - WEEK - 60, 100, 0)]
    make_db(pytester, rows)
    write_spec(pytester, THROUGHPUT)
    result = run(pytester)
    current = len(in_window(rows, AT_UNIX - BETA_WINDOW, AT_UNIX))
    before = len(in_window(rows, AT_UNIX - WEEK - BETA_WINDOW, AT_UNIX - WEEK))
    drop = (before - current) / before
    change = f"down {drop * 100:.1f}% ({before - current})"
    value = f"{current} vs baseline {before}"
    got = props(junit_cases(pytester)["requests[beta]"])
    assert (got["slo.value"], got["slo.max_decrease"]) == (value, "20%")
    if drop <= 0.20:
        assert result.ret == pytest.ExitCode.OK
        assert result.parseoutcomes() == {"passed": 1}
        assert got["slo.verdict"] == "pass"
        result.stdout.fnmatch_lines([f"requests*beta*{value}*max_decrease 20%*PASS"])
        return
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    assert got["slo.verdict"] == "fail"
    result.stdout.fnmatch_lines([lit(line) for line in [
        f"requests[beta] FAILED: {current} is {change} against the baseline {before} "
        "(7d earlier); max_decrease is 20%",
        f"  (window 6h, at {AT})",
        f"  value: {current} against baseline {before} (7d earlier): {change}",
    ]], consecutive=True)
    result.stdout.fnmatch_lines([f"requests*beta*{value}*max_decrease 20%*FAIL"])


@pytest.mark.parametrize(("objective", "rows", "headline"), [
    pytest.param(CANARY_VS_CONTROL, cohort_rows(0, None),
                 "error_rate[beta] NO DATA: the baseline (cohort=control) has no data*",
                 id="cohort"),
    pytest.param(WEEK_OVER_WEEK, week_rows([0.1], None),
                 "latency[beta] NO DATA: the baseline (7d earlier) has no data*", id="offset"),
])
@pytest.mark.parametrize("on_no_data", ["fail", "pass"])
def test_baseline_without_data_is_no_data_never_a_pass(
        pytester: pytest.Pytester, objective: str, rows: list[Row], headline: str,
        on_no_data: str) -> None:
    make_db(pytester, rows)
    write_spec(pytester, objective + f"  on_no_data: {on_no_data}\n")
    result = run(pytester, "-rP")
    name = objective.split("\n")[0].removeprefix("- name: ") + "[beta]"
    if on_no_data == "fail":
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert result.parseoutcomes() == {"failed": 1}
    else:
        assert result.ret == pytest.ExitCode.OK
        assert result.parseoutcomes() == {"passed": 1}
    result.stdout.fnmatch_lines([lit(headline).replace("[*]", "*"),
                                 f"  on_no_data: {on_no_data}"])
    label = "NO DATA" if on_no_data == "fail" else "NO DATA (pass)"
    result.stdout.fnmatch_lines([f"{name.split('[')[0]}*beta*{label}"])
    case = junit_cases(pytester)[name]
    assert kind(case) == ("failure" if on_no_data == "fail" else "passed")
    assert props(case)["slo.verdict"] == "no_data"


# -- quantile -----------------------------------------------------------------------------------

LATENCY_QUERY = "SELECT latency FROM req WHERE ts >= :window_start AND ts < :window_end"
QUANTILE = f"""\
- name: latency_p95
  quantile:
    q: 0.95
    values: {LATENCY_QUERY}
  max: 1.5s
"""
FAST = [k / 10 for k in range(1, 11)]  # 100ms .. 1s


def p95(rows: Sequence[Row]) -> float:
    latencies = [r[4] for r in in_window(rows, AT_UNIX - BETA_WINDOW, AT_UNIX)]
    return statistics.quantiles(latencies, n=100, method="inclusive")[94]


def test_quantile_pass(pytester: pytest.Pytester) -> None:
    rows = traffic(AT_UNIX - 60, 11, 0, latencies=[*FAST, 1.4])
    rows += traffic(AT_UNIX - BETA_WINDOW - 60, 1, 0, latencies=[60.0])  # outside the window
    make_db(pytester, rows)
    write_spec(pytester, QUANTILE)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    value = secs(p95(rows))
    result.stdout.fnmatch_lines([f"latency_p95*beta*{value}*max 1.5s*PASS"])
    got = props(junit_cases(pytester)["latency_p95[beta]"])
    assert (got["slo.verdict"], got["slo.value"], got["slo.query"]) == (
        "pass", value, LATENCY_QUERY)


def test_quantile_fail_shows_the_value(pytester: pytest.Pytester) -> None:
    rows = traffic(AT_UNIX - 60, 11, 0, latencies=[*FAST, 3.0])
    make_db(pytester, rows)
    write_spec(pytester, QUANTILE)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    value = secs(p95(rows))
    assert value == "2s"  # halfway between 1s and 3s
    result.stdout.fnmatch_lines([lit(line) for line in [
        f"latency_p95[beta] FAILED: {value} > max 1.5s",
        f"  (window 6h, at {AT})",
    ]], consecutive=True)
    result.stdout.fnmatch_lines([lit(f"  query: {LATENCY_QUERY}"),
                                 f"latency_p95*beta*{value}*max 1.5s*FAIL"])
    case = junit_cases(pytester)["latency_p95[beta]"]
    assert kind(case) == "failure"
    assert (props(case)["slo.verdict"], props(case)["slo.value"]) == ("fail", value)


def test_histogram_quantile_on_sqlite_is_a_spec_error(pytester: pytest.Pytester) -> None:
    spec = write_spec(pytester, """\
- name: latency_p95
  histogram_quantile: {metric: tool_call_duration_seconds, quantile: 0.95}
  max: 10s
""")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    line = line_of(spec, "histogram_quantile:")
    result.stdout.fnmatch_lines([
        "*ERROR collecting slo_specs/x.yaml*",
        f"*slo_specs/x.yaml:{line}: objectives.latency_p95.histogram_quantile: needs a PromQL "
        "backend; backend 'events' is sqlite*",
    ])
    assert result.parseoutcomes() == {"errors": 1}


# -- burn rate ----------------------------------------------------------------------------------

BURN = ERROR_RATE + """\
  burn_rate:
    target: 99%
    alerts:
      - {long: 1h, short: 5m, factor: 14.4}
      - {long: 6h, short: 30m, factor: 6}
"""
ALERTS = [(HOUR, "1h", 5 * 60, "5m", 14.4), (6 * HOUR, "6h", 30 * 60, "30m", 6.0)]


def burn_rows(older_errors: int) -> list[Row]:
    """Traffic in the last 5m, 5m-30m, 30m-1h and 1h-6h before AT."""
    return [*traffic(AT_UNIX - 60, 100, 10), *traffic(AT_UNIX - 600, 100, 10),
            *traffic(AT_UNIX - 2400, 200, 0), *traffic(AT_UNIX - 3 * HOUR, 600, older_errors)]


def burn_lines(rows: Sequence[Row]) -> tuple[list[str], list[str]]:
    """Each alert's detail line, and the headlines of the alerts that fire."""
    budget = 1 - 0.99
    details, fired = [], []
    for index, (long, long_text, short, short_text, factor) in enumerate(ALERTS, 1):
        rate_long = error_ratio(rows, AT_UNIX - long, AT_UNIX) / budget
        rate_short = error_ratio(rows, AT_UNIX - short, AT_UNIX) / budget
        name = f"alert {index} (factor {factor:g}: {long_text} and {short_text})"
        details.append(f"  {name}: burn rate {rate_long:.2f}x over {long_text}, "
                       f"{rate_short:.2f}x over {short_text}")
        if rate_long > factor and rate_short > factor:
            fired.append(f"{name}: burn rate {rate_long:.2f}x over {long_text} and "
                         f"{rate_short:.2f}x over {short_text} both exceed {factor:g}")
    return details, fired


def test_burn_rate_pass(pytester: pytest.Pytester) -> None:
    rows = burn_rows(5)
    make_db(pytester, rows)
    write_spec(pytester, BURN)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1}
    assert burn_lines(rows)[1] == []
    result.stdout.fnmatch_lines(["error_rate*beta*no alert firing*burn_rate_target 99%*PASS"])
    got = props(junit_cases(pytester)["error_rate[beta]"])
    assert (got["slo.verdict"], got["slo.value"], got["slo.burn_rate_target"]) == (
        "pass", "no alert firing", "99%")


def test_burn_rate_fail_shows_each_window(pytester: pytest.Pytester) -> None:
    rows = burn_rows(50)
    make_db(pytester, rows)
    write_spec(pytester, BURN)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1}
    details, fired = burn_lines(rows)
    assert len(fired) == 1 and fired[0].startswith("alert 2 ")
    result.stdout.fnmatch_lines([lit(line) for line in [
        f"error_rate[beta] FAILED: {fired[0]}",
        f"  (at {AT})",
        "  error budget 1.00% (target 99.00%)",
        *details,
    ]], consecutive=True)
    value = f"{len(fired)} alert(s) firing"
    result.stdout.fnmatch_lines([f"error_rate*beta*{value}*burn_rate_target 99%*FAIL"])
    case = junit_cases(pytester)["error_rate[beta]"]
    assert kind(case) == "failure"
    got = props(case)
    assert (got["slo.verdict"], got["slo.value"], got["slo.burn_rate_target"]) == (
        "fail", value, "99%")


# -- matrix -------------------------------------------------------------------------------------

REGION_ERRORS = "SELECT count(*) FROM req WHERE region = '${region}' AND outcome = 'error' " \
                "AND ts >= :window_start AND ts < :window_end"
REGION_REQUESTS = "SELECT count(*) FROM req WHERE region = '${region}' " \
                  "AND ts >= :window_start AND ts < :window_end"
REGION_ERROR_RATE = f"""\
- name: error_rate
  ratio:
    numerator: {REGION_ERRORS}
    denominator: {REGION_REQUESTS}
  max: 5%
"""
REGION_AVAILABILITY = f"""\
- name: availability
  ratio:
    numerator: {REGION_REQUESTS.replace("WHERE", "WHERE outcome = 'ok' AND")}
    denominator: {REGION_REQUESTS}
  min: 90%
"""
REGIONS = ("eu", "us")


def region_rows(us_errors: int) -> list[Row]:
    return [*traffic(AT_UNIX - 60, 1000, 10, region="eu"),
            *traffic(AT_UNIX - 60, 1000, us_errors, region="us")]


def region_ratio(rows: Sequence[Row], region: str) -> float:
    return error_ratio(rows, AT_UNIX - BETA_WINDOW, AT_UNIX, region=region)


def test_matrix_objective_ids(pytester: pytest.Pytester) -> None:
    write_spec(pytester, REGION_ERROR_RATE + "  matrix: {region: [eu, us]}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "--slo-stage=beta",
                                "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([lit(f"slo_specs/x.yaml::error_rate[beta-region={r}]")
                                 for r in REGIONS] + ["2 tests collected*"])


def test_matrix_of_the_file_and_the_objective_combine(pytester: pytest.Pytester) -> None:
    write_spec(pytester, REGION_ERROR_RATE + "  matrix: {cohort: [canary, control]}\n",
               REGION_AVAILABILITY, extra="matrix:\n  region: [eu, us]\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "--slo-stage=beta",
                                "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    ids = [f"error_rate[beta-region={r}-cohort={c}]" for r in REGIONS
           for c in ("canary", "control")]
    ids += [f"availability[beta-region={r}]" for r in REGIONS]
    result.stdout.fnmatch_lines([lit(f"slo_specs/x.yaml::{i}") for i in ids]
                                + [f"{len(ids)} tests collected*"])


@pytest.mark.parametrize("us_errors", [30, 80], ids=["pass", "fail"])
def test_matrix_on_the_objective(pytester: pytest.Pytester, us_errors: int) -> None:
    rows = region_rows(us_errors)
    make_db(pytester, rows)
    write_spec(pytester, REGION_ERROR_RATE + "  matrix: {region: [eu, us]}\n")
    result = run(pytester, "-v")
    ratios = {r: region_ratio(rows, r) for r in REGIONS}
    failing = [r for r in REGIONS if ratios[r] > 0.05]
    outcomes = {r: "FAILED" if r in failing else "PASSED" for r in REGIONS}
    result.stdout.fnmatch_lines([
        lit(f"slo_specs/x.yaml::error_rate[beta-region={r}] {outcomes[r]}") + "*"
        for r in REGIONS])
    if failing:
        assert failing == ["us"]
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert result.parseoutcomes() == {"failed": 1, "passed": 1}
        result.stdout.fnmatch_lines([
            lit(f"error_rate[beta-region=us] FAILED: {pct(ratios['us'])} > max 5.00%"),
            lit(f"  numerator {us_errors}, denominator 1000 (window 6h, at {AT})"),
        ], consecutive=True)
        result.stdout.fnmatch_lines([
            lit("  numerator query: " + REGION_ERRORS.replace("${region}", "us"))])
    else:
        assert result.ret == pytest.ExitCode.OK
        assert result.parseoutcomes() == {"passed": 2}
    result.stdout.fnmatch_lines([
        f"error_rate (region={r})*beta*{pct(ratios[r])}*max 5.00%*"
        + ("FAIL" if r in failing else "PASS") for r in REGIONS])
    cases = junit_cases(pytester)
    assert set(cases) == {f"error_rate[beta-region={r}]" for r in REGIONS}
    for region in REGIONS:
        case = cases[f"error_rate[beta-region={region}]"]
        got = props(case)
        verdict = "fail" if region in failing else "pass"
        assert (got["slo.matrix"], got["slo.verdict"], got["slo.value"]) == (
            f"region={region}", verdict, pct(ratios[region]))
        assert got["slo.objective"] == "error_rate"
        assert kind(case) == ("failure" if region in failing else "passed")
        assert f"region = '{region}'" in got["slo.numerator_query"]


@pytest.mark.parametrize("us_errors", [30, 80], ids=["pass", "fail"])
def test_matrix_at_file_level(pytester: pytest.Pytester, us_errors: int) -> None:
    rows = region_rows(us_errors)
    make_db(pytester, rows)
    write_spec(pytester, REGION_ERROR_RATE, REGION_AVAILABILITY,
               extra="matrix:\n  region: [eu, us]\n")
    result = run(pytester, "-v")
    ratios = {r: region_ratio(rows, r) for r in REGIONS}
    failing = [r for r in REGIONS if ratios[r] > 0.05]
    assert all(1 - ratios[r] >= 0.90 for r in REGIONS)  # availability holds everywhere
    ids = [f"{name}[beta-region={r}]" for name in ("error_rate", "availability")
           for r in REGIONS]
    cases = junit_cases(pytester)
    assert set(cases) == set(ids)
    if failing:
        assert failing == ["us"]
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert result.parseoutcomes() == {"failed": 1, "passed": 3}
        result.stdout.fnmatch_lines([
            lit("slo_specs/x.yaml::error_rate[beta-region=us] FAILED") + "*",
            lit(f"error_rate[beta-region=us] FAILED: {pct(ratios['us'])} > max 5.00%"),
        ])
    else:
        assert result.ret == pytest.ExitCode.OK
        assert result.parseoutcomes() == {"passed": 4}
    for region in REGIONS:
        availability = pct(1 - ratios[region])
        result.stdout.fnmatch_lines([
            f"availability (region={region})*beta*{availability}*min 90.00%*PASS"])
        got = props(cases[f"availability[beta-region={region}]"])
        assert (got["slo.matrix"], got["slo.verdict"], got["slo.value"]) == (
            f"region={region}", "pass", availability)
        got = props(cases[f"error_rate[beta-region={region}]"])
        assert (got["slo.matrix"], got["slo.verdict"]) == (
            f"region={region}", "fail" if region in failing else "pass")
