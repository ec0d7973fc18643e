"""The Markdown summary of a run, for a merge request note or a CI job summary.

Built from the objective records alone, with no clock and no random order: the same run
gives the same text, whatever the order of the records. The layout::

    ## ❌ SLO gate **beta** failed: conflict-resolver, 4 of 7 objectives failed (at ...Z)

    Verdicts: 3 fail, 1 error, 1 no data, 1 warn, 1 pass.

    | Objective | Value | Threshold | Change vs baseline | Verdict |
    ...one row per objective: fail, then error, no data, warn, pass; by name within each

    **Checks before judging**
    - Exposure at beta: the canary carried 10.4% of 1,000 users; the flag promises 10% ...
    - Freshness: the metric http_requests_total: newest sample ..., 1m before ... (bound 5m)

    <details><summary>❌ tool_success[beta-tool=read_file] FAILED: 91.85% < min 93.00%</summary>
    ...the full failure text, as in the JUnit report, for every objective that did not pass
    </details>

    <sub>pytest-rollout-slo 0.1.0 · backends: ...</sub>

    <!-- pytest-rollout-slo:conflict-resolver:beta -->

The first line holds the overall verdict (emoji and word), stage, service(s), how many
objectives failed and the evaluation time. The "Change vs baseline" column appears only when
an objective has a baseline. An objective's name links to the backend's graph of its query
where the backend has one. The last line is a hidden marker naming service(s) and stage, so a
tool can find and update its one note per merge request instead of adding a new one.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from urllib.parse import quote

import tabulate as tabulate_module
from tabulate import tabulate

from pytest_rollout_slo.backends.freshness import freshness_summary
from pytest_rollout_slo.quantity import Unit, format_time, format_value
from pytest_rollout_slo.report.run import CLEAN, VERDICT_ORDER, RunMeta, RunVerdict, overall_verdict
from pytest_rollout_slo.report.table import threshold_text, verdict_label
from pytest_rollout_slo.report.text import failure_text, value_text
from pytest_rollout_slo.verdict.confidence import family_text
from pytest_rollout_slo.verdict.exposure import exposure_summary
from pytest_rollout_slo.verdict.instant import Significance, Verdict
from pytest_rollout_slo.verdict.record import VerdictRecord

_HEADLINES: dict[RunVerdict, tuple[str, str]] = {
    "pass": ("✅", "passed"), "warn": ("⚠️", "passed with warnings"),
    "partial": ("🟠", "judged in part"), "fail": ("❌", "failed"),
    "error": ("❌", "did not complete")}


def markdown_report(meta: RunMeta, records: Sequence[VerdictRecord],
                    flag_lines: Sequence[str] = ()) -> str:
    """The Markdown summary; identical input gives identical text, whatever the order.

    ``flag_lines`` say what the feature-flag guard did (a rollback, or why none); they are
    listed under "Feature flag" before the footer.
    """
    verdict = overall_verdict(meta, records)
    rows = sorted(records, key=_row_key)
    lines = [_headline(meta, records, verdict), ""]
    counts = Counter(r.verdict for r in records)
    if counts:
        shown = [f"{counts[v]} {v.value.replace('_', ' ')}" for v in VERDICT_ORDER if counts[v]]
        lines += [f"Verdicts: {', '.join(shown)}.", ""]
    if rows:
        lines += _table(meta, rows)
    lines += _check_lines(rows)
    lines += _statistics(rows)
    for record in rows:
        if record.verdict in CLEAN:
            continue
        message = failure_text(record)
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", message)),
                                     default=0))
        lines += [f"<details><summary>{_icon(record)} "
                  f"{html.escape(message.splitlines()[0], quote=False)}</summary>", "",
                  f"{fence}text", message, fence, "", "</details>", ""]
    if flag_lines:
        lines += ["**Feature flag**", "", *(f"- {_cell(line)}" for line in flag_lines), ""]
    footer = f"pytest-rollout-slo {meta.plugin_version}"
    if meta.backends:
        footer += f" · backends: {'; '.join(meta.backends)}"
    lines += [f"<sub>{_cell(footer)}</sub>", "", _marker(meta), ""]
    return "\n".join(lines)


def _headline(meta: RunMeta, records: Sequence[VerdictRecord], verdict: RunVerdict) -> str:
    icon, word = _HEADLINES[verdict]
    total = len(records)
    noun = "objective" if total == 1 else "objectives"
    failed = sum(r.outcome == "failed" for r in records)
    if meta.usage_error:
        detail = f"the gate did not run: {_cell(meta.usage_error)}"
    elif verdict == "partial":
        detail = (f"{total} {noun} judged, {len(meta.not_run)} not run ({meta.partial}); "
                  "a partial run never promotes")
    elif verdict == "error":
        status = f"exit status {meta.exit_status}" if meta.exit_status is not None else ""
        detail = (f"the run ended early ({status or 'interrupted'}), {total} {noun} reported"
                  if total else "no objective was checked")
    elif verdict == "fail" and not failed:
        detail = f"all {total} {noun} held, but other tests of the session failed"
    elif verdict == "fail":
        detail = f"{failed} of {total} {noun} failed"
    elif verdict == "warn":
        notes = Counter("skipped" if r.outcome == "skipped" else r.verdict.value.replace("_", " ")
                        for r in records if r.verdict not in CLEAN or r.outcome != "passed")
        detail = (f"{total} {noun}, with "
                  + ", ".join(f"{n} {what}" for what, n in sorted(notes.items())))
    else:
        detail = f"all {total} {noun} hold" if total > 1 else "the objective holds"
    services = ", ".join(meta.services) or "(no service)"
    return (f"## {icon} SLO gate **{_cell(meta.stage)}** {word}: {_cell(services)}, {detail} "
            f"(at {format_time(meta.at)})")


def _table(meta: RunMeta, rows: Sequence[VerdictRecord]) -> list[str]:
    with_service = len(meta.services) > 1 or len({r.service for r in rows}) > 1
    with_change = any("baseline" in r.limit_map for r in rows)
    headers = [*(["Service"] if with_service else []), "Objective", "Value", "Threshold",
               *(["Change vs baseline"] if with_change else []), "Verdict"]
    cells = [[*([_cell(record.service)] if with_service else []),
              _objective_cell(record), _cell(value_text(record, with_baseline=False)),
              _cell(threshold_text(record)),
              *([_cell(_change_text(record))] if with_change else []),
              f"{_icon(record)} {verdict_label(record)}"] for record in rows]
    lines = [_github_table(cells, headers), ""]
    if any(r.link for r in rows):
        lines += ["Objective names link to the backend's graph of the query at the evaluation "
                  "time.", ""]
    return lines


def _check_lines(rows: Sequence[VerdictRecord]) -> list[str]:
    """The checks made before judging (exposure, freshness), each said once."""
    said: dict[str, None] = {}
    for record in rows:
        exposure = record.checks.get("exposure")
        if exposure is not None:
            said[f"Exposure at {record.stage}: {exposure_summary(exposure)}"] = None
        for item in record.checks.get("freshness", ()):
            said[f"Freshness: {freshness_summary(item)}"] = None
    if not said:
        return []
    return ["**Checks before judging**", "", *(f"- {_cell(line)}" for line in said), ""]


def _statistics(rows: Sequence[VerdictRecord]) -> list[str]:
    """The tests behind the confidence verdicts, so that a reviewer can redo the arithmetic."""
    judged = [r for r in rows if r.tests]
    if not judged:
        return []
    headers = ["Objective", "Test", "Counts", "Estimate", "Interval", "Against",
               "p breach", "p holding", "Verdict"]
    cells = []
    for record in judged:
        for test in record.tests:
            name = _objective_cell(record) + (f" {_cell(_labels(test.labels))}"
                                              if test.labels else "")
            estimate, low, high = (_statistic(v, test, record.unit)
                                   for v in (test.estimate, test.low, test.high))
            adjusted = f" ({test.adjusted:.3g} adjusted)" if test.adjusted is not None else ""
            cells.append([name, f"{test.test}, {test.method}",
                          " / ".join(f"{c:,}" for c in test.counts), estimate,
                          f"{test.level * 100:g}%: {low} to {high}", _cell(test.against),
                          f"{test.p_fail:.3g}{adjusted}", f"{test.p_pass:.3g}",
                          test.verdict.value])
    lines = ["**Statistics**", "", _github_table(cells, headers), ""]
    family = next((r for r in judged if r.adjustment), None)
    if family is not None:
        lines += [f"Breach p-values of the run: {family_text(family.adjustment, family.family)}.",
                  ""]
    return lines


def _statistic(value: float, test: Significance, unit: Unit) -> str:
    """A test's estimate or interval end in its own terms: a ratio of rates or durations as
    ``1.20x``, a duration or shift in the objective's unit, a share as a percentage."""
    if test.test == "rate ratio" or test.method.endswith("ratio"):
        return f"{value:.3g}x"
    if test.test in ("mann-whitney", "histogram buckets", "histogram quantiles"):
        return format_value(value, unit)
    return format_value(value, "percent")


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in labels) + "}"


