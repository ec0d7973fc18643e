"""The Markdown summary and the JSON evidence file, compared byte for byte with expected files.

The properties are those of real runs (``pytest --slo-stage=ga examples/quickstart`` and a
beta gate with warn, matrix, baseline, several series, no data and an unreachable
Prometheus), with the checkout path replaced by a CI one. Run with
``SLO_REGENERATE_EXPECTED=1`` to rewrite ``tests/expected/evidence-*`` after a deliberate
change of format, then read the diff.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo.report.evidence import (
    JSON_SCHEMA_VERSION,
    ObjectiveRecord,
    RunMeta,
    json_report,
    markdown_report,
    overall_verdict,
    run_meta,
    write_json,
    write_markdown,
)

EXPECTED = Path(__file__).parent / "expected"
REGENERATE = os.environ.get("SLO_REGENERATE_EXPECTED") == "1"

AT = 1795176000.0  # 2026-11-20T12:00:00Z
EVENTS = "events (sqlite, /builds/ai/conflict-resolver/examples/quickstart/events.db)"
WINDOW = " AND ts >= :window_start AND ts < :window_end"
P95 = ("SELECT duration_s FROM {t} WHERE stage = :stage" + WINDOW + " ORDER BY duration_s "
       "LIMIT 1 OFFSET (\n  SELECT (95 * count(*) + 99) / 100 - 1 FROM {t}\n  WHERE stage = "
       ":stage" + WINDOW + ")")
QUICKSTART = "examples/quickstart/rollout.slo.yaml::"
GATES = "slo_specs/rollout_gates.yaml::"


def props(objective: str, verdict: str, value: str, *, stage: str, unit: str, window: str,
          observations: str, query: str = "", ratio: tuple[str, str] | None = None,
          low: str = "", high: str = "", matrix: str = "",
          extra: Sequence[tuple[str, str]] = (), message: str = "", link: str = "",
          backend: str = EVENTS) -> list[tuple[str, object]]:
    """The properties in the order ``report.properties`` writes them."""
    result: list[tuple[str, object]] = [
        ("slo.service", "conflict-resolver"), ("slo.stage", stage),
        ("slo.objective", objective), *([("slo.matrix", matrix)] if matrix else []),
        ("slo.verdict", verdict), ("slo.value", value), ("slo.min", low), ("slo.max", high),
        *extra, ("slo.unit", unit), ("slo.backend", backend)]
    if ratio is not None:
        result += [("slo.query", f"({ratio[0]}) / ({ratio[1]})"),
                   ("slo.numerator_query", ratio[0]), ("slo.denominator_query", ratio[1])]
    else:
        result.append(("slo.query", query))
    result += [("slo.window", window), ("slo.at", "2026-11-20T12:00:00Z")]
    if message:
        result.append(("slo.message", message))
    if link:
        result.append(("slo.link", link))
    result.append(("slo.observations", observations))
    return result


def count(table: str, where: str, stage: str = ":stage") -> str:
    return f"SELECT count(*) FROM {table} WHERE stage = {stage}{where}" + WINDOW


def ga(name: str, value: str, observations: str, **kwargs: Any) -> ObjectiveRecord:
    record = props(name, "pass", value, stage="ga", window="24h", observations=observations,
                   **kwargs)
    return ObjectiveRecord.from_properties(record, "passed", f"{QUICKSTART}{name}[ga]")


def all_passed() -> list[ObjectiveRecord]:
    """``--slo-stage=ga examples/quickstart`` without its failing objective."""
    return [
        ga("error_rate", "1.37%", '[{"denominator": 1096.0, "labels": {}, "numerator": 15.0, '
           '"value": 0.013686131386861315}]', unit="percent", high="5.00%",
           ratio=(count("agent_requests", " AND outcome = 'error'"), count("agent_requests", ""))),
        ga("tool_call_latency_p95", "3.41s", '[{"labels": {}, "value": 3.408}]',
           unit="seconds", high="10s", query=P95.format(t="tool_calls")),
        ga("agent_response_time_p95", "11.45s", '[{"labels": {}, "value": 11.452}]',
           unit="seconds", high="30s", query=P95.format(t="agent_responses")),
        ga("positive_ratings", "85.92%", '[{"denominator": 206.0, "labels": {}, "numerator": '
           '177.0, "value": 0.8592233009708737}]', unit="percent", low="60.00%",
           ratio=(count("ratings", " AND thumbs = 'up'"), count("ratings", ""))),
        ga("tool_call_success_rate", "94.55%", '[{"denominator": 1633.0, "labels": {}, '
           '"numerator": 1544.0, "value": 0.9454990814451929}]', unit="percent", low="80.00%",
           ratio=(count("tool_calls", " AND success = 1"), count("tool_calls", ""))),
    ]


def beta(name: str, verdict: str, outcome: str, value: str, observations: str,
         title: str = "", **kwargs: Any) -> ObjectiveRecord:
    record = props(name, verdict, value, stage="beta", window="2d", observations=observations,
                   **kwargs)
    return ObjectiveRecord.from_properties(record, outcome,
                                           f"{GATES}{title or f'{name}[beta]'}")


SUCCESS = ("SELECT count(*) FROM tool_calls WHERE tool = :tool AND success = 1" + WINDOW,
           "SELECT count(*) FROM tool_calls WHERE tool = :tool" + WINDOW)
PARAMETERS = ":window_end=2026-11-20T12:00:00Z, :window_start=2026-11-18T12:00:00Z"
LATENCY = ('histogram_quantile(0.95, sum by (le) (rate(tool_call_duration_seconds_bucket'
           '{feature="x|y"}[2d])))')
LINK = ("http://prometheus:9090/graph?g0.expr=histogram_quantile%280.95%2C%20sum%20by%20%28le"
        "%29%20%28rate%28tool_call_duration_seconds_bucket%7Bfeature%3D%22x%7Cy%22%7D%5B2d%5D"
        "%29%29%29&g0.tab=1&g0.moment_input=2026-11-20%2012%3A00%3A00")
RATINGS = (count("ratings", " AND thumbs = 'up'", ":cohort"), count("ratings", "", ":cohort"))


def tool_success(tool: str, value: str, numerator: int, denominator: int) -> ObjectiveRecord:
    return beta(
        "tool_success", "fail", "failed", value,
        f'[{{"denominator": {denominator}.0, "labels": {{}}, "numerator": {numerator}.0, '
        f'"value": {numerator / denominator!r}}}]',
        title=f"tool_success[beta-tool={tool}]", matrix=f"tool={tool}", unit="percent",
        low="93.00%", ratio=SUCCESS,
        message=f"tool_success[beta-tool={tool}] FAILED: {value} < min 93.00%\n"
                f"  numerator {numerator}, denominator {denominator} (window 2d, at "
                f"2026-11-20T12:00:00Z)\n  backend {EVENTS}\n"
                f"  numerator query: {SUCCESS[0]}\n  denominator query: {SUCCESS[1]}\n"
                f"  parameters: :tool='{tool}', {PARAMETERS}")


def mixed() -> list[ObjectiveRecord]:
    """A beta gate with every verdict: warn, fail (matrix, several series), no data, error."""
    errors = (count("agent_requests", " AND outcome = 'error'", ":cohort"),
              count("agent_requests", "", ":cohort"))
    by_stage = ("SELECT stage, count(*) FROM button_clicks WHERE ts >= :window_start AND "
                "ts < :window_end GROUP BY stage")
    return [
        beta("error_rate", "warn", "passed", "1.31%", '[{"denominator": 2218.0, "labels": {}, '
             '"numerator": 29.0, "value": 0.013074842200180343}]', unit="percent",
             high="5.00%", extra=[("slo.warn_max", "1.00%")], ratio=errors,
             message="error_rate[beta] WARN: 1.31% > warn max 1.00% (bounds max 5.00%)\n"
                     "  numerator 29, denominator 2218 (window 2d, at 2026-11-20T12:00:00Z)\n"
                     f"  backend {EVENTS}\n  numerator query: {errors[0]}\n"
                     f"  denominator query: {errors[1]}\n"
                     f"  parameters: :cohort='ga', {PARAMETERS}"),
        tool_success("read_file", "91.85%", 1667, 1815),
        tool_success("apply_resolution", "91.88%", 1753, 1908),
        beta("ratings_vs_beta", "pass", "passed", "85.92% vs baseline 76.65%",
             '[{"denominator": 412.0, "labels": {}, "numerator": 354.0, '
             '"value": 0.8592233009708737}]', unit="percent",
             extra=[("slo.baseline", "cohort=beta"), ("slo.max_decrease", "10%")],
             ratio=RATINGS),
        beta("adoption_by_stage", "fail", "failed",
             '{stage="beta"} 445, {stage="ga"} 645, {stage="internal"} 415',
             '[{"labels": {"stage": "beta"}, "value": 445.0}, {"labels": {"stage": "ga"}, '
             '"value": 645.0}, {"labels": {"stage": "internal"}, "value": 415.0}]',
             unit="number", high="100", query=by_stage,
             message='adoption_by_stage[beta] FAILED: 3 of 3 values outside max 100\n'
                     '  {stage="beta"}: 445 > max 100\n  {stage="ga"}: 645 > max 100\n'
                     '  {stage="internal"}: 415 > max 100\n'
                     '  (window 2d, at 2026-11-20T12:00:00Z)\n'
                     f'  backend {EVENTS}\n  query: {by_stage}\n  parameters: {PARAMETERS}'),
        beta("chat_turns_future", "no_data", "passed", "no data",
             '[{"labels": {}, "reason": "the query returned NULL", "value": null}]',
             unit="number", high="10", query="SELECT avg(turns) FROM chat_sessions WHERE ts >= :at",
             message="chat_turns_future[beta] NO DATA: the query returned NULL\n"
                     "  (window 2d, at 2026-11-20T12:00:00Z)\n  on_no_data: pass\n"
                     f"  backend {EVENTS}\n"
                     "  query: SELECT avg(turns) FROM chat_sessions WHERE ts >= :at\n"
                     "  parameters: :at=2026-11-20T12:00:00Z"),
        beta("latency_p95", "error", "failed", "error", "[]", unit="seconds", high="10s",
             query=LATENCY, backend="metrics (prometheus, http://prometheus:9090)", link=LINK,
             message="latency_p95[beta] ERROR: connection refused by http://prometheus:9090"
                     "/api/v1/query; is the server running and is url right?\n"
                     "  (window 2d, at 2026-11-20T12:00:00Z)\n"
                     "  backend metrics (prometheus, http://prometheus:9090)\n"
                     f"  query: {LATENCY}\n  graph: {LINK}"),
    ]


def baselines() -> list[ObjectiveRecord]:
    """A failed baseline (as a run writes it), one carrying ``slo.change``, and a plain one."""
    failed = beta(
        "ratings_vs_beta", "fail", "failed", "85.92% vs baseline 76.65%",
        '[{"denominator": 412.0, "labels": {}, "numerator": 354.0, '
        '"value": 0.8592233009708737}]', unit="percent",
        extra=[("slo.baseline", "cohort=beta"), ("slo.max_increase", "5%")], ratio=RATINGS,
        message="ratings_vs_beta[beta] FAILED: 85.92% is up 12.1% (9.27 points) against the "
                "baseline 76.65% (cohort=beta); max_increase is 5%\n"
                "  (window 2d, at 2026-11-20T12:00:00Z)\n"
                "  value: 85.92% against baseline 76.65% (cohort=beta): up 12.1% (9.27 points)\n"
                f"  backend {EVENTS}\n  numerator query: {RATINGS[0]}\n"
                f"  denominator query: {RATINGS[1]}\n"
                f"  parameters: :cohort='ga', {PARAMETERS}")
    week = beta("latency_week_over_week", "pass", "passed", "3.41s vs baseline 3.5s",
                '[{"labels": {}, "value": 3.408}]', unit="seconds", high="10s",
                extra=[("slo.baseline", "7d earlier"), ("slo.max_increase", "0.5s"),
                       ("slo.change", "down 2.6% (92ms)")], query=P95.format(t="tool_calls"))
    plain = beta("tool_call_latency_p95", "pass", "passed", "3.41s",
                 '[{"labels": {}, "value": 3.408}]', unit="seconds", high="10s",
                 query=P95.format(t="tool_calls"))
    return [plain, week, failed]


def escaping() -> list[ObjectiveRecord]:
    """Label values with pipes, markup and a line break; a failure text holding a fence."""
    query = 'sum by (route) (rate(http_errors_total{route=~"/a|/b"}[${window}]))'
    return [beta(
        "route_errors", "fail", "failed", '{route="/a|b"} 12, {route="*x* <y>"} 3',
        '[{"labels": {"route": "/a|b"}, "value": 12.0}, {"labels": {"route": "*x* <y>"}, '
        '"value": 3.0}]', title="route_errors[beta-team=a|b]", matrix="team=a|b",
        unit="number", high="2\nper minute", query=query,
        backend="metrics (prometheus, http://prometheus:9090)",
        link="http://prometheus:9090/graph?g0.expr=a (b)|c",
        message="route_errors[beta-team=a|b] FAILED: 2 of 2 values outside max 2\n"
                '  {route="/a|b"}: 12 > max 2\n  ```\n  {route="*x* <y>"}: 3 > max 2')]


def meta(records: Sequence[ObjectiveRecord], stage: str, exit_status: int) -> RunMeta:
    return run_meta(records, stage=stage, at=AT, plugin_version="0.1.0", started=AT + 3.25,
                    finished=AT + 9.5, exit_status=exit_status)


CASES = {
    "all-passed": (all_passed, "ga", 0),
    "mixed": (mixed, "beta", 1),
    "baseline": (baselines, "beta", 1),
    "escaping": (escaping, "beta", 1),
}


def compare(name: str, text: str) -> None:
    path = EXPECTED / name
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.read_text(encoding="utf-8") == text, f"{name} differs; see the module docstring"


@pytest.mark.parametrize("case", CASES)
def test_markdown_matches_expected(case: str) -> None:
    build, stage, status = CASES[case]
    records = build()
    compare(f"evidence-{case}.md", markdown_report(meta(records, stage, status), records))


@pytest.mark.parametrize("case", CASES)
def test_json_matches_expected(case: str) -> None:
    build, stage, status = CASES[case]
    records = build()
    document = json_report(meta(records, stage, status), records)
    compare(f"evidence-{case}.json", json.dumps(document, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("case", CASES)
def test_shuffled_input_gives_identical_output(case: str) -> None:
    build, stage, status = CASES[case]
    records = build()
    shuffled = records[:]
    random.Random(20261120).shuffle(shuffled)
    assert shuffled != records or len(records) < 2
    for rows in (shuffled, records[::-1]):
        assert markdown_report(meta(rows, stage, status), rows) == markdown_report(
            meta(records, stage, status), records)
        assert json_report(meta(rows, stage, status), rows) == json_report(
            meta(records, stage, status), records)


def test_first_line_and_marker() -> None:
    records = mixed()
    lines = markdown_report(meta(records, "beta", 1), records).splitlines()
    assert lines[0] == ("## ❌ SLO gate **beta** failed: conflict-resolver, 4 of 7 objectives "
                        "failed (at 2026-11-20T12:00:00Z)")
    assert lines[-1] == "<!-- pytest-rollout-slo:conflict-resolver:beta -->"


def test_rows_need_attention_first() -> None:
    records = mixed()
    rows = [line for line in markdown_report(meta(records, "beta", 1), records).splitlines()
            if line.startswith("| ") and "Objective" not in line]
    verdicts = [row.rsplit("|", 2)[1].strip().split(" ", 1)[1] for row in rows]
    assert verdicts == ["FAIL", "FAIL", "FAIL", "ERROR", "NO DATA (pass)", "WARN", "PASS"]


def test_records_from_report_properties() -> None:
    record = ObjectiveRecord.from_properties(
        [("slo.verdict", "pass"), ("slo.objective", "x"), ("slo.stage", "ga"),
         ("slo.matrix", "region=eu, tier=1"), ("other", "kept out")],
        "passed", "a.slo.yaml::x[ga-region=eu-tier=1]")
    assert "other" not in record.props
    assert record.title == "x[ga-region=eu-tier=1]"
    assert record.observations == []


def test_json_document_header_and_observations() -> None:
    records = mixed()
    document = json_report(meta(records, "beta", 1), records)
    assert (document["schema"], document["version"]) == ("pytest-rollout-slo/evidence",
                                                          JSON_SCHEMA_VERSION)
    assert document["run"]["verdict"] == "fail"
    assert document["run"]["backends"] == [EVENTS,
                                           "metrics (prometheus, http://prometheus:9090)"]
    by_id = {o["id"]: o for o in document["objectives"]}
    assert list(by_id) == sorted(by_id)
    adoption = by_id[f"{GATES}adoption_by_stage[beta]"]
    assert adoption["observations"][2] == {"labels": {"stage": "internal"}, "value": 415.0}
    assert by_id[f"{GATES}chat_turns_future[beta]"]["observations"][0]["value"] is None


@pytest.mark.parametrize(("outcomes", "status", "expected"), [
    pytest.param([], 4, "error", id="nothing-checked"),
    pytest.param([("pass", "passed")], 2, "error", id="interrupted"),
    pytest.param([("pass", "passed")], 1, "fail", id="another-test-failed"),
    pytest.param([("pass", "passed"), ("no_data", "skipped")], 0, "warn", id="skipped"),
    pytest.param([("warn", "failed")], 1, "fail", id="strict-warn"),
    pytest.param([("pass", "passed")], 0, "pass", id="pass"),
])
def test_overall_verdict(outcomes: list[tuple[str, str]], status: int, expected: str) -> None:
    records = [ObjectiveRecord.from_properties({"slo.verdict": verdict, "slo.objective": "x"},
                                               outcome, f"s.yaml::x{i}")
               for i, (verdict, outcome) in enumerate(outcomes)]
    run = RunMeta(("svc",), "beta", AT, "0.1.0", exit_status=status)
    assert overall_verdict(run, records) == expected
    assert json_report(run, records)["run"]["verdict"] == expected
    headline = markdown_report(run, records).splitlines()[0]
    if not records:
        assert headline.startswith("## ❌ SLO gate **beta** did not complete: svc, no objective")
    if expected == "fail" and all(r.outcome == "passed" for r in records):
        assert "held, but other tests of the session failed" in headline


def test_writers_replace_the_file_whole(tmp_path: Path) -> None:
    records = mixed()
    run = meta(records, "beta", 1)
    markdown, document = tmp_path / "out" / "slo.md", tmp_path / "out" / "slo.json"
    markdown.parent.mkdir()
    markdown.write_text("an older note, longer than nothing\n" * 1000, encoding="utf-8")
    write_markdown(markdown, run, records)
    write_json(document, run, records)
    assert markdown.read_text(encoding="utf-8") == markdown_report(run, records)
    assert json.loads(document.read_text(encoding="utf-8")) == json_report(run, records)
    assert sorted(p.name for p in markdown.parent.iterdir()) == ["slo.json", "slo.md"]


def test_writer_creates_missing_directories(tmp_path: Path) -> None:
    records = all_passed()
    target = tmp_path / "reports" / "nested" / "slo.json"
    write_json(target, meta(records, "ga", 0), records)
    assert json.loads(target.read_text(encoding="utf-8"))["run"]["verdict"] == "pass"


def test_failed_write_leaves_no_temporary_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    records = all_passed()
    with pytest.raises(OSError, match="disk full"):
        write_markdown(tmp_path / "slo.md", meta(records, "ga", 0), records)
    assert list(tmp_path.iterdir()) == []
