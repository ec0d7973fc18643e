"""The JUnit face of a verdict: ``slo.*`` testcase properties, and warn texts in system-out.

The properties carry the record's facts for tools that read JUnit; GitLab ignores them. After
pytest wrote the file, :func:`add_system_out` copies the text of objectives that passed with a
warning (or without data) into ``system-out``, for the JUnit readers that show it; GitLab shows
``system-out`` of failed and errored cases only, so there the merge request note
(``--slo-mr-note``) carries warnings.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from xml.etree import ElementTree

from pytest_rollout_slo.quantity import format_time, format_value, json_number
from pytest_rollout_slo.report.text import failure_text, value_text
from pytest_rollout_slo.verdict.confidence import family_text
from pytest_rollout_slo.verdict.instant import Verdict
from pytest_rollout_slo.verdict.record import VerdictRecord


@functools.lru_cache(maxsize=4096)
def _shared(name: str, value: str) -> tuple[str, object]:
    """One ``(name, value)`` pair for every objective that has it.

    pytest keeps each item's properties three times over (the item and its call and
    teardown reports) until the run ends; most of them (service, stage, unit, bounds,
    backend, window, time) are the same for many objectives, so they share one tuple.
    """
    return name, value


def properties(record: VerdictRecord, message: str = "") -> list[tuple[str, object]]:
    """JUnit ``<properties>`` of the testcase; written through ``item.user_properties``.

    ``message`` is the failure text when the caller has it already (else rendered here).
    """
    unit = record.unit
    low, high = record.bounds.min, record.bounds.max
    props: list[tuple[str, object]] = [
        _shared("slo.service", record.service),
        _shared("slo.stage", record.stage),
        ("slo.objective", record.objective),
        *([("slo.matrix", record.matrix)] if record.matrix else []),
        _shared("slo.verdict", record.verdict.value),
        ("slo.value", value_text(record)),
        _shared("slo.min", "" if low is None else format_value(low, unit)),
        _shared("slo.max", "" if high is None else format_value(high, unit)),
        *_warn_properties(record),
        *(_shared(f"slo.{limit.name}", limit.text) for limit in record.limits),
        *([("slo.change", record.change)] if record.change else []),
        _shared("slo.unit", unit),
        _shared("slo.backend", record.backend),
    ]
    queries = record.queries
    if len(queries) == 1:  # a plain query, or a histogram's bucket counts
        props.append(("slo.query", next(iter(queries.values()))))
    else:
        props.append(("slo.query", " / ".join(f"({q})" for q in queries.values())))
        props.extend((f"slo.{part}_query", query) for part, query in queries.items())
    props.append(_shared("slo.window", record.window))
    props.append(_shared("slo.at", format_time(record.at)))
    if record.verdict is not Verdict.PASS:
        props.append(("slo.message", message or failure_text(record)))
    if record.link:
        props.append(("slo.link", record.link))
    props.append(("slo.observations", observations_json(record)))
    if record.confidence:
        props.append(_shared("slo.confidence", record.confidence))
        if record.adjustment:
            props.append(("slo.adjustment", family_text(record.adjustment, record.family)))
        props.append(("slo.tests", json.dumps(significance_rows(record), sort_keys=True)))
    return props


def significance_rows(record: VerdictRecord) -> list[dict[str, object]]:
    """The tests behind a confidence verdict as JSON objects: counts, estimate, interval,
    method, statistic, p-values (an infinite bound of a rate ratio as a string)."""
    rows: list[dict[str, object]] = []
    for test in record.tests:
        rows.append({
            "labels": dict(test.labels), "test": test.test, "method": test.method,
            "level": test.level, "counts": list(test.counts),
            "estimate": json_number(test.estimate),
            "interval": [json_number(test.low), json_number(test.high)],
            "against": test.against, "statistic": test.statistic, "p_fail": test.p_fail,
            "p_pass": test.p_pass, "p_fail_adjusted": test.adjusted,
            "verdict": test.verdict.value, **({"more": test.more} if test.more else {}),
            **({"buckets": [json_number(b) for b in test.buckets]} if test.buckets else {})})
    return rows


def observations_json(record: VerdictRecord) -> str:
    """The raw values behind the verdict, as JSON: labels, value, ratio parts, reason."""
    return json.dumps(observation_rows(record), sort_keys=True)


def observation_rows(record: VerdictRecord) -> list[dict[str, object]]:
    """The record's values as JSON objects, non-finite numbers as strings."""
    rows = []
    # The record keeps a bounded sample: a 100k-series answer must not make a 100k-row property.
    for observation in record.values:
        row: dict[str, object] = {"labels": dict(observation.labels),
                                  "value": json_number(observation.value)}
        if observation.parts is not None:
            row["numerator"] = json_number(observation.parts[0])
            row["denominator"] = json_number(observation.parts[1])
        if observation.reason:
            row["reason"] = observation.reason
        rows.append(row)
    return rows


def _warn_properties(record: VerdictRecord) -> list[tuple[str, object]]:
    warn = record.warn
    return [_shared(f"slo.warn_{side}", format_value(value, record.unit))
            for side, value in (("min", warn.min), ("max", warn.max)) if value is not None]


def add_system_out(xml_path: Path) -> None:
    """Copy the text of warn and no-data-but-passed testcases into their ``<system-out>``.

    Test report viewers that show a passed case's system-out (not GitLab's) then show the
    warning, and pytest writes captured output only under ``junit_logging``.
    """
    try:
        tree = ElementTree.parse(xml_path)
    except (OSError, ElementTree.ParseError):
        return  # not ours to repair; pytest reports its own write errors
    changed = False
    for case in tree.iter("testcase"):
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        if (props.get("slo.verdict") not in ("warn", "no_data", "inconclusive")
                or case.find("failure") is not None):
            continue
        text = props.get("slo.message", "")
        out = case.find("system-out")
        if out is None:
            out = ElementTree.SubElement(case, "system-out")
        if text not in (out.text or ""):
            out.text = f"{out.text}\n{text}" if out.text else text
            changed = True
    if changed:
        tree.write(xml_path, encoding="utf-8", xml_declaration=True)


def add_gate_error(xml_path: Path, stage: str, message: str) -> None:
    """Record that the gate did not run as one errored testcase, so a merge request shows why.

    pytest writes a JUnit file without testcases after a usage error during collection, and
    none at all after one at start-up; a report GitLab reads as "0 tests" looks like nothing
    was wrong. The file is completed or written, never replaced if it is not JUnit.
    """
    try:
        tree = ElementTree.parse(xml_path)
        root = tree.getroot()
    except FileNotFoundError:
        root = ElementTree.Element("testsuites")
        tree = ElementTree.ElementTree(root)
    except (OSError, ElementTree.ParseError):
        return
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ElementTree.SubElement(root, "testsuite", name="pytest", errors="0",
                                       failures="0", skipped="0", tests="0", time="0")
    case = ElementTree.SubElement(suite, "testcase", classname="slo", name=f"gate[{stage}]",
                                  time="0")
    error = ElementTree.SubElement(case, "error", message=f"the SLO gate did not run: {message}")
    error.text = (f"The SLO gate for stage {stage} did not run, so it decides nothing: "
                  f"{message}")
    for key in ("tests", "errors"):
        suite.set(key, str(int(suite.get(key) or 0) + 1))
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


__all__ = ["add_gate_error", "add_system_out", "observation_rows", "observations_json",
           "properties", "significance_rows"]
