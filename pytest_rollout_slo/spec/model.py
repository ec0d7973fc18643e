"""The frozen model a spec file becomes, and how an objective resolves at one stage.

Built by :mod:`pytest_rollout_slo.spec.load` after validation, so nothing here re-checks input.
No pytest, no I/O.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_rollout_slo.quantity import Unit, format_duration, format_value, parse_duration
from pytest_rollout_slo.spec.settings import SettingValues

OnNoData = Literal["fail", "skip", "pass"]
ON_NO_DATA: tuple[OnNoData, ...] = ("fail", "skip", "pass")
OnInconclusive = Literal["fail", "warn", "skip", "pass"]
ON_INCONCLUSIVE: tuple[OnInconclusive, ...] = ("fail", "warn", "skip", "pass")
Method = Literal["clopper-pearson", "wilson"]
METHODS: tuple[Method, ...] = ("clopper-pearson", "wilson")
Scalar = str | int | float
Combination = tuple[tuple[str, Scalar], ...]

# `$${` writes a literal `${`; `${env:...}` is matched so it can be refused in queries.
_PLACEHOLDER_RE = re.compile(r"\$\$\{|\$\{(env:[^}]*|[^}]*)\}")


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds; either may be None (no bound on that side)."""

    min: float | None
    max: float | None

    @property
    def empty(self) -> bool:
        return self.min is None and self.max is None

    def text(self, unit: Unit) -> str:
        """``min 93.00%, max 99.00%``, one side, or ``no bounds``."""
        parts = [f"{side} {format_value(value, unit)}"
                 for side, value in (("min", self.min), ("max", self.max)) if value is not None]
        return ", ".join(parts) or "no bounds"


NO_BOUNDS = Bounds(None, None)


@dataclass(frozen=True)
class Ratio:
    numerator: str
    denominator: str
    min_denominator: float


@dataclass(frozen=True)
class Confidence:
    """``confidence:``: judge a ratio by a two-sided confidence interval on its counts."""

    level: float
    """0.95 for ``95%``."""
    method: Method = "clopper-pearson"
    """The interval: ``clopper-pearson`` (exact, never covers less than ``level``) or
    ``wilson`` (score interval, nearer ``level`` on average, sometimes below it)."""

    @property
    def text(self) -> str:
        return f"{self.level * 100:g}%"


@dataclass(frozen=True)
class Sustained:
    """Evaluate at every ``step`` across ``over`` seconds; fail past ``max_violations``."""

    over: float
    step: float
    max_violations: int
    over_text: str
    step_text: str


@dataclass(frozen=True)
class Change:
    """A bound on the change against a baseline: relative (``10%``) or absolute (``0.5s``)."""

    amount: float
    relative: bool
    text: str
    unit: Unit = "number"
    """The form it was written in: ``percent`` (relative), ``seconds`` or ``number``."""


@dataclass(frozen=True)
class Baseline:
    """The same objective for another cohort (``variables``) or an earlier time (``offset``)."""

    variables: Mapping[str, Scalar]
    offset: float | None
    offset_text: str
    max_increase: Change | None
    max_decrease: Change | None

    def describe(self) -> str:
        if self.offset is not None:
            return f"{self.offset_text} earlier"
        return ", ".join(f"{k}={v}" for k, v in self.variables.items())


@dataclass(frozen=True)
class BurnAlert:
    long: float
    short: float
    factor: float
    long_text: str
    short_text: str


@dataclass(frozen=True)
class BurnRate:
    """Multi-window, multi-burn-rate alerts on an error ratio (SRE workbook, chapter 5)."""

    target: float
    alerts: tuple[BurnAlert, ...]

    @property
    def budget(self) -> float:
        return 1.0 - self.target


@dataclass(frozen=True)
class AlertSettings:
    """What the generated alert rules of an objective need and cannot guess (``alert:``)."""

    for_seconds: float | None = None
    """``for:`` of the alerts; None: derived from ``sustained``, else none."""
    for_text: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra alert labels; a ``severity`` here replaces ``critical`` on the hard-bound alert."""
    runbook: str = ""


NO_ALERT = AlertSettings()


@dataclass(frozen=True)
class DashboardSettings:
    """The file's ``dashboard:`` block: what the generated dashboard cannot guess."""

    title: str = ""
    """Default: ``<service> rollout``."""
    stage_label: str = "stage"
    """The metric label that tells stages apart; also put on generated rules."""


@dataclass(frozen=True)
class BackendSpec:
    name: str
    type: str
    settings: Mapping[str, Any]
    """As written, ``${env:...}`` unresolved; a SettingValues, whose repr hides the values."""
    line: int

    def __post_init__(self) -> None:
        if not isinstance(self.settings, SettingValues):
            object.__setattr__(self, "settings", SettingValues(self.settings))


