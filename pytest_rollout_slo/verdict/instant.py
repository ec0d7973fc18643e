"""Verdict logic: the values a backend returned plus the bounds of a stage give one verdict.

Pure functions over plain data: no pytest, no I/O, no clock. Everything that decides whether
a rollout stage may be promoted lives here, so it can be tested at its boundaries alone.

Rules (SPEC-V1.md, "Evaluation and outcomes"):

* a value outside [min, max] fails the objective, whatever its siblings are;
* otherwise any missing value (empty answer, NaN, NULL, a ratio whose denominator is 0 or
  below ``min_denominator``) makes the verdict *no data*, never a pass;
* otherwise every value lies within the bounds: pass.

A ratio's numerator that returns nothing while its denominator has data is *no data*, not
zero: a typo in the numerator's metric name must never read as a 0 % error rate. A value no
bound can judge (an infinity; a negative part of a ratio, which makes ``-3/100`` pass every
``max``) raises UnjudgeableAnswer, an error verdict: backends refuse such answers already,
and this is the last line for any that gets through (a replayed recording, a new backend).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from pytest_rollout_slo.backends.base import Labels, Sample
from pytest_rollout_slo.spec.model import NO_BOUNDS, Bounds


class Verdict(enum.Enum):
    PASS = "pass"
    WARN = "warn"
    """Within the bounds but outside the warning level: passes, and says so."""
    FAIL = "fail"
    NO_DATA = "no_data"
    ERROR = "error"
    INCONCLUSIVE = "inconclusive"
    """With ``confidence``: the counts cannot tell whether the bound holds (too little data)."""
    TRACKED = "tracked"
    """A tracked objective (``track: true``): its value is reported, never judged."""


@dataclass(frozen=True)
class Observation:
    """One checked value with what it is made of.

    ``value`` is None when there is no usable value; ``reason`` then says why.
    ``parts`` holds a ratio's numerator and denominator.
    """

    labels: Labels
    value: float | None
    reason: str = ""
    parts: tuple[float | None, float | None] | None = None

    @property
    def missing(self) -> bool:
        return self.value is None or math.isnan(self.value)

    def label_text(self) -> str:
        return Sample(self.labels, self.value).label_text()


@dataclass(frozen=True, slots=True)
class Significance:
    """One test behind a confidence verdict, with all a reviewer needs to redo it."""

    labels: Labels
    test: str
    """``binomial`` (a share against its bounds), ``rate ratio`` (canary against control by
    counts), ``mann-whitney`` (canary against control by the ranks of raw samples),
    ``histogram buckets`` (a histogram's quantile against its bounds by bucket counts) or
    ``histogram quantiles`` (canary against control by their quantiles' bucket intervals)."""
    method: str
    """The interval: ``clopper-pearson`` or ``wilson``."""
    level: float
    counts: tuple[int, ...]
    """``(k, n)``; for a rate ratio ``(canary k, canary n, control k, control n)``; for a rank
    test or histogram quantiles ``(canary samples, control samples)``; for histogram buckets
    the count at most each bound of :attr:`buckets`, then every request."""
    estimate: float
    """The share ``k / n``, the rate ratio (canary rate / control rate), or a rank test's
    Hodges-Lehmann shift (a ratio for a relative change, else a difference)."""
    low: float
    high: float
    """The interval of ``estimate``."""
    against: str
    """The bound it is judged against: ``max 5.00%``, ``max_increase 20%``."""
    statistic: float
    """The test's statistic: the events counted, ``k`` (the canary's for a rate ratio), or
    the canary's Mann-Whitney U for a rank test."""
    p_fail: float
    """The doubled one-sided p-value of a breach, before any adjustment."""
    p_pass: float
    """The doubled one-sided p-value of holding the bound."""
    adjusted: float | None = None
    """``p_fail`` after the run's family adjustment; None when there was none."""
    more: str = ""
    """For an undecided test: how much more traffic at the same rate would decide."""
    buckets: tuple[float, ...] = ()
    """For ``histogram buckets``: the bucket bounds whose counts open ``counts``; for
    ``histogram quantiles``: the canary's quantile interval and the control's, each at half
    the error rate (low, high, low, high)."""

    @property
    def verdict(self) -> Verdict:
        alpha = 1 - self.level
        if (self.p_fail if self.adjusted is None else self.adjusted) < alpha:
            return Verdict.FAIL
        if self.p_pass < alpha:
            return Verdict.PASS
        return Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    bounds: Bounds
    observations: tuple[Observation, ...]
    reason: str = ""
    """For no data: why there is nothing to judge (``no series returned``)."""
    warn: Bounds = NO_BOUNDS
    headline: str = ""
    """For gates beyond one instant: what follows ``FAILED:`` (else built from the values)."""
    details: tuple[str, ...] = ()
    """For gates beyond one instant: the lines that explain the verdict."""
    value_text: str = ""
    """For gates beyond one instant: the measured value in one short phrase."""
    change: str = ""
    """For a baseline with one series: the change against it, ``up 41.3% (1.33 points)``."""
    baseline_value: float | None = None
    """For a baseline with one series: the baseline's value."""
    tests: tuple[Significance, ...] = ()
    """With ``confidence``: the test of each series (and of each change against a baseline)."""
    adjustment: str = ""
    """The family adjustment applied to ``tests`` (``Holm``), or '' when none was."""
    family: int = 0
    """How many tests the adjustment was over."""

    @cached_property
    def warnings(self) -> tuple[Observation, ...]:
        """The observations inside the bounds but outside the warning level."""
        return tuple(o for o in self.observations
                     if o.value is not None and not o.missing and violation(o.value, self.warn)
                     and not violation(o.value, self.bounds))

    @cached_property
    def violations(self) -> tuple[Observation, ...]:
        """The observations outside the bounds, in answer order."""
        return tuple(o for o in self.observations
                     if o.value is not None and not o.missing and violation(o.value, self.bounds))


def violation(value: float, bounds: Bounds) -> str | None:
    """``"min"`` or ``"max"`` for the bound ``value`` breaks, or None; bounds are inclusive."""
    if bounds.min is not None and value < bounds.min:
        return "min"
    if bounds.max is not None and value > bounds.max:
        return "max"
    return None


def judge(observations: Sequence[Observation], bounds: Bounds, *, warn: Bounds = NO_BOUNDS,
          empty_reason: str = "no series returned") -> Evaluation:
    """The verdict for a set of observations, each of which must lie within ``bounds``."""
    items = tuple(observations)
    refuse_infinities(items)
    if not items:
        return Evaluation(Verdict.NO_DATA, bounds, items, empty_reason, warn)
    evaluation = Evaluation(Verdict.FAIL, bounds, items, warn=warn)
    if evaluation.violations:
        return evaluation
    missing = [o for o in items if o.missing]
    if missing:
        reasons = list(dict.fromkeys(o.reason or "no value" for o in missing))
        return Evaluation(Verdict.NO_DATA, bounds, items, "; ".join(reasons), warn)
    if evaluation.warnings:
        return Evaluation(Verdict.WARN, bounds, items, warn=warn)
    return Evaluation(Verdict.PASS, bounds, items, warn=warn)


def refuse_infinities(observations: Sequence[Observation]) -> None:
    """Raise UnjudgeableAnswer for an infinite value: ``-Inf`` would pass every ``max``."""
    for o in observations:
        if o.value is not None and math.isinf(o.value):
            raise UnjudgeableAnswer(f"the query produced the non-finite value {o.value}"
                                    f"{_where(o.labels)}, which no bound can judge")


def observe_values(samples: Sequence[Sample]) -> list[Observation]:
    """Observations of a plain query: one per returned value."""
    return [Observation(s.labels, s.value, _missing_reason(s.value)) for s in samples]


def observe_ratio(numerator: Sequence[Sample], denominator: Sequence[Sample],
                  min_denominator: float, window: str | None = None
                  ) -> tuple[list[Observation], str]:
    """Observations of a ratio, pairing numerator and denominator series by their labels.

    One series on each side are paired whatever their labels; otherwise series are matched
    on identical labels (``__name__`` ignored), as PromQL's one-to-one matching does.
    Returns the observations and, when there are none, the reason. Raises AmbiguousAnswer
    when one side holds two series with the same labels.
    """
    if not numerator and not denominator:
        return [], "numerator and denominator returned no data"
    if len(numerator) == 1 and len(denominator) == 1:
        pairs: list[tuple[Labels, Sample | None, Sample | None]] = [
            (denominator[0].labels or numerator[0].labels, numerator[0], denominator[0])]
    else:
        num = _by_labels(numerator, "numerator")
        den = _by_labels(denominator, "denominator")
        keys = list(dict.fromkeys([*den, *num]))
        pairs = [(k, num.get(k), den.get(k)) for k in keys]
    no_traffic = f"no traffic in window {window}" if window else "no traffic"
    return [_ratio(labels, n, d, min_denominator, no_traffic) for labels, n, d in pairs], ""


def _ratio(labels: Labels, numerator: Sample | None,
           denominator: Sample | None, min_denominator: float, no_traffic: str) -> Observation:
    n = numerator.value if numerator is not None else None
    d = denominator.value if denominator is not None else None
    parts = (n, d)
    for side, value in (("numerator", n), ("denominator", d)):
        if value is not None and (math.isinf(value) or value < 0):
            raise UnjudgeableAnswer(f"the ratio's {side} is {value}{_where(labels)}; a ratio's "
                                    "parts are counts or rates, finite and never negative")
    if denominator is None or d is None or math.isnan(d):
        return Observation(labels, None, "denominator returned no data", parts)
    if d == 0 and (n is None or n == 0 or math.isnan(n)):
        return Observation(labels, None, f"0/0 ({no_traffic})", parts)
    if numerator is None or n is None or math.isnan(n):
        return Observation(labels, None, "numerator returned no data while the denominator is "
                           f"{_number(d)}; make the numerator return 0 when nothing happened "
                           "(PromQL: `... or vector(0)`)", parts)
    if d == 0:
        return Observation(labels, None, f"{_number(n)}/0 ({no_traffic})", parts)
    if d < min_denominator:
        return Observation(labels, None, f"denominator {_number(d)} is below min_denominator "
                           f"{_number(min_denominator)}", parts)
    return Observation(labels, n / d, "", parts)


class UnjudgeableAnswer(ValueError):
    """The answer holds values no verdict may rest on; the text says which (an error verdict)."""


class AmbiguousAnswer(UnjudgeableAnswer):
    """Several series of one side of a ratio share labels, so they cannot be paired."""


def _by_labels(samples: Sequence[Sample], side: str) -> dict[Labels, Sample]:
    paired: dict[Labels, Sample] = {}
    for sample in samples:
        key = _match_key(sample)
        if key in paired:
            # Keeping either one could hide the other's bad value: refuse, never guess.
            shown = Sample(key, None).label_text() or "(no labels)"
            raise AmbiguousAnswer(
                f"the {side} returned several series with the labels {shown}, so numerator and "
                "denominator cannot be paired; aggregate them (sum by (...)) so that each label "
                "set appears once")
        paired[key] = sample
    return paired


def _match_key(sample: Sample) -> Labels:
    return tuple((k, v) for k, v in sample.labels if k != "__name__")


def _where(labels: Labels) -> str:
    shown = Sample(labels, None).label_text()
    return f" for {shown}" if shown else ""


def _missing_reason(value: float | None) -> str:
    if value is None:
        return "the query returned NULL"
    if math.isnan(value):
        return "the query returned NaN"
    return ""


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else f"{value:g}"
