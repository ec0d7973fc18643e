"""A ``histogram_quantile`` judged by its bucket counts: ``confidence`` on Prometheus latency.

A classic Prometheus histogram counts requests at most each bucket bound ``le``; the counts in
the window are read, not the interpolated quantile. Of ``n`` requests, ``k`` at most ``b``:
if the quantile ``q`` (0.99) lay above ``b``, fewer than ``q`` of all requests would be at most
``b``, so ``k`` unusually high shows "the quantile is at most ``b``" and ``k`` unusually low
shows "it lies above ``b``", each by the binomial tail at ``q`` (the test the objective's
interval method inverts, as for shares). Only bucket bounds can be claimed: between two
bounds the counts say nothing, and the text says when that, not traffic, leaves a verdict
undecided.

* Against ``max: 300ms``: the objective holds when its quantile is shown at most the largest
  bound at or below 300 ms, breaks when shown above the smallest bound at or above it.
* Against a baseline (``max_increase: 20%``): each side's quantile gets an interval between
  bucket bounds at ``1 - (1 - level) / 2``, so that both hold together at ``level``; the
  canary holds when its upper end lies within the allowed change of the control's lower
  end, breaks when its lower end lies beyond the change of the control's upper end.

What it assumes: requests independent of one another (a burst of retries is not), both
sides' histograms with the same bucket bounds, and, as Prometheus' ``histogram_quantile``
does, no request below 0 when the first bound is positive. No pytest, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pytest_rollout_slo.backends.base import Labels, Sample
from pytest_rollout_slo.quantity import Unit, format_value
from pytest_rollout_slo.spec.model import Baseline, Bounds, Change, Confidence
from pytest_rollout_slo.verdict import stats
from pytest_rollout_slo.verdict.confidence import MAX_COUNT, decide, more_needed, more_text
from pytest_rollout_slo.verdict.instant import (
    Evaluation,
    Observation,
    Significance,
    UnjudgeableAnswer,
    Verdict,
)

DROP_TOLERANCE = 1.0
"""How far a bucket's count may fall below the bucket before it: ``increase()`` extrapolates
each series alone, so counts of one histogram can disagree by a fraction of a request."""


@dataclass(frozen=True)
class Histogram:
    """One series' bucket counts in the window: cumulative, by ascending bound, at least
    one finite bound and ``+Inf`` last."""

    labels: Labels
    bounds: tuple[float, ...]
    """Every ``le``, ascending, ``+Inf`` last."""
    counts: tuple[int, ...]
    """Requests at most each bound; the last is every request."""

    @property
    def total(self) -> int:
        return self.counts[-1]

    def quantile(self, q: float) -> float:
        """The point estimate, interpolated within its bucket as ``histogram_quantile`` does
        (the lowest bucket from 0 when its bound is positive; the last finite bound for a
        rank in the ``+Inf`` bucket)."""
        rank = q * self.total
        below, lower = 0, 0.0 if self.bounds[0] > 0 else -math.inf
        for bound, count in zip(self.bounds, self.counts, strict=True):
            if count >= rank and count > below:
                if math.isinf(bound):
                    return self.bounds[-2]
                if math.isinf(lower):
                    return bound
                return lower + (bound - lower) * (rank - below) / (count - below)
            below, lower = count, bound
        return self.bounds[-2]

    def bucket_of(self, q: float) -> tuple[float, float]:
        """The bounds of the bucket that holds the ``q`` quantile's rank: where the quantile
        lies however much traffic came in at the same shape."""
        rank = q * self.total
        lower = 0.0 if self.bounds[0] > 0 else -math.inf
        for bound, count in zip(self.bounds, self.counts, strict=True):
            if count >= rank and count > 0:
                return lower, bound
            lower = bound
        return lower, math.inf

    def at_most(self, q: float, method: stats.Method) -> list[float]:
        """For each bound ``b``: the doubled p-value that the ``q`` quantile is at most ``b``."""
        return [min(1.0, 2 * stats.tail(k, self.total, q, "greater", method))
                for k in self.counts]

    def above(self, q: float, method: stats.Method) -> list[float]:
        """For each bound ``b``: the doubled p-value that the ``q`` quantile lies above ``b``."""
        return [min(1.0, 2 * stats.tail(k, self.total, q, "less", method))
                for k in self.counts]

    def interval(self, at_most: Sequence[float], above: Sequence[float], level: float
                 ) -> tuple[float, float]:
        """The quantile's interval at ``level`` between bucket bounds, from the p-values of
        :meth:`at_most` and :meth:`above`: above the largest bound it is shown above, at most
        the smallest bound it is shown at most."""
        alpha = 1 - level
        shown_above = [b for b, p in zip(self.bounds, above, strict=True) if p < alpha]
        shown_at_most = [b for b, p in zip(self.bounds, at_most, strict=True) if p < alpha]
        floor = 0.0 if self.bounds[0] > 0 else -math.inf
        return (max(shown_above, default=floor), min(shown_at_most, default=math.inf))


def histograms(samples: Sequence[Sample], side: str) -> dict[Labels, Histogram]:
    """The answer's bucket series grouped into histograms by their labels other than ``le``;
    UnjudgeableAnswer for anything that is not a histogram's counts."""
    groups: dict[Labels, dict[float, float]] = {}
    for sample in samples:
        le = dict(sample.labels).get("le")
        labels = tuple(item for item in sample.labels if item[0] != "le")
        where = _where(labels)
        if le is None:
            raise UnjudgeableAnswer(
                f"{side}: a bucket series without an le label{where}; the bucket query must "
                "keep le (sum by (le, ...))")
        try:
            bound = float(le)
        except ValueError:
            bound = math.nan
        if math.isnan(bound):
            raise UnjudgeableAnswer(f"{side}: the bucket bound le={le!r}{where} is not a "
                                    "number")
        value = sample.value
        if value is None or not math.isfinite(value) or value < 0 or value > MAX_COUNT:
            raise UnjudgeableAnswer(f"{side}: the bucket le={le} holds {value}{where}; a "
                                    "bucket count is a whole number of requests, 0 to 2**53")
        buckets = groups.setdefault(labels, {})
        if bound in buckets:
            raise UnjudgeableAnswer(f"{side}: two buckets le={le}{where}; group "
                                    "the bucket query by le and the objective's by labels")
        buckets[bound] = value
    return {labels: _histogram(labels, buckets, side) for labels, buckets in groups.items()}


