"""The Markdown summary and JSON evidence options, end to end through pytester."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:hypothesispytest", "-p", "no:benchmark")
AT = "--slo-at=2026-11-26T12:00:00Z"
SPEC = """\
version: 1
service: checkout
backends:
  events: {type: sqlite, path: ../events.db}
variables: {window: 1h}
stages:
  beta: {}
objectives:
  - name: error_rate
    ratio:
      numerator: SELECT errors FROM counts
      denominator: SELECT total FROM counts
    max: 5%
  - name: volume
    query: SELECT total FROM counts
    min: 10
"""


def _setup(pytester: pytest.Pytester, errors: int) -> None:
    connection = sqlite3.connect(pytester.path / "events.db")
    with connection:
        connection.execute("CREATE TABLE counts (errors INTEGER, total INTEGER)")
        connection.execute("INSERT INTO counts VALUES (?, 1000)", (errors,))
    connection.close()
    (pytester.path / "slo_specs").mkdir()
    (pytester.path / "slo_specs" / "gate.yaml").write_text(SPEC)


def test_markdown_and_json_for_a_red_gate(pytester: pytest.Pytester) -> None:
    _setup(pytester, errors=62)
    result = pytester.runpytest(*QUIET, "--slo-stage=beta", AT, "--slo-report-md=out/slo.md",
                                "--slo-report-json=out/slo.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    markdown = (pytester.path / "out" / "slo.md").read_text()
    first = markdown.splitlines()[0]
    assert "**beta** failed" in first and "checkout" in first and "2026-11-26T12:00:00Z" in first
    # Failures come first in the table.
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `error_rate`") and "6.20%" in rows[0]
    assert "<!-- pytest-rollout-slo:checkout:beta -->" in markdown
    evidence = json.loads((pytester.path / "out" / "slo.json").read_text())
    assert (evidence["schema"], evidence["version"]) == ("pytest-rollout-slo/evidence", 2)
    assert evidence["run"]["stage"] == "beta" and evidence["run"]["exit_status"] == 1
    by_name = {o["objective"]: o for o in evidence["objectives"]}
    assert by_name["error_rate"]["verdict"] == "fail"
    assert by_name["error_rate"]["observations"][0]["numerator"] == 62
    # Numbers as numbers, next to the text the tables show.
    assert by_name["error_rate"]["value"] == pytest.approx(0.062)
    assert by_name["error_rate"]["value_text"] == "6.20%"
    assert by_name["error_rate"]["thresholds"] == {"max": 0.05}
    assert by_name["error_rate"]["threshold_text"] == {"max": "5.00%"}
    assert by_name["volume"]["verdict"] == "pass"


def test_reports_from_ini_keys_and_a_green_gate(pytester: pytest.Pytester) -> None:
    _setup(pytester, errors=10)
    pytester.makeini("[pytest]\nslo_report_md = slo.md\nslo_report_json = slo.json\n")
    result = pytester.runpytest(*QUIET, "--slo-stage=beta", AT)
    assert result.ret == pytest.ExitCode.OK
    assert "passed" in (pytester.path / "slo.md").read_text().splitlines()[0]
    assert json.loads((pytester.path / "slo.json").read_text())["run"]["exit_status"] == 0


def test_xdist_controller_writes_the_same_evidence(pytester: pytest.Pytester) -> None:
    _setup(pytester, errors=62)
    single = pytester.runpytest(*QUIET, "--slo-stage=beta", AT, "--slo-report-json=one.json")
    assert single.ret == pytest.ExitCode.TESTS_FAILED
    spread = pytester.runpytest_subprocess(*QUIET, "-n", "2", "--slo-stage=beta", AT,
                                           "--slo-report-json=two.json")
    assert spread.ret == pytest.ExitCode.TESTS_FAILED

    def verdicts(name: str) -> dict[str, str]:
        document = json.loads((pytester.path / name).read_text())
        return {o["id"]: o["verdict"] for o in document["objectives"]}

    assert verdicts("one.json") == verdicts("two.json")
    assert len(verdicts("two.json")) == 2
    # The whole record crosses from the workers: every objective's entry is the same.
    assert (json.loads((pytester.path / "one.json").read_text())["objectives"]
            == json.loads((pytester.path / "two.json").read_text())["objectives"])
