"""Honest runs, end to end: the decision line, partial and repeated runs, usage errors in
the reports, and a gate that collects only its spec files.

A run that judged part of a stage (``-k``, ``--deselect``, ``-x``, node ids, ``--lf``) must
never read as the stage passing: not in the exit code, the terminal's last line, the
Markdown's first line, the JSON, or the stage hook. A rerun (pytest-rerunfailures) reports
the verdict it already has instead of asking the backend until an answer happens to pass.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from specdata import AT, ERROR_RATE
from test_plugin_e2e import LATENCY, QUIET, lit, make_db, run, write_spec

pytest_plugins = ["pytester"]

AT_OPTION = f"--slo-at={AT}"
REPORTS = ("--slo-report-md=gate.md", "--slo-report-json=gate.json", "--junitxml=junit.xml")

HOOK_CONFTEST = """
import json
from pathlib import Path

def pytest_slo_stage_finished(stage, passed, partial, verdicts):
    Path("stage-finished.json").write_text(json.dumps(
        {"stage": stage, "passed": passed, "partial": partial, "verdicts": verdicts}))
"""


def green(pytester: pytest.Pytester) -> None:
    """A stage of two objectives that both pass."""
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, ERROR_RATE, LATENCY)


def evidence(pytester: pytest.Pytester) -> dict[str, object]:
    run_part: dict[str, object] = json.loads((pytester.path / "gate.json").read_text())["run"]
    return run_part


def test_a_whole_green_run_ends_with_promote(pytester: pytest.Pytester) -> None:
    green(pytester)
    pytester.makeconftest(HOOK_CONFTEST)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, *REPORTS)
    assert result.ret == pytest.ExitCode.OK
    assert result.outlines[-1] == "SLO gate beta: PROMOTE (2 objectives: 2 pass)"
    assert evidence(pytester)["decision"] == "PROMOTE"
    assert evidence(pytester)["partial"] is False
    hook = json.loads((pytester.path / "stage-finished.json").read_text())
    assert hook["passed"] is True and hook["partial"] is False


def test_a_failed_objective_ends_with_hold(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")  # 6.2 % errors against max 5 %
    write_spec(pytester, ERROR_RATE, LATENCY)
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.outlines[-1] == "SLO gate beta: HOLD (2 objectives: 1 fail, 1 pass)"


@pytest.mark.parametrize(("selection", "how"), [
    (("-k", "latency"), "-k 'latency'"),
    (("--deselect", "slo_specs/x.yaml::error_rate[beta]"), "--deselect"),
    (("slo_specs/x.yaml::latency_p95[beta]",), "node ids"),
])
def test_a_green_partial_run_never_exits_0(pytester: pytest.Pytester,
                                           selection: tuple[str, ...], how: str) -> None:
    green(pytester)
    pytester.makeconftest(HOOK_CONFTEST)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, *REPORTS, *selection)
    # Exit 0 promotes in CI: one green objective out of two must not.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.outlines[-1] == (
        f"SLO gate beta: PARTIAL (1 objective judged: 1 pass; 1 of 2 objectives not run: "
        f"{how}); a partial run never promotes")
    run_part = evidence(pytester)
    assert run_part["verdict"] == "partial" and run_part["decision"] == "PARTIAL"
    assert run_part["partial"] is True
    assert run_part["not_run"] == ["slo_specs/x.yaml::error_rate[beta]"]
    first = (pytester.path / "gate.md").read_text().splitlines()[0]
    assert first.startswith("## 🟠 SLO gate **beta** judged in part: conflict-resolver, "
                            "1 objective judged, 1 not run (1 of 2 objectives not run")
    hook = json.loads((pytester.path / "stage-finished.json").read_text())
    assert hook == {"stage": "beta", "passed": False, "partial": True,
                    "verdicts": {"slo_specs/x.yaml::latency_p95[beta]": "pass"}}


def test_stopping_early_is_partial_and_still_a_hold(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY)
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "-x", *REPORTS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The failure decides: a partial run that failed is a hold like any failure.
    assert evidence(pytester)["verdict"] == "fail"
    assert evidence(pytester)["decision"] == "HOLD"
    assert evidence(pytester)["partial_reason"] == "1 of 2 objectives not run: -x/--maxfail"
    assert result.outlines[-1] == "SLO gate beta: HOLD (1 objective: 1 fail)"


def test_last_failed_run_is_partial(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    write_spec(pytester, ERROR_RATE, LATENCY)
    pytester.runpytest(*QUIET, "--slo-stage=beta", AT_OPTION)
    make_db(pytester.path / "fixed" / "events.db", {"eu": (10, 1000)})
    (pytester.path / "events.db").unlink()
    (pytester.path / "fixed" / "events.db").rename(pytester.path / "events.db")
    again = pytester.runpytest(*QUIET, "--slo-stage=beta", AT_OPTION, "--lf", *REPORTS)
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    assert again.outlines[-1].startswith("SLO gate beta: PARTIAL (1 objective judged: 1 pass; "
                                         "1 of 2 objectives not run: --lf)")


def test_a_rerun_reports_the_same_verdict_without_asking_again(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FLIP_CONFTEST)
    pytester.makefile(".slo.yaml", gate=FLIP_SPEC)
    result = pytester.runpytest("-p", "no:cacheprovider", *QUIET, "-p", "rerunfailures",
                                "--reruns", "2", "--slo-stage=s", *REPORTS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["rerun"] == 2
    # Asked once: a second answer of 0.5 would have turned the rerun green.
    assert (pytester.path / "queries.log").read_text().splitlines() == ["flip"]
    objectives = json.loads((pytester.path / "gate.json").read_text())["objectives"]
    assert [(o["id"], o["verdict"], o["value"]) for o in objectives] == [
        ("gate.slo.yaml::flaky[s]", "fail", 2.0)]
    # pytest's JUnit writes one testcase per attempt; each holds the one verdict, once.
    for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"):
        verdicts = [p.get("value") for p in case.iter("property") if p.get("name") == "slo.verdict"]
        assert verdicts == ["fail"]


FLIP_CONFTEST = '''
from pathlib import Path

from pytest_rollout_slo.backends.base import Query, QueryResult, Sample

LOG = Path(__file__).with_name("queries.log")


class FlipBackend:
    """Answers 2.0 the first time it is asked, 0.5 after: a rerun that asks again passes."""

    type_name = "flip"

    def __init__(self, name):
        self.name = name
        self.asked = 0

    def describe(self):
        return "flip"

    def graph_url(self, query):
        return None

    def close(self):
        pass

    def query(self, query: Query) -> QueryResult:
        with LOG.open("a") as log:
            log.write(query.text + "\\n")
        self.asked += 1
        return QueryResult((Sample((), 2.0 if self.asked == 1 else 0.5),))


class FlipType:
    name = "flip"
    settings = {}

    def create(self, name, settings, spec_dir):
        return FlipBackend(name)


def pytest_slo_backend_types():
    return [FlipType()]
'''

FLIP_SPEC = """\
version: 1
service: svc
backends:
  mem: {type: flip}