def _histogram(labels: Labels, buckets: dict[float, float], side: str) -> Histogram:
    bounds = tuple(sorted(buckets))
    where = _where(labels)
    if not math.isinf(bounds[-1]) or bounds[-1] < 0:
        raise UnjudgeableAnswer(f"{side}: no le=\"+Inf\" bucket{where}, so the number of "
                                "requests is unknown")
    if len(bounds) < 2:
        raise UnjudgeableAnswer(f"{side}: only the le=\"+Inf\" bucket{where}, no bucket "
                                "bound that could place the quantile")
    counts: list[int] = []
    previous = 0.0
    for bound in bounds:
        value = buckets[bound]
        if value < previous - DROP_TOLERANCE:
            raise UnjudgeableAnswer(
                f"{side}: the bucket le={format_value(bound, 'number')} counts {value:g} "
                f"requests, fewer than the {previous:g} of the bucket below it{where}; bucket "
                "counts grow with le (a counter reset in one bucket, or series of two "
                "histograms summed together)")
        previous = max(previous, value)
        counts.append(max(counts[-1] if counts else 0, round(value)))
    return Histogram(labels, bounds, tuple(counts))


def judge_buckets(current: Sequence[Sample], baseline: Sequence[Sample] | None,
                  bounds: Bounds, warn: Bounds, spec: Baseline | None,
                  confidence: Confidence, q: float, *, unit: Unit) -> Evaluation:
    """Every histogram's quantile against ``bounds``, then against its baseline's."""
    now = histograms(current, "the canary" if spec is not None else "the answer")
    before = histograms(baseline, "the baseline") if baseline is not None else {}
    observations = tuple(_observation(h, q) for h in now.values())
    if not now:
        return Evaluation(Verdict.NO_DATA, bounds, (), "no bucket series returned", warn)
    tests: list[Significance] = []
    missing: list[str] = []
    for labels, histogram in now.items():
        if histogram.total == 0:
            missing.append(f"no request in the window{_where(labels)}")
            continue
        if not bounds.empty:
            tests.append(threshold_test(histogram, q, bounds, confidence, unit))
        if spec is None:
            continue
        control = before.get(labels)
        if control is None or control.total == 0:
            missing.append(f"the baseline ({spec.describe()}) has no "
                           f"{'request' if control else 'bucket series'}{_where(labels)}")
            continue
        if control.bounds != histogram.bounds:
            raise UnjudgeableAnswer(
                f"the canary's and the baseline's buckets differ{_where(labels)} "
                f"({_bounds_text(histogram)} against {_bounds_text(control)}); compare "
                "histograms with the same bucket bounds")
        tests.append(comparison_test(histogram, control, q, spec, confidence, unit))
    return decide(Evaluation(Verdict.PASS, bounds, observations, "; ".join(missing), warn,
                             tests=tuple(tests),
                             baseline_value=(_only(before).quantile(q)
                                             if spec is not None and len(before) == 1
                                             and _only(before).total else None)), unit)


