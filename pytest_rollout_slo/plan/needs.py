"""Which queries one objective needs at one stage.

A :class:`Measurement` lists the queries of one objective at one stage (plain, ratio parts,
every step of a sustained period, a baseline, each burn-rate window), so that the plugin can
plan and run all of them before the items read their answers;
:func:`pytest_rollout_slo.verdict.objective.judge_objective` reads them back. No pytest, no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_rollout_slo.backends.base import Query, RangeQuery
from pytest_rollout_slo.quantity import parse_duration
from pytest_rollout_slo.spec.model import ResolvedObjective, Scalar


@dataclass(frozen=True)
class Need:
    """One query a measurement needs, under a name only this measurement uses."""

    name: str
    query: Query | RangeQuery


@functools.lru_cache(maxsize=256)  # a run has a few windows and thousands of queries
def _seconds(window: Scalar) -> float:
    return parse_duration(window)


def query_params(variables: Mapping[str, Scalar], at: float) -> dict[str, str | int | float]:
    """What an SQL backend binds: every variable, ``:at`` and the window around it."""
    params: dict[str, str | int | float] = dict(variables)
    params["at"] = at
    window = variables.get("window")
    if window is not None:
        seconds = _seconds(window)
        params["window"] = seconds
        params["window_start"] = at - seconds
        params["window_end"] = at
    return params


class Measurement:
    """The queries of one resolved objective at evaluation time ``at``.

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
        # The objective's own variables: its queries are resolved already (at collection).
        queries = (self.resolved.gate_queries if variables is self.resolved.variables
                   else self.resolved.with_variables(variables, gate=True)[0])
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


__all__ = ["Measurement", "Need", "query_params"]
