"""What people read: the failure text, the JUnit properties and the terminal summary table.

GitLab shows only a testcase's name and failure text in a merge request, so the failure
text carries everything: verdict, value against threshold, window, evaluation time, backend
and the resolved queries. The JUnit ``<properties>`` carry the same facts for tools. The
summary table is built from those properties, so it also works for pytest-xdist reports.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from pytest_rollout_slo.quantity import Unit, format_time, format_value, json_number
from pytest_rollout_slo.spec.model import NO_BOUNDS, Bounds, OnNoData
from pytest_rollout_slo.verdict.instant import Evaluation, Observation, Verdict, violation


@dataclass(frozen=True)
class Outcome:
    """Everything known about one objective at one stage after it ran."""

    service: str
    objective: str
    stage: str
    verdict: Verdict
    bounds: Bounds
    unit: Unit
    on_no_data: OnNoData
    at: float
    window_text: str
    backend: str
    """``metrics (prometheus, http://prometheus:9090)``, already free of secrets."""
    queries: Mapping[str, str]
    evaluation: Evaluation | None = None
    error: str = ""
    link: str | None = None
    warnings: tuple[str, ...] = ()
    parameters: Mapping[str, str | int | float] = field(default_factory=dict)
    """Named values bound to the queries (SQL ``:window_start``); shown when a query uses them."""

    title: str = ""
    """The item's name, ``error_rate[beta]`` or ``error_rate[beta-region=eu]``."""
    limits: tuple[tuple[str, str], ...] = ()
    """Bounds beyond min and max, for the table and JUnit: ``("max_increase", "10%")``."""
    strict: bool = False
    """``--slo-strict``: a warning fails the objective."""
    matrix: str = ""
    """The matrix combination, ``region=eu``; empty without a matrix."""


def threshold_text(bounds: Bounds, unit: Unit) -> str:
    if bounds.empty:
        return "no bounds"
    if bounds.min is not None and bounds.max is not None:
        return f"min {format_value(bounds.min, unit)}, max {format_value(bounds.max, unit)}"
    if bounds.min is not None:
        return f"min {format_value(bounds.min, unit)}"
    return f"max {format_value(bounds.max, unit)}"


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
                f"(bounds {threshold_text(bounds, unit)})")
    if warned == "max":
        return (f"{value} > warn max {format_value(warn.max, unit)} "
                f"(bounds {threshold_text(bounds, unit)})")
    return f"{value} within {threshold_text(bounds, unit)}"


def _parts(observation: Observation) -> str:
    if observation.parts is None:
        return ""
    numerator, denominator = (format_value(p, "number") for p in observation.parts)
    return f"numerator {numerator}, denominator {denominator}"