def threshold_test(histogram: Histogram, q: float, bounds: Bounds, confidence: Confidence,
                   unit: Unit) -> Significance:
    """The quantile against ``min`` and ``max``, by the counts of the nearest bucket bounds:
    for ``max``, held when at most the largest bound at or below it, broken when above the
    smallest bound at or above it; for ``min``, the mirror."""
    method = confidence.method
    at_most, above = histogram.at_most(q, method), histogram.above(q, method)
    b, n = histogram.bounds, histogram.total
    p_fail, p_pass = 1.0, 0.0
    used: set[int] = set()
    leaning: list[int] = []  # the counts that more traffic at the same rate would decide
    for side, limit in (("max", bounds.max), ("min", bounds.min)):
        if limit is None:
            continue
        below = max((i for i in range(len(b)) if (b[i] <= limit if side == "max"
                                                     else b[i] < limit)), default=None)
        over = min((i for i in range(len(b)) if b[i] >= limit), default=None)
        # The claim each index could make: at most b[below], above b[over].
        shows_at_most = at_most[below] if below is not None else 1.0
        shows_above = above[over] if over is not None else 1.0
        hold, breach = ((shows_at_most, shows_above) if side == "max"
                        else (shows_above, shows_at_most))
        p_fail, p_pass = min(p_fail, breach), max(p_pass, hold)
        used.update(i for i in (below, over) if i is not None)
        if below is not None and histogram.counts[below] >= q * n:
            leaning.append(histogram.counts[below])  # leans to "at most b[below]"
        elif over is not None and histogram.counts[over] < q * n:
            leaning.append(histogram.counts[over])  # leans to "above b[over]"
    order = sorted(used)
    low_q, high_q = histogram.interval(at_most, above, confidence.level)
    test = Significance(
        histogram.labels, "histogram buckets", method, confidence.level,
        (*(histogram.counts[i] for i in order), n), histogram.quantile(q), low_q, high_q,
        bounds.text(unit), float(histogram.counts[order[0]]) if order else 0.0,
        p_fail, p_pass, buckets=tuple(b[i] for i in order))
    if test.verdict is Verdict.INCONCLUSIVE:
        if leaning:
            extra, exact = more_needed(leaning[0], n, [("min", q)], confidence)
            more = more_text(extra, exact, "requests")
        else:
            shown = " and ".join(format_value(b[i], unit) for i in order)
            more = (f"the buckets next to the bound (le {shown}) cannot tell on which side of "
                    f"it the p{q * 100:g} lies: no amount of traffic decides; add a bucket "
                    "bound at the objective's bound, or set the bound to a bucket bound")
        test = replace(test, more=more)
    return test


