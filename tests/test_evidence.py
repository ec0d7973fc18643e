"""The Markdown summary and the JSON evidence file, compared byte for byte with expected files.

The records are those of real runs (``pytest --slo-stage=ga examples/quickstart`` and a
beta gate with warn, matrix, baseline, several series, no data and an unreachable
Prometheus), with the checkout path replaced by a CI one; the failure texts in the
expected files are rendered from them, as the run renders them. Run with
``SLO_REGENERATE_EXPECTED=1`` to rewrite ``tests/expected/evidence-*`` after a deliberate
change of format, then read the diff.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo.quantity import Unit
from pytest_rollout_slo.report.evidence import (
    JSON_SCHEMA_VERSION,
    json_report,
    write_json,
    write_markdown,
)
from pytest_rollout_slo.report.markdown import markdown_report
from pytest_rollout_slo.report.run import RunMeta, overall_verdict, run_meta
from pytest_rollout_slo.spec.model import NO_BOUNDS, Bounds
from pytest_rollout_slo.verdict.instant import Evaluation, Observation, Verdict
from pytest_rollout_slo.verdict.record import Limit, VerdictRecord

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
SECONDS = {"2d": 172800.0, "24h": 86400.0}


def record(objective: str, verdict: str, outcome: str, *, stage: str, window: str, unit: Unit,
           values: Sequence[Observation] = (), query: str = "",
           ratio: tuple[str, str] | None = None, low: float | None = None,
           high: float | None = None, warn: Bounds = NO_BOUNDS, matrix: str = "",
           title: str = "", limits: Sequence[Limit] = (), backend: str = EVENTS,
           link: str | None = None, error: str = "", reason: str = "", headline: str = "",
           details: Sequence[str] = (), gate_value: str = "", change: str = "",
           baseline_value: float | None = None,
           parameters: dict[str, str | int | float] | None = None,
           nodeid: str = "") -> VerdictRecord:
    """A record as an objective item builds it: planned, then judged (or an error)."""
    title = title or f"{objective}[{stage}]"
    bounds = Bounds(low, high)
    bound: dict[str, str | int | float] = {
        "stage": stage, "at": AT, "window": SECONDS[window],
        "window_start": AT - SECONDS[window], "window_end": AT, **(parameters or {})}
    planned = VerdictRecord(
        nodeid=nodeid or f"{GATES}{title}", title=title, service="conflict-resolver",
        objective=objective, stage=stage, matrix=matrix, unit=unit, bounds=bounds,
        on_no_data="pass", strict=False, at=AT, window=window, backend=backend,
        queries={"numerator": ratio[0], "denominator": ratio[1]} if ratio else {"query": query},
        parameters=bound, limits=tuple(limits), link=link, outcome=outcome)
    if error:
        return replace(planned, error=error)
    evaluation = Evaluation(Verdict(verdict), bounds, tuple(values), reason, warn, headline,
                            tuple(details), gate_value, change, baseline_value)
    return planned.judged(evaluation)


def ratio_value(numerator: int, denominator: int) -> Observation:
    # Backends answer counts as floats.
    return Observation((), numerator / denominator, parts=(float(numerator), float(denominator)))


def count(table: str, where: str, stage: str = ":stage") -> str:
    return f"SELECT count(*) FROM {table} WHERE stage = {stage}{where}" + WINDOW


def ga(name: str, values: Sequence[Observation], **kwargs: Any) -> VerdictRecord:
    return record(name, "pass", "passed", stage="ga", window="24h", values=values,
                  nodeid=f"{QUICKSTART}{name}[ga]", **kwargs)


def all_passed() -> list[VerdictRecord]:
    """``--slo-stage=ga examples/quickstart`` without its failing objective."""
    return [
        ga("error_rate", [ratio_value(15, 1096)], unit="percent", high=0.05,
           ratio=(count("agent_requests", " AND outcome = 'error'"), count("agent_requests", ""))),
        ga("tool_call_latency_p95", [Observation((), 3.408)], unit="seconds", high=10,
           query=P95.format(t="tool_calls")),
        ga("agent_response_time_p95", [Observation((), 11.452)], unit="seconds", high=30,
           query=P95.format(t="agent_responses")),
        ga("positive_ratings", [ratio_value(177, 206)], unit="percent", low=0.6,
           ratio=(count("ratings", " AND thumbs = 'up'"), count("ratings", ""))),
        ga("tool_call_success_rate", [ratio_value(1544, 1633)], unit="percent", low=0.8,
           ratio=(count("tool_calls", " AND success = 1"), count("tool_calls", ""))),
    ]


def beta(name: str, verdict: str, outcome: str, **kwargs: Any) -> VerdictRecord:
    return record(name, verdict, outcome, stage="beta", window="2d", **kwargs)


SUCCESS = ("SELECT count(*) FROM tool_calls WHERE tool = :tool AND success = 1" + WINDOW,
           "SELECT count(*) FROM tool_calls WHERE tool = :tool" + WINDOW)
PARAMETERS = ":window_end=2026-11-20T12:00:00Z, :window_start=2026-11-18T12:00:00Z"
LATENCY = ('histogram_quantile(0.95, sum by (le) (rate(tool_call_duration_seconds_bucket'
           '{feature="x|y"}[2d])))')
LINK = ("http://prometheus:9090/graph?g0.expr=histogram_quantile%280.95%2C%20sum%20by%20%28le"
        "%29%20%28rate%28tool_call_duration_seconds_bucket%7Bfeature%3D%22x%7Cy%22%7D%5B2d%5D"
        "%29%29%29&g0.tab=1&g0.moment_input=2026-11-20%2012%3A00%3A00")
RATINGS = (count("ratings", " AND thumbs = 'up'", ":cohort"), count("ratings", "", ":cohort"))
PROMETHEUS = "metrics (prometheus, http://prometheus:9090)"


def tool_success(tool: str, numerator: int, denominator: int) -> VerdictRecord:
    return beta("tool_success", "fail", "failed", values=[ratio_value(numerator, denominator)],
                title=f"tool_success[beta-tool={tool}]", matrix=f"tool={tool}", unit="percent",
                low=0.93, ratio=SUCCESS, parameters={"tool": tool})


def mixed() -> list[VerdictRecord]:
    """A beta gate with every verdict: warn, fail (matrix, several series), no data, error."""
    errors = (count("agent_requests", " AND outcome = 'error'", ":cohort"),
              count("agent_requests", "", ":cohort"))
    by_stage = ("SELECT stage, count(*) FROM button_clicks WHERE ts >= :window_start AND "
                "ts < :window_end GROUP BY stage")
    return [
        beta("error_rate", "warn", "passed", values=[ratio_value(29, 2218)], unit="percent",
             high=0.05, warn=Bounds(None, 0.01), ratio=errors, parameters={"cohort": "ga"}),
        tool_success("read_file", 1667, 1815),
        tool_success("apply_resolution", 1753, 1908),
        beta("ratings_vs_beta", "pass", "passed", values=[ratio_value(354, 412)],
             unit="percent", limits=[Limit("baseline", "cohort=beta"),
                                     Limit("max_decrease", "10%", 0.1)],
             ratio=RATINGS, gate_value="85.92% vs baseline 76.65%", baseline_value=0.7665,
             parameters={"cohort": "ga"}),
        beta("adoption_by_stage", "fail", "failed",
             values=[Observation((("stage", s),), v)
                     for s, v in (("beta", 445.0), ("ga", 645.0), ("internal", 415.0))],
             unit="number", high=100, query=by_stage),
        beta("chat_turns_future", "no_data", "passed",
             values=[Observation((), None, "the query returned NULL")],
             reason="the query returned NULL", unit="number", high=10,
             query="SELECT avg(turns) FROM chat_sessions WHERE ts >= :at"),
        beta("latency_p95", "error", "failed", unit="seconds", high=10, query=LATENCY,
             backend=PROMETHEUS, link=LINK,
             error="connection refused by http://prometheus:9090/api/v1/query; is the server "
                   "running and is url right?"),
    ]


def baselines() -> list[VerdictRecord]:
    """A failed baseline, one with a change, and a plain objective."""
    failed = beta(
        "ratings_vs_beta", "fail", "failed", values=[ratio_value(354, 412)], unit="percent",
        limits=[Limit("baseline", "cohort=beta"), Limit("max_increase", "5%", 0.05)],
        ratio=RATINGS, parameters={"cohort": "ga"},
        headline="85.92% is up 12.1% (9.27 points) against the baseline 76.65% (cohort=beta); "
                 "max_increase is 5%",
        details=["  value: 85.92% against baseline 76.65% (cohort=beta): up 12.1% "
                 "(9.27 points)"],
        gate_value="85.92% vs baseline 76.65%", change="up 12.1% (9.27 points)",
        baseline_value=0.7665)
    week = beta("latency_week_over_week", "pass", "passed", values=[Observation((), 3.408)],
                unit="seconds", high=10,
                limits=[Limit("baseline", "7d earlier"), Limit("max_increase", "0.5s", 0.5)],
                gate_value="3.41s vs baseline 3.5s", change="down 2.6% (92ms)",
                baseline_value=3.5, query=P95.format(t="tool_calls"))
    plain = beta("tool_call_latency_p95", "pass", "passed", values=[Observation((), 3.408)],
                 unit="seconds", high=10, query=P95.format(t="tool_calls"))
    return [plain, week, failed]


def escaping() -> list[VerdictRecord]:
    """Label values with pipes, markup, a line break and a code fence."""
    query = 'sum by (route) (rate(http_errors_total{route=~"/a|/b"}[${window}]))'
    return [beta(
        "route_errors", "fail", "failed",
        values=[Observation((("route", "/a|b"),), 12.0),
                Observation((("route", "*x* <y>\n```"),), 3.0)],
        title="route_errors[beta-team=a|b]", matrix="team=a|b", unit="number", high=2,
        query=query, backend=PROMETHEUS, link="http://prometheus:9090/graph?g0.expr=a (b)|c")]


def meta(records: Sequence[VerdictRecord], stage: str, exit_status: int) -> RunMeta:
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


def test_record_crosses_processes_unchanged() -> None:
    # What an xdist worker sends is what the controller renders from.
    for build in (all_passed, mixed, baselines, escaping):
        for item in build():
            assert VerdictRecord.from_dict(item.to_dict()) == item


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
    records = [beta("x", verdict, outcome, unit="number", high=1, nodeid=f"s.yaml::x{i}",
                    values=[Observation((), 0.5 if verdict != "no_data" else None)])
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


@pytest.mark.parametrize("wide", [True, False])
def test_markdown_bytes_do_not_depend_on_wcwidth(wide: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # tabulate measures emoji with wcwidth when it is installed; the file must not change.
    import tabulate

    monkeypatch.setattr(tabulate, "WIDE_CHARS_MODE", wide)
    records = mixed()
    expected = (EXPECTED / "evidence-mixed.md").read_text(encoding="utf-8")
    assert markdown_report(meta(records, "beta", 1), records) == expected
    assert tabulate.WIDE_CHARS_MODE is wide  # left as it was found