def _github_table(cells: list[list[str]], headers: list[str]) -> str:
    """tabulate's ``github`` table, padded by code points.

    tabulate measures wide characters (the verdict emoji) with wcwidth when that happens to be
    installed, which would make the same run's bytes depend on the environment; the padding
    only aligns the Markdown source, so it counts code points, as tabulate does without it.
    """
    wide = tabulate_module.WIDE_CHARS_MODE
    tabulate_module.WIDE_CHARS_MODE = False
    try:
        return tabulate(cells, headers, tablefmt="github", disable_numparse=True)
    finally:
        tabulate_module.WIDE_CHARS_MODE = wide


def _row_key(record: VerdictRecord) -> tuple[int, str, str, str, str]:
    return (VERDICT_ORDER.index(record.verdict), record.service, record.objective,
            record.matrix, record.nodeid)


def _objective_cell(record: VerdictRecord) -> str:
    name = f"`{record.objective.replace('`', '')}`"
    if record.link:
        # A URL may not hold a space, parentheses or a pipe inside a Markdown table link.
        name = f"[{name}]({quote(record.link, safe=_URL_SAFE)})"
    return f"{name} ({_cell(record.matrix)})" if record.matrix else name


def _change_text(record: VerdictRecord) -> str:
    baseline = record.limit_map.get("baseline")
    if baseline is None:
        return ""
    against, change = baseline.text, record.change
    if record.baseline_value is None:
        return f"{change} against {against}" if change else f"against {against}"
    before = format_value(record.baseline_value, record.unit)
    return f"{change} against {before} ({against})" if change else f"baseline {before} ({against})"


def _icon(record: VerdictRecord) -> str:
    if record.outcome == "failed":
        return "❌"
    if record.outcome == "skipped":
        return "⏭️"
    if record.verdict is Verdict.TRACKED:
        return "📈"
    return "✅" if record.verdict is Verdict.PASS else "⚠️"


_URL_SAFE = ":/?#@!$&'*+,;=%~-._"
_SPECIAL = re.compile(r"[\\`*\[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipe, no markup, no line break."""
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), text.replace("&", "&amp;"))
    return re.sub(r"\r\n|\r|\n", "<br>", escaped)


def _marker(meta: RunMeta) -> str:
    services = ",".join(quote(s, safe="") for s in meta.services)
    return f"<!-- pytest-rollout-slo:{services}:{quote(meta.stage, safe='')} -->"


__all__ = ["markdown_report"]
