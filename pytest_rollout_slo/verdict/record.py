"""One objective's verdict as every output needs it: built once, rendered by ``report/``.

A :class:`VerdictRecord` holds what was checked (objective, stage, matrix combination,
bounds and the limits of the gates beyond them, queries, backend, time and window) and what
came of it (verdict, values with their labels and ratio parts, the baseline's value, the
gate's own lines, an error). Numbers stay numbers; the display text of a value is made by
the renderers, except for the phrases only a gate can write (``3 of 31 points outside``).
The failure text, the JUnit properties, the terminal table, the Markdown and JSON reports
and the ``pytest_slo_verdict`` hook all read this record, and no output reads another's
text.

A record rides on its objective's call report; it crosses from a pytest-xdist worker to the
controller as :meth:`to_dict`, plain values that execnet sends as they are. No pytest here, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, cast

from pytest_rollout_slo.quantity import Unit
from pytest_rollout_slo.spec.model import (
    NO_BOUNDS,
    Bounds,
    OnInconclusive,
    OnNoData,
    ResolvedObjective,
)
from pytest_rollout_slo.verdict.instant import Evaluation, Observation, Significance, Verdict

KEPT_VALUES = 1000
"""Values kept in a record: JUnit and the evidence get a bounded sample of a 100k answer."""
FLAGGED_VALUES = 50
"""Values outside the bounds (or without data) a record names; the rest are counted."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A bound beyond min and max: ``max_increase``, ``max_violations``, ``burn_rate_target``,
    ``sustained`` or ``baseline``; ``value`` is its number where it has one."""

    name: str
    text: str
    value: float | None = None


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """Everything known about one objective at one stage after it ran."""

    nodeid: str
    title: str
    """The item's name, ``error_rate[beta]`` or ``error_rate[beta-region=eu]``."""
    service: str
    objective: str
    stage: str
    matrix: str
    """The matrix combination, ``region=eu``; empty without a matrix."""
    unit: Unit
    bounds: Bounds
    on_no_data: OnNoData
    strict: bool
    """``--slo-strict``: a warning fails the objective."""
    at: float
    window: str
    backend: str
    """``metrics (prometheus, http://prometheus:9090)``, already free of secrets."""
    queries: Mapping[str, str]
    parameters: Mapping[str, str | int | float] = field(default_factory=dict)
    """Named values bound to the queries (SQL ``:window_start``); shown when a query uses them."""
    limits: tuple[Limit, ...] = ()
    verdict: Verdict = Verdict.ERROR
    error: str = ""
    warn: Bounds = NO_BOUNDS
    reason: str = ""
    """For no data: why there is nothing to judge."""
    headline: str = ""
    details: tuple[str, ...] = ()
    gate_value: str = ""
    """A gate's own phrase for the value (``3 of 31 points outside``); else empty."""
    change: str = ""
    """Against a baseline with one series: ``up 41.3% (1.33 points)``."""
    baseline_value: float | None = None
    values: tuple[Observation, ...] = ()
    """The first :data:`KEPT_VALUES` values judged, in answer order."""
    total: int = 0
    """How many values were judged in all."""
    violations: int = 0
    warned: int = 0
    flagged: tuple[Observation, ...] = ()
    """The first :data:`FLAGGED_VALUES` values outside the bounds, the warning level or
    without data, in answer order."""
    flagged_total: int = 0
    link: str | None = None
    backend_warnings: tuple[str, ...] = ()
    outcome: str = ""
    """pytest's outcome of the call, once known: ``passed``, ``failed`` or ``skipped``."""
    checks: Mapping[str, Any] = field(default_factory=dict)
    """What the checks made before judging found, as plain values: ``exposure`` (the stage's
    sample-ratio test) and ``freshness`` (the newest sample behind each query)."""
    on_inconclusive: OnInconclusive = "fail"
    confidence: str = ""
    """``95% (clopper-pearson)`` when the objective is judged by significance; else ''."""
    tests: tuple[Significance, ...] = ()
    """With confidence: each test's interval, statistic and p-values."""
    adjustment: str = ""
    """The family adjustment applied to ``tests`` (``Holm``), or ''."""
    family: int = 0
    """How many tests of the run the adjustment was over."""

    @classmethod
    def planned(cls, resolved: ResolvedObjective, *, nodeid: str, service: str, at: float,
                backend: str, strict: bool, parameters: Mapping[str, str | int | float],
                **found: Any) -> VerdictRecord:
        """The record before any answer: an error, until a judged answer replaces it.

        ``found`` are further fields known by then (the error, the link, the checks): given
        here rather than replaced after, which would build the record again for each.
        """
        objective = resolved.objective
        return cls(
            nodeid=nodeid, title=resolved.title, service=service, objective=objective.name,
            stage=resolved.stage, matrix=", ".join(f"{k}={v}" for k, v in resolved.combination),
            unit=objective.unit, bounds=resolved.bounds, on_no_data=objective.on_no_data,
            strict=strict, at=at,
            # Burn-rate alerts bring their own windows; the stage's window would mislead.
            window="" if objective.burn_rate else resolved.window_text,
            # Shared, not copied: thousands of records stay alive until the run ends.
            backend=backend, queries=resolved.gate_queries, parameters=parameters,
            limits=_limits(resolved), on_inconclusive=objective.on_inconclusive,
            confidence=("" if resolved.confidence is None else
                        f"{resolved.confidence.text} ({resolved.confidence.method})"),
            **found)

    def judged(self, evaluation: Evaluation, warnings: tuple[str, ...] = (), *,
               tracked: bool = False) -> VerdictRecord:
        """This record with the verdict and values of ``evaluation``; with ``tracked``, as a
        tracked objective's (see :meth:`tracked`)."""
        observations = evaluation.observations
        # By identity, built once: an answer can hold 100k series.
        marked = {id(o) for o in (*evaluation.violations, *evaluation.warnings)}
        flagged = [o for o in observations if o.missing or id(o) in marked]
        return replace(
            self, verdict=Verdict.TRACKED if tracked else evaluation.verdict,
            warn=evaluation.warn, reason=evaluation.reason,
            headline=evaluation.headline, details=evaluation.details,
            gate_value=evaluation.value_text, change=evaluation.change,
            baseline_value=evaluation.baseline_value, values=observations[:KEPT_VALUES],
            total=len(observations), violations=len(evaluation.violations),
            warned=len(evaluation.warnings), flagged=tuple(flagged[:FLAGGED_VALUES]),
            flagged_total=len(flagged), backend_warnings=warnings, tests=evaluation.tests,
            adjustment=evaluation.adjustment, family=evaluation.family)

    def tracked(self) -> VerdictRecord:
        """This record as a tracked objective's: reported, never failing a stage. Its
        reason or error stays, so a report can say why no value came."""
        return replace(self, verdict=Verdict.TRACKED)

    @property
    def value(self) -> float | None:
        """The one value judged, when there was exactly one; else None."""
        if self.total == 1 and self.values:
            return self.values[0].value
        return None

    @property
    def limit_map(self) -> dict[str, Limit]:
        return {limit.name: limit for limit in self.limits}

    # -- across processes ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain values (str, numbers, lists, dicts) for the report pytest-xdist sends."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Verdict):
                value = value.value
            elif isinstance(value, Bounds):
                value = [value.min, value.max]
            elif item.name == "limits":
                value = [[limit.name, limit.text, limit.value] for limit in value]
            elif item.name == "tests":
                value = [_test_dict(test) for test in value]
            elif item.name in ("values", "flagged"):
                value = [[[list(pair) for pair in o.labels], o.value, o.reason,
                          None if o.parts is None else list(o.parts)] for o in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerdictRecord:
        """The record :meth:`to_dict` gave."""
        values: dict[str, Any] = dict(data)
        values["verdict"] = Verdict(data["verdict"])
        values["bounds"] = Bounds(*data["bounds"])
        values["warn"] = Bounds(*data["warn"])
        values["limits"] = tuple(Limit(*limit) for limit in data["limits"])
        for name in ("values", "flagged"):
            values[name] = tuple(
                Observation(tuple((str(k), str(v)) for k, v in labels), value, reason,
                            None if parts is None else cast(tuple[float | None, float | None],
                                                            tuple(parts)))
                for labels, value, reason, parts in data[name])
        values["tests"] = tuple(_test_from(test) for test in data.get("tests", ()))
        values["details"] = tuple(data["details"])
        values["backend_warnings"] = tuple(data["backend_warnings"])
        return cls(**values)


def _test_dict(test: Significance) -> dict[str, Any]:
    data = {item.name: getattr(test, item.name) for item in fields(test)}
    data["labels"] = [list(pair) for pair in test.labels]
    data["counts"] = list(test.counts)
    return data


def _test_from(data: Mapping[str, Any]) -> Significance:
    values = dict(data)
    values["labels"] = tuple((str(k), str(v)) for k, v in data["labels"])
    values["counts"] = tuple(int(c) for c in data["counts"])
    return Significance(**values)


def _limits(resolved: ResolvedObjective) -> tuple[Limit, ...]:
    objective = resolved.objective
    limits: list[Limit] = []
    if objective.baseline is not None:
        baseline = objective.baseline
        limits.append(Limit("baseline", baseline.describe()))
        limits.extend(Limit(name, change.text, change.amount) for name, change in (
            ("max_increase", baseline.max_increase),
            ("max_decrease", baseline.max_decrease)) if change is not None)
    if objective.sustained is not None:
        sustained = objective.sustained
        limits.append(Limit("sustained", f"over {sustained.over_text}, step {sustained.step_text}",
                            sustained.over))
        limits.append(Limit("max_violations", str(sustained.max_violations),
                            sustained.max_violations))
    if objective.burn_rate is not None:
        target = objective.burn_rate.target
        limits.append(Limit("burn_rate_target", f"{target * 100:g}%", target))
    return tuple(limits)


__all__ = ["FLAGGED_VALUES", "KEPT_VALUES", "Limit", "VerdictRecord"]