def value_text(outcome: Outcome) -> str:
    """The measured value(s) in one short line: ``6.20%`` or ``eu 6.20%, us 1.00%``."""
    if outcome.verdict is Verdict.ERROR or outcome.evaluation is None:
        return "error"
    if outcome.evaluation.value_text:
        return outcome.evaluation.value_text
    observations = outcome.evaluation.observations
    if not observations:
        return "no data"
    if len(observations) == 1:
        only = observations[0]
        return "no data" if only.missing else format_value(only.value, outcome.unit)
    shown = ", ".join(
        f"{o.label_text()} {'no data' if o.missing else format_value(o.value, outcome.unit)}"
        for o in observations[:_VALUES_SHOWN])
    more = len(observations) - _VALUES_SHOWN
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def failure_text(outcome: Outcome) -> str:
    """The plain-text verdict shown by pytest and GitLab; empty for a clean pass."""
    lines = [_headline(outcome)]
    evaluation = outcome.evaluation
    context = f"window {outcome.window_text}, " if outcome.window_text else ""
    context += f"at {format_time(outcome.at)}"
    if evaluation is not None and evaluation.details:
        lines.append(f"  ({context})")
        lines.extend(evaluation.details)
    elif evaluation is not None and len(evaluation.observations) == 1:
        parts = _parts(evaluation.observations[0])
        lines.append(f"  {parts} ({context})" if parts else f"  ({context})")
    else:
        if evaluation is not None:
            # By identity, built once: an answer can hold 100k series.
            flagged = {id(o) for o in (*evaluation.violations, *evaluation.warnings)}
            shown = [o for o in evaluation.observations if o.missing or id(o) in flagged]
            if len(shown) > _LINES_SHOWN:
                # Every value was checked; the text lists the first ones, in answer order.
                hidden = len(shown) - _LINES_SHOWN
                shown = shown[:_LINES_SHOWN]
            else:
                hidden = 0
            for observation in shown:
                parts = _parts(observation)
                compared = _compare(observation, evaluation.bounds, outcome.unit,
                                    evaluation.warn)
                lines.append(f"  {observation.label_text() or '(no labels)'}: {compared}"
                             + (f" ({parts})" if parts else ""))
            if hidden:
                lines.append(f"  ... and {hidden} more outside the bounds or without data")
        lines.append(f"  ({context})")
    if outcome.verdict is Verdict.NO_DATA:
        lines.append(f"  on_no_data: {outcome.on_no_data}")
    lines.append(f"  backend {outcome.backend}")
    for part, query in outcome.queries.items():
        lines.append(f"  {part} query: {query}" if part != "query" else f"  query: {query}")
    bound = bound_parameters(outcome)
    if bound:
        lines.append(f"  parameters: {bound}")
    for warning in outcome.warnings:
        lines.append(f"  backend warning: {warning}")
    if outcome.link:
        lines.append(f"  graph: {outcome.link}")
    return "\n".join(lines)


_TIME_PARAMETERS = ("at", "window_start", "window_end")
_VALUES_SHOWN = 10  # in the value column and slo.value
_LINES_SHOWN = 50  # values listed in a failure text
_OBSERVATIONS_KEPT = 1000  # raw values kept in slo.observations and the evidence


def bound_parameters(outcome: Outcome) -> str:
    """``:stage='beta', :window_start=2026-...`` for the named values the queries use."""
    used = {name for query in outcome.queries.values()
            for name in re.findall(r"(?<![\w:]):([A-Za-z_]\w*)", query)}
    shown = []
    for name in sorted(used & set(outcome.parameters)):
        value = outcome.parameters[name]
        text = (format_time(float(value)) if name in _TIME_PARAMETERS
                else repr(value) if isinstance(value, str) else str(value))
        shown.append(f":{name}={text}")
    return ", ".join(shown)


def _headline(outcome: Outcome) -> str:
    evaluation = outcome.evaluation
    if outcome.verdict is Verdict.ERROR or evaluation is None:
        return f"{outcome.title} ERROR: {outcome.error}"
    if outcome.verdict is Verdict.NO_DATA:
        return f"{outcome.title} NO DATA: {evaluation.reason}"
    word = {Verdict.FAIL: "FAILED", Verdict.WARN: "WARN"}.get(outcome.verdict, "PASSED")
    if outcome.verdict is Verdict.WARN and outcome.strict:
        word = "FAILED (warning under --slo-strict)"
    if evaluation.headline:
        return f"{outcome.title} {word}: {evaluation.headline}"
    if len(evaluation.observations) == 1:
        return f"{outcome.title} {word}: " + _compare(
            evaluation.observations[0], evaluation.bounds, outcome.unit, evaluation.warn)
    total = len(evaluation.observations)
    if outcome.verdict is Verdict.FAIL:
        bad = len(evaluation.violations)
        return (f"{outcome.title} FAILED: {bad} of {total} values outside "
                f"{threshold_text(evaluation.bounds, outcome.unit)}")
    if outcome.verdict is Verdict.WARN:
        return (f"{outcome.title} {word}: {len(evaluation.warnings)} of {total} values outside "
                f"the warning level {threshold_text(evaluation.warn, outcome.unit)}")
    return (f"{outcome.title} PASSED: all {total} values within "
            f"{threshold_text(evaluation.bounds, outcome.unit)}")