stages:
  s: {}
objectives:
  - name: flaky
    query: flip
    max: 1
"""


def test_only_spec_files_are_collected_unless_asked(pytester: pytest.Pytester) -> None:
    green(pytester)
    pytester.makepyfile(test_unit="def test_broken():\n    assert False\n")
    result = run(pytester, "--slo-stage=beta", AT_OPTION)
    # A failing unit test beside the specs would hold the stage; a passing one would count.
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 2}
    both = run(pytester, "--slo-stage=beta", AT_OPTION, "--slo-with-tests")
    assert both.ret == pytest.ExitCode.TESTS_FAILED
    assert both.parseoutcomes() == {"passed": 2, "failed": 1}
    pytester.makeini("[pytest]\nslo_with_tests = true\n")
    assert run(pytester, "--slo-stage=beta", AT_OPTION).parseoutcomes() == {
        "passed": 2, "failed": 1}


def test_a_test_file_named_on_the_command_line_is_collected(pytester: pytest.Pytester) -> None:
    green(pytester)
    pytester.makepyfile(test_unit="def test_ok():\n    pass\n")
    result = run(pytester, "--slo-stage=beta", AT_OPTION, "slo_specs", "test_unit.py")
    assert result.parseoutcomes() == {"passed": 3}


def gate_error_case(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    (case,) = suite.iter("testcase")
    assert suite.get("errors") == "1" and suite.get("tests") == "1"
    return case


def test_an_unknown_stage_still_writes_every_report(pytester: pytest.Pytester) -> None:
    green(pytester)
    result = run(pytester, "--slo-stage=betta", AT_OPTION, *REPORTS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = "unknown stage 'betta'; the collected spec files define: internal, beta, ga"
    run_part = evidence(pytester)
    assert run_part["usage_error"] == message
    assert run_part["verdict"] == "error" and run_part["decision"] == "HOLD"
    first = (pytester.path / "gate.md").read_text().splitlines()[0]
    assert first.startswith(f"## ❌ SLO gate **betta** did not complete: (no service), the gate "
                            f"did not run: {message}")
    case = gate_error_case(pytester.path / "junit.xml")
    assert case.get("name") == "gate[betta]"
    error = case.find("error")
    assert error is not None and error.get("message") == f"the SLO gate did not run: {message}"
    result.stdout.fnmatch_lines([lit(f"SLO gate betta: HOLD (the gate did not run: {message})")])


def test_a_bad_option_at_start_still_writes_every_report(pytester: pytest.Pytester) -> None:
    green(pytester)
    result = run(pytester, "--slo-stage=beta", "--slo-at=yesterday", *REPORTS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slo-at 'yesterday' is not a time*"])
    assert "--slo-at 'yesterday' is not a time" in str(evidence(pytester)["usage_error"])
    case = gate_error_case(pytester.path / "junit.xml")
    assert case.get("name") == "gate[beta]"


def test_an_interrupted_run_keeps_what_it_judged_and_holds(pytester: pytest.Pytester) -> None:
    green(pytester)
    pytester.makeconftest(HOOK_CONFTEST + """
