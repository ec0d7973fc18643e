"""The exact answers the quickstart's simulated traffic implies, objective by objective.

Every ``expected_*`` function recomputes one objective from the raw events of
``simulate.simulate()``, independently of SQL and PromQL, so tests can hold the plugin's
answers (from SQLite, Prometheus or VictoriaMetrics) against them. The functions for the gates
beyond one instant (``step_times``, ``expected_error_rate_steps``,
``expected_histogram_quantile_steps``, ``burn_rate``, ``percentile``) give the numbers behind
a sustained objective, a baseline, a burn-rate alert or a quantile of several values.

Agent requests come in two cohorts: ``canary`` (the new version, every other event) and
``control`` (the previous version, requests only); the error-rate functions take ``cohort``.

Windows are half-open, ``[at - window, at)``, like the SQL ``ts >= :window_start AND
ts < :window_end``. Quantiles use the nearest-rank method: the p-th percentile of n values is
the value at 1-based rank ``ceil(p * n / 100)`` in ascending order, which SQLite expresses as
``ORDER BY value LIMIT 1 OFFSET (p * count(*) + 99) / 100 - 1``. ``histogram_quantile`` is
what PromQL answers for the same values put in the exported buckets.

Stdlib only.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from simulate import (
    AT_UNIX,
    RESPONSE_BUCKETS,
    STAGE_WINDOWS,
    TOOL_CALL_BUCKETS,
    Events,
    Timed,
)

Histogram = Literal["tool_call_duration_seconds", "agent_response_duration_seconds"]

__all__ = [
    "Histogram",
    "Ratio",
    "burn_rate",
    "expected_adoption",
    "expected_agent_response_time_p95",
    "expected_error_rate",
    "expected_error_rate_steps",
    "expected_histogram_p95",
    "expected_histogram_quantile",
    "expected_histogram_quantile_steps",
    "expected_positive_ratings",
    "expected_resolution_rate",
    "expected_tool_call_latency_p95",
    "expected_tool_call_success_rate",
    "expected_values",
    "histogram_quantile",
    "nearest_rank",
    "percentile",
    "step_times",
]


_T = TypeVar("_T", bound=Timed)


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        """``numerator / denominator``; ``None`` (no data) when the denominator is 0."""
        return self.numerator / self.denominator if self.denominator else None


def nearest_rank(values: Iterable[float], percent: int = 95) -> float | None:
    """The value at rank ``ceil(percent * n / 100)`` of the sorted values; ``None`` if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[(percent * len(ordered) + 99) // 100 - 1]


def expected_error_rate(events: Events, stage: str, *, cohort: str = "canary",
                        window: float | None = None, at: float = AT_UNIX) -> Ratio:
    """Requests with outcome ``error`` / all requests of ``cohort``, by request time."""
    rows = [r for r in _window(events.agent_requests, stage, window, at) if r.cohort == cohort]
    return Ratio(sum(r.outcome == "error" for r in rows), len(rows))


def expected_tool_call_success_rate(events: Events, stage: str, *,
                                    window: float | None = None, at: float = AT_UNIX) -> Ratio:
    rows = _window(events.tool_calls, stage, window, at)
    return Ratio(sum(c.success for c in rows), len(rows))


def expected_positive_ratings(events: Events, stage: str, *, window: float | None = None,
                              at: float = AT_UNIX) -> Ratio:
    rows = _window(events.ratings, stage, window, at)
    return Ratio(sum(r.thumbs == "up" for r in rows), len(rows))


def expected_adoption(events: Events, stage: str, *, window: float | None = None,
                      at: float = AT_UNIX) -> Ratio:
    """Distinct users who clicked the button / distinct users who viewed a conflict page."""
    clickers = {c.user_id for c in _window(events.button_clicks, stage, window, at)}
    viewers = {v.user_id for v in _window(events.page_views, stage, window, at)}
    return Ratio(len(clickers), len(viewers))


def expected_resolution_rate(events: Events, stage: str, *, window: float | None = None,
                             at: float = AT_UNIX) -> Ratio:
    """Mergeable resolutions / sessions completed (by ``ended_ts``) in the window."""
    start, end = _bounds(stage, window, at)
    resolved = sum(r.mergeable for r in _window(events.resolutions, stage, window, at))
    completed = sum(1 for s in events.chat_sessions if s.stage == stage and s.completed
                    and s.ended_ts is not None and start <= s.ended_ts < end)
    return Ratio(resolved, completed)


def expected_tool_call_latency_p95(events: Events, stage: str, *, window: float | None = None,
                                   at: float = AT_UNIX) -> float | None:
    return nearest_rank(c.duration_s for c in _window(events.tool_calls, stage, window, at))


def expected_agent_response_time_p95(events: Events, stage: str, *,
                                     window: float | None = None,
                                     at: float = AT_UNIX) -> float | None:
    return nearest_rank(r.duration_s for r in _window(events.agent_responses, stage, window, at))


def histogram_quantile(q: float, buckets: Sequence[float],
                       values: Iterable[float]) -> float | None:
    """What PromQL ``histogram_quantile(q, ...)`` answers for ``values`` put in ``buckets``.

    Prometheus interpolates linearly inside the bucket that holds rank ``q * count`` (from 0
    for the first bucket) and answers the highest finite bound when that rank falls in
    ``+Inf``. Over ``rate()`` the counts are divided by the range, which changes nothing but
    the last bits of the float.
    """
    observed = list(values)
    if not observed:
        return None
    counts = [sum(v <= le for v in observed) for le in buckets]
    rank = q * len(observed)
    for index, (upper, count) in enumerate(zip(buckets, counts, strict=True)):
        if count >= rank:
            lower = buckets[index - 1] if index else 0.0
            below = counts[index - 1] if index else 0
            return lower + (upper - lower) * (rank - below) / (count - below)
    return buckets[-1]


def expected_histogram_p95(events: Events, stage: str, metric: Histogram, *,
                           window: float | None = None, at: float = AT_UNIX) -> float | None:
    """The production spec's ``histogram_quantile(0.95, ...)`` over ``metric``, exactly."""
    return expected_histogram_quantile(events, stage, metric, 0.95, window=window, at=at)


def expected_histogram_quantile(events: Events, stage: str, metric: Histogram, q: float, *,
                                window: float | None = None,
                                at: float = AT_UNIX) -> float | None:
    """``histogram_quantile(q, sum by (le) (rate(<metric>_bucket{stage=...}[window])))``."""
    if metric == "tool_call_duration_seconds":
        durations = [c.duration_s for c in _window(events.tool_calls, stage, window, at)]
        return histogram_quantile(q, TOOL_CALL_BUCKETS, durations)
    durations = [r.duration_s for r in _window(events.agent_responses, stage, window, at)]
    return histogram_quantile(q, RESPONSE_BUCKETS, durations)


# -- gates beyond one instant --------------------------------------------------------------


def step_times(over: float, step: float, *, at: float = AT_UNIX) -> list[float]:
    """The times a sustained objective is evaluated at: ``at - over``, ..., ``at`` (both)."""
    count = round(over / step)
    if count * step != over:
        raise ValueError(f"over {over} s is not a whole number of steps of {step} s")
    return [at - over + k * step for k in range(count + 1)]


def expected_error_rate_steps(events: Events, stage: str, *, window: float, over: float,
                              step: float, cohort: str = "canary",
                              at: float = AT_UNIX) -> list[tuple[float, Ratio]]:
    """The error rate over ``[t - window, t)`` at every step time ``t`` of the period."""
    return [(t, expected_error_rate(events, stage, cohort=cohort, window=window, at=t))
            for t in step_times(over, step, at=at)]


def expected_histogram_quantile_steps(events: Events, stage: str, metric: Histogram,
                                      q: float, *, window: float, over: float, step: float,
                                      at: float = AT_UNIX) -> list[tuple[float, float | None]]:
    """``histogram_quantile`` over ``[t - window, t)`` at every step time ``t``."""
    return [(t, expected_histogram_quantile(events, stage, metric, q, window=window, at=t))
            for t in step_times(over, step, at=at)]


def burn_rate(ratio: Ratio, target: float) -> float | None:
    """Error ratio / error budget (``1 - target``): 1 spends the budget exactly on time."""
    value = ratio.value
    return None if value is None else value / (1.0 - target)


def percentile(values: Iterable[float], percent: int) -> float | None:
    """The ``percent``-th percentile by linear interpolation between closest ranks.

    Hyndman and Fan type 7 (NumPy's default), taken from ``statistics.quantiles(...,
    method="inclusive")`` rather than written again; ``None`` without values.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    if percent == 100:
        return ordered[-1]
    if percent == 0:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[percent - 1]


def expected_values(events: Events, stage: str, *, window: float | None = None,
                    at: float = AT_UNIX) -> dict[str, float | None]:
    """Every objective of rollout.slo.yaml by name, whether or not it applies to ``stage``."""
    ratings = expected_positive_ratings(events, stage, window=window, at=at).value
    p95 = expected_tool_call_latency_p95(events, stage, window=window, at=at)
    return {
        "error_rate": expected_error_rate(events, stage, window=window, at=at).value,
        "tool_call_latency_p95": p95,
        "agent_response_time_p95": expected_agent_response_time_p95(
            events, stage, window=window, at=at),
        "positive_ratings": ratings,
        "ai_adoption": expected_adoption(events, stage, window=window, at=at).value,
        "tool_call_success_rate": expected_tool_call_success_rate(
            events, stage, window=window, at=at).value,
        "positive_ratings_target": ratings,
        "tool_call_latency_p95_target": p95,
        "successful_resolutions": expected_resolution_rate(
            events, stage, window=window, at=at).value,
    }


def _bounds(stage: str, window: float | None, at: float) -> tuple[float, float]:
    return at - (STAGE_WINDOWS[stage] if window is None else window), at


def _window(rows: Sequence[_T], stage: str, window: float | None, at: float) -> list[_T]:
    start, end = _bounds(stage, window, at)
    # rows are sorted by ts, so bisect finds the window without scanning all three days
    low = bisect.bisect_left(rows, start, key=_ts)
    high = bisect.bisect_left(rows, end, key=_ts)
    return [r for r in rows[low:high] if r.stage == stage]


def _ts(row: Timed) -> float:
    return row.ts
