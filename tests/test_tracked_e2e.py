"""Tracked objectives (``track: true``) end to end: reported everywhere, never judged.

A tracked objective has no bounds; whatever its value (or its lack of one, or a backend
error), its item passes and its verdict reads ``tracked`` in the terminal table, the JUnit
properties, the Markdown summary and the JSON evidence, while the gated objectives beside it
decide the exit status alone.
"""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

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
  - name: clicks
    track: true
    query: SELECT clicks FROM counts
  - name: click_rate
    track: true
    ratio:
      numerator: SELECT clicks FROM counts
      denominator: SELECT total FROM counts
  - name: nothing_yet
    track: true
    query: SELECT clicks FROM counts WHERE 0
  - name: broken
    track: true
    query: SELECT clicks FROM no_such_table
"""


def _run(pytester: pytest.Pytester, errors: int) -> pytest.RunResult:
    connection = sqlite3.connect(pytester.path / "events.db")
    with connection:
        connection.execute("CREATE TABLE counts (errors INTEGER, total INTEGER, clicks INTEGER)")
        connection.execute("INSERT INTO counts VALUES (?, 1000, 240)", (errors,))
    connection.close()
    (pytester.path / "slo_specs").mkdir()
    (pytester.path / "slo_specs" / "gate.yaml").write_text(SPEC)
    return pytester.runpytest(*QUIET, "--slo-stage=beta", AT, "--junitxml=out/junit.xml",
                              "--slo-report-md=out/slo.md", "--slo-report-json=out/slo.json")


@pytest.mark.parametrize(("errors", "status"), [(10, 0), (90, 1)])
def test_tracked_objectives_never_decide_the_gate(pytester: pytest.Pytester, errors: int,
                                                  status: int) -> None:
    result = _run(pytester, errors)
    assert result.ret == status
    result.assert_outcomes(passed=5 - status, failed=status)
    table = {line.split()[0]: line for line in result.outlines
             if line.split()[:1] and line.split()[0] in ("clicks", "click_rate", "nothing_yet",
                                                          "broken")}
    assert "240" in table["clicks"] and table["clicks"].endswith("TRACKED")
    assert "24.00%" in table["click_rate"] and "tracked" in table["click_rate"]
    assert "no data" in table["nothing_yet"] and table["nothing_yet"].endswith("TRACKED")
    assert "error" in table["broken"] and table["broken"].endswith("TRACKED")

    root = ET.parse(pytester.path / "out" / "junit.xml").getroot()
    props = {case.attrib["name"]: {p.attrib["name"]: p.attrib["value"]
                                   for p in case.iter("property")}
             for case in root.iter("testcase")}
    assert props["clicks[beta]"]["slo.verdict"] == "tracked"
    assert props["clicks[beta]"]["slo.value"] == "240"
    assert props["click_rate[beta]"]["slo.value"] == "24.00%"
    assert props["broken[beta]"]["slo.message"].startswith(
        "broken[beta] TRACKED (not judged): error: ")
    assert props["nothing_yet[beta]"]["slo.message"].startswith(
        "nothing_yet[beta] TRACKED (not judged): no data")

    markdown = (pytester.path / "out" / "slo.md").read_text()
    assert "📈 TRACKED" in markdown and "4 tracked" in markdown
    # A green gate stays green with tracked objectives that have no value or an error.
    assert ("**beta** passed:" in markdown.splitlines()[0]) is (status == 0)
    evidence = json.loads((pytester.path / "out" / "slo.json").read_text())
    verdicts = {o["objective"]: (o["verdict"], o["outcome"]) for o in evidence["objectives"]}
    assert verdicts["clicks"] == verdicts["broken"] == ("tracked", "passed")
    assert evidence["run"]["counts"]["tracked"] == 4
    assert evidence["run"]["verdict"] == ("pass" if status == 0 else "fail")