@dataclass(frozen=True)
class Rollout:
    """The feature-flag rollout a stage gates, in the words of the flag's system.

    ``api`` is ``project`` (a project's Unleash feature flags: exactly one of percent, users
    or all_users, in ``environment``) or ``features`` (GitLab's own development flags through
    the instance Features API: percent and/or actors and feature_group, or all_users).
    ``of`` says what a percentage counts: users, sessions or requests.
    """

    flag: str
    percent: float | None = None
    users: str | None = None
    all_users: bool = False
    environment: str = "production"
    api: str = "project"
    of: str = "users"
    actors: tuple[str, ...] = ()
    feature_group: str | None = None


@dataclass(frozen=True)
class Exposure:
    """How to count the canary's share of a stage (``exposure:``), for the sample-ratio test.

    ``canary`` and ``all`` are query templates counting units (users, else requests) on
    ``backend``; a share whose p-value against the flag's percentage is below ``threshold``
    is a sample ratio mismatch.
    """

    backend: str
    canary: str
    all: str
    units: str
    """What the counts count, for the message: the rollout's ``of`` unless given."""
    threshold: float = 0.001
    line: int = 0


@dataclass(frozen=True)
class Buckets:
    """A ``histogram_quantile`` read as its bucket counts, for ``confidence``.

    The gate then asks for every bucket's count in the window, not the interpolated quantile:
    counts say how sure the quantile's side of a bound is, an interpolated value does not.
    """

    query: str
    """``sum by (le, ...) (increase(<metric>_bucket{...}[${window}]))``."""
    q: float
    """The quantile, 0.99 for p99."""


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    variables: Mapping[str, Scalar]
    line: int
    rollout: Rollout | None = None
    rollback_on: tuple[str, ...] | None = None
    """Verdicts that roll the stage's flag back; None: the file's ``rollback_on``."""
    exposure: Exposure | None = None
    """The stage's exposure check (its own or the file's); only with ``rollout.percent``."""
    confidence: Confidence | None = None
    """The stage's ``confidence``, over the file's, under an objective's own."""


@dataclass(frozen=True)
class Objective:
    name: str
    description: str
    backend: str
    query: str | None
    """The query; for ``quantile`` the query returning the values."""
    ratio: Ratio | None
    bounds: Mapping[str, Bounds]
    """Bounds per stage the objective applies to, overrides already merged."""
    unit: Unit
    on_no_data: OnNoData
    line: int
    warn: Mapping[str, Bounds] = field(default_factory=dict)
    quantile: float | None = None
    sustained: Sustained | None = None
    baseline: Baseline | None = None
    burn_rate: BurnRate | None = None
    matrix: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()
    variables: Mapping[str, Scalar] = field(default_factory=dict)
    """The objective's own variables: over the stage's and the file's, under the matrix's."""
    track: bool = False
    """A tracked objective has no bounds: its value is reported, it never fails a stage."""
    alert: AlertSettings = NO_ALERT
    confidence: Confidence | None = None
    """The objective's own ``confidence``; see :attr:`ResolvedObjective.confidence`."""
    on_inconclusive: OnInconclusive = "fail"
    buckets: Buckets | None = None
    """For a ``histogram_quantile``: its bucket counts, what a gate with confidence reads."""

    @property
    def takes_confidence(self) -> bool:
        """Whether a file's or stage's ``confidence`` applies: a judged ratio at one instant
        or against a baseline, a ``histogram_quantile`` (by its bucket counts), or a
        ``quantile`` of raw samples against a baseline; sustained and burn-rate gates judge
        values over time, not counts or samples."""
        measured = (self.ratio is not None or self.buckets is not None
                    or (self.quantile is not None and self.baseline is not None))
        return (measured and not self.track and self.sustained is None
                and self.burn_rate is None)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.bounds)

    @property
    def templates(self) -> dict[str, str]:
        """The query texts before substitution, by part."""
        if self.ratio is not None:
            return {"numerator": self.ratio.numerator, "denominator": self.ratio.denominator}
        return {"query": self.query or ""}

    def gate_templates(self, confident: bool) -> dict[str, str]:
        """What a gate sends: :attr:`templates`, or with ``confident`` a histogram's bucket
        counts (``{"buckets": ...}``). Exports keep :attr:`templates`: an alert watches the
        quantile itself."""
        if confident and self.buckets is not None:
            return {"buckets": self.buckets.query}
        return self.templates

    def combinations(self) -> Iterator[Combination]:
        """Every combination of the matrix, in the order the spec lists values."""
        if not self.matrix:
            yield ()
            return
        names = [name for name, _ in self.matrix]
        for values in itertools.product(*(values for _, values in self.matrix)):
            yield tuple(zip(names, values, strict=True))