import pytest

def pytest_runtest_setup(item):
    if "latency" in item.nodeid:
        pytest.exit("stopped by the operator", returncode=2)
""")
    result = run(pytester, "--slo-stage=beta", AT_OPTION, *REPORTS)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    run_part = evidence(pytester)
    assert (run_part["verdict"], run_part["decision"]) == ("error", "HOLD")
    assert run_part["not_run"] == ["slo_specs/x.yaml::latency_p95[beta]"]
    objectives = json.loads((pytester.path / "gate.json").read_text())["objectives"]
    assert [(o["objective"], o["verdict"]) for o in objectives] == [("error_rate", "pass")]
    first = (pytester.path / "gate.md").read_text().splitlines()[0]
    assert "did not complete" in first and "the run ended early (exit status 2)" in first
    # The stage hook fires only for a judged run: nothing may act on an interrupted one.
    assert not (pytester.path / "stage-finished.json").exists()
    assert result.outlines[-1].startswith("SLO gate beta: HOLD (1 objective: 1 pass")


def test_a_stage_of_tracked_objectives_only_is_never_a_green_gate(
        pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db", {"eu": (10, 1000)})
    write_spec(pytester, "- name: requests\n  track: true\n  query: SELECT count(*) FROM req\n")
    result = run(pytester, "--slo-stage=beta", AT_OPTION, *REPORTS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert evidence(pytester)["decision"] == "HOLD"
    result.stderr.fnmatch_lines(["*stage 'beta' has only tracked objectives (track: true)*"])