@functools.lru_cache(maxsize=4096)
def _shared(name: str, value: str) -> tuple[str, object]:
    """One ``(name, value)`` pair for every objective that has it.

    pytest keeps each item's properties three times over (the item and its call and
    teardown reports) until the run ends; most of them (service, stage, unit, bounds,
    backend, window, time) are the same for many objectives, so they share one tuple.
    """
    return name, value


def properties(outcome: Outcome) -> list[tuple[str, object]]:
    """JUnit ``<properties>`` of the testcase; written through ``item.user_properties``."""
    unit = outcome.unit
    low, high = outcome.bounds.min, outcome.bounds.max
    props: list[tuple[str, object]] = [
        _shared("slo.service", outcome.service),
        _shared("slo.stage", outcome.stage),
        ("slo.objective", outcome.objective),
        *([("slo.matrix", outcome.matrix)] if outcome.matrix else []),
        _shared("slo.verdict", outcome.verdict.value),
        ("slo.value", value_text(outcome)),
        _shared("slo.min", "" if low is None else format_value(low, unit)),
        _shared("slo.max", "" if high is None else format_value(high, unit)),
        *_warn_properties(outcome),
        *(_shared(f"slo.{name}", text) for name, text in outcome.limits),
        *([("slo.change", outcome.evaluation.change)]
          if outcome.evaluation is not None and outcome.evaluation.change else []),
        _shared("slo.unit", unit),
        _shared("slo.backend", outcome.backend),
    ]
    queries = outcome.queries
    if "query" in queries:
        props.append(("slo.query", queries["query"]))
    else:
        props.append(("slo.query", " / ".join(f"({q})" for q in queries.values())))
        props.extend((f"slo.{part}_query", query) for part, query in queries.items())
    props.append(_shared("slo.window", outcome.window_text))
    props.append(_shared("slo.at", format_time(outcome.at)))
    if outcome.verdict is not Verdict.PASS:
        props.append(("slo.message", failure_text(outcome)))
    if outcome.link:
        props.append(("slo.link", outcome.link))
    props.append(("slo.observations", observations_json(outcome)))
    return props


def observations_json(outcome: Outcome) -> str:
    """The raw values behind the verdict, as JSON: labels, value, ratio parts, reason."""
    evaluation = outcome.evaluation
    rows = []
    # The failure text lists at most _LINES_SHOWN values; JUnit gets a bounded sample too, or a
    # 100k-series answer would make a 100k-row property.
    for observation in (evaluation.observations[:_OBSERVATIONS_KEPT]
                        if evaluation is not None else ()):
        row: dict[str, object] = {"labels": dict(observation.labels),
                                  "value": json_number(observation.value)}
        if observation.parts is not None:
            row["numerator"] = json_number(observation.parts[0])
            row["denominator"] = json_number(observation.parts[1])
        if observation.reason:
            row["reason"] = observation.reason
        rows.append(row)
    return json.dumps(rows, sort_keys=True)


def _warn_properties(outcome: Outcome) -> list[tuple[str, object]]:
    warn = outcome.evaluation.warn if outcome.evaluation is not None else NO_BOUNDS
    return [_shared(f"slo.warn_{side}", format_value(value, outcome.unit))
            for side, value in (("min", warn.min), ("max", warn.max)) if value is not None]


def add_system_out(xml_path: Path) -> None:
    """Copy the text of warn and no-data-but-passed testcases into their ``<system-out>``.

    GitLab shows a testcase's system-out but not its properties, and pytest writes captured
    output only under ``junit_logging``; without this a passed-with-warning objective would
    look clean in the merge request.
    """
    try:
        tree = ElementTree.parse(xml_path)
    except (OSError, ElementTree.ParseError):
        return  # not ours to repair; pytest reports its own write errors
    changed = False
    for case in tree.iter("testcase"):
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        if props.get("slo.verdict") not in ("warn", "no_data") or case.find("failure") is not None:
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