@dataclass(frozen=True)
class ResolvedObjective:
    """An objective at one stage (and matrix combination), with every ``${name}`` replaced."""

    objective: Objective
    stage: str
    combination: Combination
    bounds: Bounds
    warn: Bounds
    queries: Mapping[str, str]
    """``{"query": ...}`` or ``{"numerator": ..., "denominator": ...}``."""
    variables: Mapping[str, Scalar]
    window: float | None
    window_text: str
    """The window as the spec wrote it (``24h``), for reports; empty without a window."""
    confidence: Confidence | None = None
    """The objective's ``confidence``, else its stage's, else its file's; None when the
    objective is not a ratio judged on counts (see :attr:`Objective.takes_confidence`)."""

    @functools.cached_property
    def title(self) -> str:
        """``error_rate[beta]`` or ``error_rate[beta-region=eu]``: the item's name (asked for
        by collection, every record and every report; made once)."""
        suffix = "".join(f"-{name}={value}" for name, value in self.combination)
        return f"{self.objective.name}[{self.stage}{suffix}]"

    @property
    def gate_queries(self) -> Mapping[str, str]:
        """What the gate sends: :attr:`queries`, or with confidence on a histogram its
        bucket counts (see :meth:`Objective.gate_templates`)."""
        if self.confidence is None or self.objective.buckets is None:
            return self.queries
        return self.with_variables({}, gate=True)[0]

    def with_variables(self, overrides: Mapping[str, Scalar], *, gate: bool = False
                       ) -> tuple[dict[str, str], dict[str, Scalar]]:
        """The queries and variables with some variables replaced (a baseline, a window);
        with ``gate``, the queries the gate sends (:attr:`gate_queries`)."""
        variables = {**self.variables, **overrides}
        texts = self.objective.gate_templates(gate and self.confidence is not None)
        return {part: substitute(text, variables)[0] for part, text in texts.items()}, variables


@dataclass(frozen=True)
class Spec:
    path: Path
    service: str
    description: str
    backends: Mapping[str, BackendSpec]
    variables: Mapping[str, Scalar]
    stages: Mapping[str, Stage]
    objectives: tuple[Objective, ...]
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    rollback_on: tuple[str, ...] = ("fail",)
    """Verdicts that roll a stage's flag back, unless the stage says otherwise."""
    confidence: Confidence | None = None
    """The file's ``confidence``, for every ratio objective that sets none at its stage."""

    def rollback_verdicts(self, stage: str) -> tuple[str, ...]:
        """The verdicts on which ``--slo-rollback`` acts at ``stage``."""
        own = self.stages[stage].rollback_on
        return self.rollback_on if own is None else own

    def variables_for(self, stage: str, combination: Combination = (),
                      objective: Objective | None = None) -> dict[str, Scalar]:
        """File, then stage, then objective variables, then the matrix combination."""
        merged: dict[str, Scalar] = {"stage": stage, "service": self.service}
        merged.update(self.variables)
        merged.update(self.stages[stage].variables)
        if objective is not None:
            merged.update(objective.variables)
        merged.update(combination)
        return merged

    def resolve(self, objective: Objective, stage: str,
                combination: Combination = ()) -> ResolvedObjective:
        """The objective as it runs at ``stage``; validated at load, so it cannot fail."""
        variables = self.variables_for(stage, combination, objective)
        queries = {part: substitute(text, variables)[0]
                   for part, text in objective.templates.items()}
        window = variables.get("window")
        return ResolvedObjective(
            objective=objective, stage=stage, combination=combination,
            bounds=objective.bounds[stage], warn=objective.warn.get(stage, NO_BOUNDS),
            queries=queries, variables=variables,
            window=parse_duration(window) if window is not None else None,
            window_text=duration_text(window) if window is not None else "",
            confidence=self.confidence_for(objective, stage),
        )

    def confidence_for(self, objective: Objective, stage: str) -> Confidence | None:
        """The objective's ``confidence``, else its stage's, else the file's; None for an
        objective that takes none (see :attr:`Objective.takes_confidence`)."""
        if not objective.takes_confidence:
            return None
        return objective.confidence or self.stages[stage].confidence or self.confidence


def duration_text(value: Scalar) -> str:
    """A duration as the spec wrote it (``24h``), or formatted when it was a number."""
    return value.strip() if isinstance(value, str) else format_duration(float(value))


def placeholders(text: str) -> list[str]:
    """The ``${name}`` names of ``text`` in order: what ``substitute`` looks up."""
    if "$" not in text:  # most queries: no regex needed
        return []
    return [match.group(1) for match in _PLACEHOLDER_RE.finditer(text)
            if match.group(0) != "$${"]


def substitute(text: str, variables: Mapping[str, Scalar]) -> tuple[str, list[str]]:
    """Replace ``${name}``; return the text and the names that were not defined."""
    missing: list[str] = []
    if "$" not in text:
        return text, missing

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name in variables:
            value = variables[name]
            return str(value) if not isinstance(value, float) else repr(value)
        missing.append(name)
        return match.group(0)

    return _PLACEHOLDER_RE.sub(replace, text), missing
