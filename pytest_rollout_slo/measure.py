"""How one objective is measured: which queries it needs, and what their answers mean.

A :class:`Measurement` lists the queries of one objective at one stage (plain, ratio parts,
every step of a sustained period, a baseline, each burn-rate window), so that the plugin can
plan and run all of them before the items read their answers, and then turns the answers
into an :class:`~pytest_rollout_slo.evaluate.Evaluation`. No pytest, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pytest_rollout_slo.backends import Query, QueryResult, RangeQuery, Sample, Series
from pytest_rollout_slo.evaluate import (
    Evaluation,
    Observation,
    judge,
    observe_ratio,
    observe_values,
)
from pytest_rollout_slo.gates import (
    judge_baseline,
    judge_burn_rate,
    judge_sustained,
    observe_quantile,
)
from pytest_rollout_slo.model import ResolvedObjective, Scalar
from pytest_rollout_slo.quantity import parse_duration

Answer = QueryResult | tuple[Series, ...]


@dataclass(frozen=True)
class Need:
    """One query a measurement needs, under a name only this measurement uses."""

    name: str
    query: Query | RangeQuery


def query_params(variables: Mapping[str, Scalar], at: float) -> dict[str, str | int | float]:
    """What an SQL backend binds: every variable, ``:at`` and the window around it."""
    params: dict[str, str | int | float] = dict(variables)
    params["at"] = at
    window = variables.get("window")
    if window is not None:
        seconds = parse_duration(window)
        params["window"] = seconds
        params["window_start"] = at - seconds
        params["window_end"] = at
    return params


class Measurement:
    """The queries of one resolved objective at evaluation time ``at``, and their verdict.

    ``ranged`` says the backend answers range queries (Prometheus): a sustained objective is
    then one range query per part instead of one instant query per step.
    """

    def __init__(self, resolved: ResolvedObjective, at: float, *, ranged: bool) -> None:
        self.resolved = resolved
        self.objective = resolved.objective
        self.at = at
        self.ranged = ranged

    def needs(self) -> list[Need]:
        objective = self.objective
        if objective.sustained is not None:
            return self._sustained_needs()
        needs = self._instant("", self.resolved.variables, self.at)
        if objective.baseline is not None:
            baseline = objective.baseline
            at = self.at - (baseline.offset or 0.0)
            _, variables = self.resolved.with_variables(baseline.variables)
            needs += self._instant("baseline:", variables, at)
        if objective.burn_rate is not None:
            needs = []
            for index, alert in enumerate(objective.burn_rate.alerts):
                for side, text in (("long", alert.long_text), ("short", alert.short_text)):
                    _, variables = self.resolved.with_variables({"window": text})
                    needs += self._instant(f"burn:{index}:{side}:", variables, self.at)
        return needs

    def _instant(self, prefix: str, variables: Mapping[str, Scalar], at: float) -> list[Need]:
        queries, _ = self.resolved.with_variables(variables)
        params = query_params(variables, at)
        return [Need(f"{prefix}{part}", Query(text, at, params)) for part, text in queries.items()]

    def step_times(self) -> list[float]:
        sustained = self.objective.sustained
        assert sustained is not None
        count = math.floor(sustained.over / sustained.step + 1e-9)
        start = self.at - count * sustained.step
        return [start + k * sustained.step for k in range(count + 1)]

    def _sustained_needs(self) -> list[Need]:
        times = self.step_times()
        if self.ranged:
            step = self.objective.sustained.step  # type: ignore[union-attr]
            params = query_params(self.resolved.variables, self.at)
            return [Need(f"range:{part}", RangeQuery(text, times[0], times[-1], step, params))
                    for part, text in self.resolved.queries.items()]
        return [need for at in times
                for need in self._instant(f"step:{at!r}:", self.resolved.variables, at)]

    # -- answers -> verdict -----------------------------------------------------------------

    def evaluate(self, answers: Mapping[str, Answer],
                 format_time: Callable[[float], str]) -> Evaluation:
        """The verdict; raises AmbiguousAnswer when ratio series cannot be paired."""
        objective, resolved = self.objective, self.resolved
        if objective.sustained is not None:
            return judge_sustained(self._points(answers), resolved.bounds, resolved.warn,
                                   objective.sustained,
                                   missing_counts=objective.on_no_data == "fail",
                                   unit=objective.unit, format_time=format_time)
        if objective.burn_rate is not None:
            windows = {}
            for index, alert in enumerate(objective.burn_rate.alerts):
                for side, text in (("long", alert.long_text), ("short", alert.short_text)):
                    windows[(index, side)] = self._observe(answers, f"burn:{index}:{side}:",
                                                           text)[0]
            return judge_burn_rate(windows, objective.burn_rate)
        observations, reason = self._observe(answers, "", resolved.window_text)
        if objective.baseline is not None:
            before, _ = self._observe(answers, "baseline:", resolved.window_text)
            return judge_baseline(observations, before, resolved.bounds, resolved.warn,
                                  objective.baseline, unit=objective.unit,
                                  ignore_labels=tuple(objective.baseline.variables))
        return judge(observations, resolved.bounds, warn=resolved.warn,
                     empty_reason=reason or "no series returned")

    def _observe(self, answers: Mapping[str, Answer], prefix: str, window: str
                 ) -> tuple[list[Observation], str]:
        samples = {part: _samples(answers[f"{prefix}{part}"]) for part in self.resolved.queries}
        return self._observe_samples(samples, window)

    def _observe_samples(self, samples: Mapping[str, Sequence[Sample]], window: str
                         ) -> tuple[list[Observation], str]:
        objective = self.objective
        if objective.ratio is not None:
            return observe_ratio(samples["numerator"], samples["denominator"],
                                 objective.ratio.min_denominator, window or None)
        observations = observe_values(samples["query"])
        if objective.quantile is not None:
            return observe_quantile(observations, objective.quantile)
        return observations, "" if observations else "no series returned"

    def _points(self, answers: Mapping[str, Answer]) -> list[tuple[float, list[Observation]]]:
        times = self.step_times()
        window = self.resolved.window_text
        if not self.ranged:
            points = []
            for at in times:
                observations, _ = self._observe(answers, f"step:{at!r}:", window)
                points.append((at, observations))
            return points
        # A range answer holds every series' values; regroup them by step time. Prometheus
        # aligns points to start + k * step, so rounding to the millisecond matches them.
        by_time: dict[float, dict[str, list[Sample]]] = {
            round(at, 3): {part: [] for part in self.resolved.queries} for at in times}
        for part in self.resolved.queries:
            answer = answers[f"range:{part}"]
            assert isinstance(answer, tuple)
            for series in answer:
                for at, value in series.points:
                    slot = by_time.get(round(at, 3))
                    if slot is not None:
                        slot[part].append(Sample(series.labels, value))
        return [(at, self._observe_samples(by_time[round(at, 3)], window)[0]) for at in times]


def _samples(answer: Answer) -> tuple[Sample, ...]:
    if isinstance(answer, QueryResult):
        return answer.samples
    raise TypeError("an instant query was answered with a range answer")
