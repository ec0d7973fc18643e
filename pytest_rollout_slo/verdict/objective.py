"""Judging one objective from the answers to the queries its measurement planned.

:func:`judge_objective` reads the answers under the names
:class:`~pytest_rollout_slo.plan.needs.Measurement` gave its needs and dispatches to the
instant judge or to the gate beyond it (sustained, baseline, burn rate, quantile). No pytest,
no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pytest_rollout_slo.backends.base import Answer, QueryResult, Sample
from pytest_rollout_slo.plan.needs import Measurement
from pytest_rollout_slo.verdict.buckets import judge_buckets
from pytest_rollout_slo.verdict.confidence import judge_baseline_counts, judge_shares
from pytest_rollout_slo.verdict.gates import (
    judge_baseline,
    judge_burn_rate,
    judge_sustained,
    observe_quantile,
    pair_baseline,
)
from pytest_rollout_slo.verdict.instant import (
    Evaluation,
    Observation,
    judge,
    observe_ratio,
    observe_values,
)
from pytest_rollout_slo.verdict.samples import judge_samples


def judge_objective(measurement: Measurement, answers: Mapping[str, Answer],
                    format_time: Callable[[float], str]) -> Evaluation:
    """The verdict; raises AmbiguousAnswer when ratio series cannot be paired."""
    objective, resolved = measurement.objective, measurement.resolved
    if objective.sustained is not None:
        return judge_sustained(_points(measurement, answers), resolved.bounds, resolved.warn,
                               objective.sustained,
                               missing_counts=objective.on_no_data == "fail",
                               unit=objective.unit, format_time=format_time)
    if objective.burn_rate is not None:
        windows = {}
        for index, alert in enumerate(objective.burn_rate.alerts):
            for side, text in (("long", alert.long_text), ("short", alert.short_text)):
                windows[(index, side)] = _observe(measurement, answers,
                                                  f"burn:{index}:{side}:", text)[0]
        return judge_burn_rate(windows, objective.burn_rate)
    confidence = resolved.confidence
    if confidence is not None and objective.buckets is not None:
        return judge_buckets(_samples(answers["buckets"]),
                             (_samples(answers["baseline:buckets"])
                              if objective.baseline is not None else None),
                             resolved.bounds, resolved.warn, objective.baseline, confidence,
                             objective.buckets.q, unit=objective.unit)
    if (confidence is not None and objective.quantile is not None
            and objective.baseline is not None):
        return judge_samples(observe_values(_samples(answers["query"])),
                             observe_values(_samples(answers["baseline:query"])),
                             resolved.bounds, resolved.warn, objective.baseline, confidence,
                             objective.quantile, unit=objective.unit)
    observations, reason = _observe(measurement, answers, "", resolved.window_text)
    if objective.baseline is not None:
        before, _ = _observe(measurement, answers, "baseline:", resolved.window_text)
        if confidence is not None:
            pairs = pair_baseline(observations, before, tuple(objective.baseline.variables))
            return judge_baseline_counts(observations, before, pairs, resolved.bounds,
                                         resolved.warn, objective.baseline, confidence,
                                         unit=objective.unit)
        return judge_baseline(observations, before, resolved.bounds, resolved.warn,
                              objective.baseline, unit=objective.unit,
                              ignore_labels=tuple(objective.baseline.variables))
    if confidence is not None:
        return judge_shares(observations, resolved.bounds, resolved.warn, confidence,
                            unit=objective.unit, empty_reason=reason or "no series returned")
    return judge(observations, resolved.bounds, warn=resolved.warn,
                 empty_reason=reason or "no series returned")


def _observe(measurement: Measurement, answers: Mapping[str, Answer], prefix: str,
             window: str) -> tuple[list[Observation], str]:
    samples = {part: _samples(answers[f"{prefix}{part}"])
               for part in measurement.resolved.queries}
    return _observe_samples(measurement, samples, window)


def _observe_samples(measurement: Measurement, samples: Mapping[str, Sequence[Sample]],
                     window: str) -> tuple[list[Observation], str]:
    objective = measurement.objective
    if objective.ratio is not None:
        return observe_ratio(samples["numerator"], samples["denominator"],
                             objective.ratio.min_denominator, window or None)
    observations = observe_values(samples["query"])
    if objective.quantile is not None:
        return observe_quantile(observations, objective.quantile)
    return observations, "" if observations else "no series returned"


def _points(measurement: Measurement, answers: Mapping[str, Answer]
            ) -> list[tuple[float, list[Observation]]]:
    times = measurement.step_times()
    window = measurement.resolved.window_text
    parts = measurement.resolved.queries
    if not measurement.ranged:
        return [(at, _observe(measurement, answers, f"step:{at!r}:", window)[0])
                for at in times]
    # A range answer holds every series' values; regroup them by step time. Prometheus
    # aligns points to start + k * step, so rounding to the millisecond matches them.
    by_time: dict[float, dict[str, list[Sample]]] = {
        round(at, 3): {part: [] for part in parts} for at in times}
    for part in parts:
        answer = answers[f"range:{part}"]
        assert isinstance(answer, tuple)
        for series in answer:
            for at, value in series.points:
                slot = by_time.get(round(at, 3))
                if slot is not None:
                    slot[part].append(Sample(series.labels, value))
    return [(at, _observe_samples(measurement, by_time[round(at, 3)], window)[0])
            for at in times]


def _samples(answer: Answer) -> tuple[Sample, ...]:
    if isinstance(answer, QueryResult):
        return answer.samples
    raise TypeError("an instant query was answered with a range answer")


__all__ = ["judge_objective"]
