"""The failure text: what pytest prints and GitLab shows for an objective, from its record.

GitLab shows only a testcase's name and failure text in a merge request, so the failure
text carries everything: verdict, value against threshold, window, evaluation time, backend
and the resolved queries. It also makes the short value phrase of the tables.
"""

from __future__ import annotations

import re

from pytest_rollout_slo.quantity import Unit, format_time, format_value
from pytest_rollout_slo.spec.model import NO_BOUNDS, Bounds
from pytest_rollout_slo.verdict.confidence import family_text
from pytest_rollout_slo.verdict.instant import Observation, Verdict, violation
from pytest_rollout_slo.verdict.record import VerdictRecord


def _compare(observation: Observation, bounds: Bounds, unit: Unit,
             warn: Bounds = NO_BOUNDS) -> str:
    value = format_value(observation.value, unit)
    if observation.missing or observation.value is None:
        return f"no data ({observation.reason})"
    broken = violation(observation.value, bounds)
    if broken == "min":
        return f"{value} < min {format_value(bounds.min, unit)}"
    if broken == "max":
        return f"{value} > max {format_value(bounds.max, unit)}"
    warned = violation(observation.value, warn)
    if warned == "min":
        return (f"{value} < warn min {format_value(warn.min, unit)} "
                f"(bounds {bounds.text(unit)})")
    if warned == "max":
        return (f"{value} > warn max {format_value(warn.max, unit)} "
                f"(bounds {bounds.text(unit)})")
    return f"{value} within {bounds.text(unit)}"


def _parts(observation: Observation) -> str:
    if observation.parts is None:
        return ""
    numerator, denominator = (format_value(p, "number") for p in observation.parts)
    return f"numerator {numerator}, denominator {denominator}"


def value_text(record: VerdictRecord, *, with_baseline: bool = True) -> str:
    """The measured value(s) in one short line: ``6.20%`` or ``eu 6.20%, us 1.00%``.

    Without ``with_baseline``, a baseline's value is left to a column of its own.
    """
    if record.verdict is Verdict.ERROR or (record.verdict is Verdict.TRACKED and record.error):
        return "error"
    if record.gate_value and (with_baseline or record.baseline_value is None
                              or record.value is None):
        return record.gate_value
    values = record.values
    if not values:
        return "no data"
    if record.total == 1:
        only = values[0]
        return "no data" if only.missing else format_value(only.value, record.unit)
    shown = ", ".join(
        f"{o.label_text()} {'no data' if o.missing else format_value(o.value, record.unit)}"
        for o in values[:_VALUES_SHOWN])
    more = record.total - _VALUES_SHOWN
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def failure_text(record: VerdictRecord) -> str:
    """The plain-text verdict shown by pytest and GitLab."""
    lines = [_headline(record)]
    context = f"window {record.window}, " if record.window else ""
    context += f"at {format_time(record.at)}"
    judged = record.verdict is not Verdict.ERROR and not record.error
    if judged and record.details:
        lines.append(f"  ({context})")
        lines.extend(record.details)
    elif judged and record.total == 1:
        parts = _parts(record.values[0])
        lines.append(f"  {parts} ({context})" if parts else f"  ({context})")
    else:
        # Every value was checked; the text lists the first flagged ones, in answer order.
        for observation in record.flagged if judged else ():
            parts = _parts(observation)
            compared = _compare(observation, record.bounds, record.unit, record.warn)
            lines.append(f"  {observation.label_text() or '(no labels)'}: {compared}"
                         + (f" ({parts})" if parts else ""))
        hidden = record.flagged_total - len(record.flagged)
        if judged and hidden:
            lines.append(f"  ... and {hidden} more outside the bounds or without data")
        lines.append(f"  ({context})")
    if record.verdict is Verdict.NO_DATA:
        lines.append(f"  on_no_data: {record.on_no_data}")
    if record.verdict is Verdict.INCONCLUSIVE:
        lines.append(f"  on_inconclusive: {record.on_inconclusive}")
    if record.confidence:
        family = (f"; {family_text(record.adjustment, record.family)}"
                  if record.adjustment else "")
        lines.append(f"  confidence: {record.confidence}{family}")
    lines.append(f"  backend {record.backend}")
    for part, query in record.queries.items():
        lines.append(f"  {part} query: {query}" if part != "query" else f"  query: {query}")
    bound = bound_parameters(record)
    if bound:
        lines.append(f"  parameters: {bound}")
    for warning in record.backend_warnings:
        lines.append(f"  backend warning: {warning}")
    if record.link:
        lines.append(f"  graph: {record.link}")
    return "\n".join(lines)


_TIME_PARAMETERS = ("at", "window_start", "window_end")
_VALUES_SHOWN = 10  # in the value column and slo.value


def bound_parameters(record: VerdictRecord) -> str:
    """``:stage='beta', :window_start=2026-...`` for the named values the queries use."""
    used = {name for query in record.queries.values()
            for name in re.findall(r"(?<![\w:]):([A-Za-z_]\w*)", query)}
    shown = []
    for name in sorted(used & set(record.parameters)):
        value = record.parameters[name]
        text = (format_time(float(value)) if name in _TIME_PARAMETERS
                else repr(value) if isinstance(value, str) else str(value))
        shown.append(f":{name}={text}")
    return ", ".join(shown)


def _headline(record: VerdictRecord) -> str:
    title, unit = record.title, record.unit
    if record.verdict is Verdict.ERROR:
        return f"{title} ERROR: {record.error}"
    if record.verdict is Verdict.NO_DATA:
        return f"{title} NO DATA: {record.reason}"
    if record.verdict is Verdict.TRACKED:
        # Reported, never judged: the value, or why there is none, and no bound.
        if record.error:
            return f"{title} TRACKED (not judged): error: {record.error}"
        if record.reason or not record.values:
            return f"{title} TRACKED (not judged): no data ({record.reason or 'no value'})"
        return f"{title} TRACKED (not judged): {value_text(record)}"
    word = {Verdict.FAIL: "FAILED", Verdict.WARN: "WARN",
            Verdict.INCONCLUSIVE: "INCONCLUSIVE"}.get(record.verdict, "PASSED")
    if record.verdict is Verdict.WARN and record.strict:
        word = "FAILED (warning under --slo-strict)"
    if record.headline:
        return f"{title} {word}: {record.headline}"
    if record.total == 1:
        return f"{title} {word}: " + _compare(record.values[0], record.bounds, unit,
                                             record.warn)
    if record.verdict is Verdict.FAIL:
        return (f"{title} FAILED: {record.violations} of {record.total} values outside "
                f"{record.bounds.text(unit)}")
    if record.verdict is Verdict.WARN:
        return (f"{title} {word}: {record.warned} of {record.total} values outside "
                f"the warning level {record.warn.text(unit)}")
    return f"{title} PASSED: all {record.total} values within {record.bounds.text(unit)}"


__all__ = ["bound_parameters", "failure_text", "value_text"]