def comparison_test(canary: Histogram, control: Histogram, q: float, spec: Baseline,
                    confidence: Confidence, unit: Unit) -> Significance:
    """The canary's quantile against the control's, within the allowed change.

    A breach is a pair of claims, "the canary's quantile lies above ``b1``" and "the
    control's is at most ``b0``", with ``b1`` beyond the change allowed from ``b0``; holding
    is the mirror pair. A pair is shown when both claims are shown at half the error rate
    (so both hold together at the level): its p-value is twice the larger of the two; the
    test's is the smallest over the pairs that would decide.
    """
    method = confidence.method
    c_at_most, c_above = canary.at_most(q, method), canary.above(q, method)
    k_at_most, k_above = control.at_most(q, method), control.above(q, method)
    b = canary.bounds
    p_fail, p_pass = 1.0, 0.0
    for side, change in (("max", spec.max_increase), ("min", spec.max_decrease)):
        if change is None:
            continue
        limit = _allowed(change, side)
        breach = hold = 1.0
        for i, canary_bound in enumerate(b):
            for j, control_bound in enumerate(b):
                allowed = limit(control_bound)
                if side == "max":
                    if canary_bound >= allowed:
                        breach = min(breach, 2 * max(c_above[i], k_at_most[j]))
                    if canary_bound <= allowed:
                        hold = min(hold, 2 * max(c_at_most[i], k_above[j]))
                else:
                    if canary_bound < allowed:
                        breach = min(breach, 2 * max(c_at_most[i], k_above[j]))
                    if canary_bound >= allowed:
                        hold = min(hold, 2 * max(c_above[i], k_at_most[j]))
        p_fail, p_pass = min(p_fail, breach), max(p_pass, hold)
    half = 1 - (1 - confidence.level) / 2
    canary_interval = canary.interval(c_at_most, c_above, half)
    control_interval = control.interval(k_at_most, k_above, half)
    relative = any(c is not None and c.relative for c in (spec.max_increase, spec.max_decrease))
    now, before = canary.quantile(q), control.quantile(q)
    if relative:
        estimate = now / before if before > 0 else math.inf
        low = canary_interval[0] / control_interval[1] if control_interval[1] > 0 else 0.0
        high = (canary_interval[1] / control_interval[0] if control_interval[0] > 0
                else math.inf)
    else:
        estimate = now - before
        low, high = (canary_interval[0] - control_interval[1],
                     canary_interval[1] - control_interval[0])
    against = ", ".join(f"{name} {change.text}" for name, change in (
        ("max_increase", spec.max_increase), ("max_decrease", spec.max_decrease))
        if change is not None)
    test = Significance(
        canary.labels, "histogram quantiles", method + (" ratio" if relative else " shift"),
        confidence.level, (canary.total, control.total), estimate, low, high, against,
        now, min(p_fail, 1.0), min(p_pass, 1.0),
        buckets=(*canary_interval, *control_interval))
    if test.verdict is Verdict.INCONCLUSIVE:
        test = replace(test, more=_more_for_comparison(canary, control, q, spec, unit))
    return test


def _more_for_comparison(canary: Histogram, control: Histogram, q: float, spec: Baseline,
                         unit: Unit) -> str:
    """More traffic narrows each quantile to its bucket at best: when even those buckets
    cannot tell the allowed change, the buckets are too coarse, whatever the traffic."""
    (c_low, c_high), (k_low, k_high) = canary.bucket_of(q), control.bucket_of(q)
    for side, change in (("max", spec.max_increase), ("min", spec.max_decrease)):
        if change is None:
            continue
        limit = _allowed(change, side)
        decidable = ((c_high <= limit(k_low) or c_low >= limit(k_high)) if side == "max"
                     else (c_low >= limit(k_high) or c_high < limit(k_low)))
        if not decidable:
            return (f"the canary's p{q * 100:g} lies in the bucket {format_value(c_low, unit)} "
                    f"to {format_value(c_high, unit)} and the baseline's in "
                    f"{format_value(k_low, unit)} to {format_value(k_high, unit)}, too wide to "
                    f"tell a change of {change.text}: no amount of traffic decides; add bucket "
                    "bounds closer together near the quantile")
    return "more requests on both sides would decide"


def _allowed(change: Change, side: str) -> Callable[[float], float]:
    """The canary's limit for a control quantile ``b``: ``b * 1.2`` for ``max_increase: 20%``."""
    sign = 1 if side == "max" else -1
    if change.relative:
        return lambda bound: bound * (1 + sign * change.amount)
    return lambda bound: bound + sign * change.amount


def _observation(histogram: Histogram, q: float) -> Observation:
    if histogram.total == 0:
        return Observation(histogram.labels, None, "no request in the window")
    return Observation(histogram.labels, histogram.quantile(q))


def _only(found: dict[Labels, Histogram]) -> Histogram:
    return next(iter(found.values()))


def _bounds_text(histogram: Histogram) -> str:
    return "le " + ", ".join(f"{bound:g}" for bound in histogram.bounds)


def _where(labels: Labels) -> str:
    shown = Sample(tuple(labels), None).label_text()
    return f" for {shown}" if shown else ""


__all__ = ["DROP_TOLERANCE", "Histogram", "comparison_test", "histograms", "judge_buckets",
           "threshold_test"]
