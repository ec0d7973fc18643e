"""The renderers of ``report/``, each from verdict records alone: failure text, value
phrase, JUnit properties and system-out, the terminal table and its cells."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

from pytest_rollout_slo.report.junit import add_system_out, observations_json, properties
from pytest_rollout_slo.report.table import terminal_table, threshold_text, verdict_label
from pytest_rollout_slo.report.text import failure_text, value_text
from pytest_rollout_slo.spec.model import NO_BOUNDS, Bounds
from pytest_rollout_slo.verdict.instant import Evaluation, Observation, Verdict, judge
from pytest_rollout_slo.verdict.record import FLAGGED_VALUES, Limit, VerdictRecord

AT = 1_795_694_400.0  # 2026-11-26T12:00:00Z


def base(**changes: object) -> VerdictRecord:
    record = VerdictRecord(
        nodeid="s.slo.yaml::error_rate[beta]", title="error_rate[beta]", service="checkout",
        objective="error_rate", stage="beta", matrix="", unit="percent",
        bounds=Bounds(None, 0.05), on_no_data="skip", strict=False, at=AT, window="1h",
        backend="db (sqlite, events.db)",
        queries={"numerator": "SELECT e FROM t WHERE ts >= :window_start",
                 "denominator": "SELECT n FROM t"},
        parameters={"window_start": AT - 3600, "stage": "beta"})
    return replace(record, **changes)  # type: ignore[arg-type]


def ratio(numerator: float, denominator: float, *labels: tuple[str, str]) -> Observation:
    return Observation(tuple(labels), numerator / denominator, parts=(numerator, denominator))


def judged(values: list[Observation], warn: Bounds = NO_BOUNDS,
           **changes: object) -> VerdictRecord:
    record = base(**changes)
    return record.judged(judge(values, record.bounds, warn=warn))


def test_failure_text_of_one_value() -> None:
    assert failure_text(judged([ratio(62, 1000)])).splitlines() == [
        "error_rate[beta] FAILED: 6.20% > max 5.00%",
        "  numerator 62, denominator 1000 (window 1h, at 2026-11-26T12:00:00Z)",
        "  backend db (sqlite, events.db)",
        "  numerator query: SELECT e FROM t WHERE ts >= :window_start",
        "  denominator query: SELECT n FROM t",
        "  parameters: :window_start=2026-11-26T11:00:00Z",
    ]


def test_failure_text_lists_flagged_values_and_counts_the_rest() -> None:
    values = [ratio(10, 100, ("n", str(i))) for i in range(FLAGGED_VALUES + 7)]
    values.insert(0, ratio(1, 100, ("n", "fine")))
    lines = failure_text(judged(values)).splitlines()
    assert lines[0] == f"error_rate[beta] FAILED: {FLAGGED_VALUES + 7} of {FLAGGED_VALUES + 8} " \
                       "values outside max 5.00%"
    assert lines[1] == '  {n="0"}: 10.00% > max 5.00% (numerator 10, denominator 100)'
    assert not any("fine" in line for line in lines)
    assert "  ... and 7 more outside the bounds or without data" in lines


def test_warn_no_data_and_error_headlines() -> None:
    warned = judged([ratio(3, 100)], warn=Bounds(None, 0.02))
    assert failure_text(warned).splitlines()[0] == \
        "error_rate[beta] WARN: 3.00% > warn max 2.00% (bounds max 5.00%)"
    strict = replace(warned, strict=True)
    assert failure_text(strict).startswith("error_rate[beta] FAILED (warning under --slo-strict)")
    empty = base().judged(judge([], Bounds(None, 0.05), empty_reason="no series returned"))
    assert failure_text(empty).splitlines()[:3] == [
        "error_rate[beta] NO DATA: no series returned",
        "  (window 1h, at 2026-11-26T12:00:00Z)", "  on_no_data: skip"]
    error = base(error="connection refused", link="http://g")
    assert failure_text(error).splitlines()[0] == "error_rate[beta] ERROR: connection refused"
    assert failure_text(error).splitlines()[-1] == "  graph: http://g"


def test_value_text_is_short() -> None:
    assert value_text(judged([ratio(62, 1000)])) == "6.20%"
    many = judged([ratio(i, 100, ("r", str(i))) for i in range(12)])
    assert value_text(many).endswith(', {r="9"} 9.00%, ... (2 more)')
    assert value_text(base(error="x")) == "error"
    baseline = base().judged(Evaluation(Verdict.PASS, Bounds(None, 0.05), (ratio(3, 100),),
                                        value_text="3.00% vs baseline 2.00%",
                                        baseline_value=0.02))
    assert value_text(baseline) == "3.00% vs baseline 2.00%"
    assert value_text(baseline, with_baseline=False) == "3.00%"


def test_junit_properties_hold_the_record() -> None:
    record = judged([ratio(62, 1000)], warn=Bounds(None, 0.02),
                    limits=(Limit("baseline", "cohort=control"),))
    props = dict(properties(record, "the text"))
    assert props["slo.verdict"] == "fail" and props["slo.value"] == "6.20%"
    assert (props["slo.max"], props["slo.min"], props["slo.warn_max"]) == ("5.00%", "", "2.00%")
    assert props["slo.baseline"] == "cohort=control"
    assert props["slo.message"] == "the text"
    assert props["slo.query"] == "(SELECT e FROM t WHERE ts >= :window_start) / (SELECT n FROM t)"
    assert json.loads(str(props["slo.observations"])) == [
        {"labels": {}, "value": 0.062, "numerator": 62, "denominator": 1000}]
    assert "slo.message" not in dict(properties(judged([ratio(1, 1000)])))


def test_observations_json_keeps_non_finite_values_apart() -> None:
    # judge() refuses an infinity; a record read back from an older recording may hold one.
    record = base().judged(Evaluation(
        Verdict.FAIL, Bounds(None, 0.05),
        (Observation((), float("inf")), Observation((), None, "NULL"))))
    assert json.loads(observations_json(record)) == [
        {"labels": {}, "value": "+Inf"}, {"labels": {}, "value": None, "reason": "NULL"}]


def test_verdict_labels_say_what_pytest_made_of_them() -> None:
    no_data = base(verdict=Verdict.NO_DATA)
    assert verdict_label(replace(no_data, outcome="skipped")) == "NO DATA (skip)"
    assert verdict_label(replace(no_data, outcome="passed")) == "NO DATA (pass)"
    assert verdict_label(base(verdict=Verdict.WARN, outcome="failed")) == "WARN (strict)"
    assert verdict_label(base(verdict=Verdict.FAIL, outcome="failed")) == "FAIL"


def test_threshold_text_names_every_bound() -> None:
    record = base(bounds=Bounds(0.9, None), warn=Bounds(0.93, None),
                  limits=(Limit("baseline", "7d earlier"), Limit("max_decrease", "10%", 0.1),
                          Limit("sustained", "over 30m, step 5m", 1800.0),
                          Limit("max_violations", "2", 2)))
    assert threshold_text(record) == ("min 90.00%, warn min 93.00%, max_decrease 10%, "
                                      "max_violations 2, sustained over 30m, step 5m")
    assert "sustained" not in threshold_text(record, sustained=False)


def test_terminal_table_is_tabulate_simple_without_trailing_spaces() -> None:
    rows = [replace(judged([ratio(62, 1000)]), outcome="failed"),
            replace(judged([ratio(1, 1000)], matrix="region=eu"), outcome="passed")]
    marked = terminal_table(rows, lambda record, label: f"<{label}>")
    assert marked.splitlines() == [
        "objective               stage    value    threshold    verdict",
        "----------------------  -------  -------  -----------  ---------",
        "error_rate              beta     6.20%    max 5.00%    <FAIL>",
        "error_rate (region=eu)  beta     0.10%    max 5.00%    <PASS>",
    ]


def test_system_out_gets_warn_texts_only(tmp_path: Path) -> None:
    xml = tmp_path / "slo.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite>'
        '<testcase name="a"><properties><property name="slo.verdict" value="warn"/>'
        '<property name="slo.message" value="a WARN: 3%"/></properties></testcase>'
        '<testcase name="b"><properties><property name="slo.verdict" value="pass"/>'
        '</properties></testcase>'
        '<testcase name="c"><properties><property name="slo.verdict" value="no_data"/>'
        '<property name="slo.message" value="c NO DATA"/></properties><failure/></testcase>'
        "</testsuite></testsuites>", encoding="utf-8")
    add_system_out(xml)
    add_system_out(xml)  # a second pass adds nothing
    cases = {c.get("name"): c for c in ElementTree.parse(xml).iter("testcase")}
    assert cases["a"].findtext("system-out") == "a WARN: 3%"
    assert cases["b"].find("system-out") is None and cases["c"].find("system-out") is None
