"""Spec files as pytest collectors, objectives as pytest items.

``SpecFile`` loads one spec (a bad spec is a collection error naming file, line and key) and
yields one ``ObjectiveItem`` per objective that applies to the chosen stage. The item asks the
executor for its answers, judges them, records JUnit properties, and fails, skips or passes.
Collection never touches a backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo.backends import BackendType, Query, QueryResult
from pytest_rollout_slo.errors import BackendError, SloError, SpecError
from pytest_rollout_slo.evaluate import (
    AmbiguousAnswer,
    Evaluation,
    Verdict,
    judge,
    observe_ratio,
    observe_values,
)
from pytest_rollout_slo.execute import BackendKey, Executor
from pytest_rollout_slo.report import Outcome, failure_text, properties
from pytest_rollout_slo.spec import ResolvedObjective, Spec, load_spec


@dataclass
class RunState:
    """The session's settings and shared objects, kept in ``config.stash``."""

    stage: str
    at: float
    full_trace: bool
    backend_types: dict[str, BackendType]
    executor: Executor
    specs: dict[Path, Spec] = field(default_factory=dict)
    stages_seen: dict[str, list[Path]] = field(default_factory=dict)
    selected: int = 0


STATE = pytest.StashKey[RunState]()
OUTCOME = pytest.StashKey[Outcome]()


class SloCheckFailed(SloError):
    """An objective did not hold (fail, error, or no data under ``on_no_data: fail``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class SpecFile(pytest.File):
    def collect(self) -> Iterator[ObjectiveItem]:
        state = self.config.stash[STATE]
        try:
            spec = load_spec(self.path, state.backend_types)
        except SpecError as exc:
            raise self.CollectError(f"spec error: {exc}") from exc
        state.specs[self.path] = spec
        for stage in spec.stages:
            state.stages_seen.setdefault(stage, []).append(self.path)
        if state.stage not in spec.stages:
            return
        for objective in spec.objectives:
            if state.stage in objective.bounds:
                state.selected += 1
                yield ObjectiveItem.from_parent(
                    self, name=f"{objective.name}[{state.stage}]",
                    resolved=spec.resolve(objective, state.stage), spec=spec)


class ObjectiveItem(pytest.Item):
    def __init__(self, *, resolved: ResolvedObjective, spec: Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolved = resolved
        self.spec = spec
        self.backend_spec = spec.backends[resolved.objective.backend]
        self.backend_key = BackendKey(spec.path, self.backend_spec.name)

    def queries(self, at: float) -> dict[str, Query]:
        """The resolved queries of this item at evaluation time ``at``."""
        params: dict[str, str | int | float] = dict(self.resolved.variables)
        params["at"] = at
        if self.resolved.window is not None:
            params["window"] = self.resolved.window
            params["window_start"] = at - self.resolved.window
            params["window_end"] = at
        return {part: Query(text, at, params) for part, text in self.resolved.queries.items()}

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        outcome = self._evaluate(state)
        self.stash[OUTCOME] = outcome
        self.user_properties.extend(properties(outcome))
        if outcome.verdict is Verdict.PASS:
            return
        if outcome.verdict is Verdict.NO_DATA and outcome.on_no_data != "fail":
            if outcome.on_no_data == "skip":
                pytest.skip(failure_text(outcome).splitlines()[0])
            return
        raise SloCheckFailed(failure_text(outcome))

    def _evaluate(self, state: RunState) -> Outcome:
        executor = state.executor
        objective = self.resolved.objective
        queries = self.queries(state.at)
        # Start as an error: only a complete, judged answer turns it into anything else.
        outcome = Outcome(
            service=self.spec.service, objective=objective.name, stage=self.resolved.stage,
            verdict=Verdict.ERROR, bounds=self.resolved.bounds, unit=objective.unit,
            on_no_data=objective.on_no_data, at=state.at, window=self.resolved.window,
            window_text=self.resolved.window_text,
            backend=f"{self.backend_spec.name} ({self.backend_spec.type})",
            queries={part: q.text for part, q in queries.items()},
            parameters=next(iter(queries.values())).params)
        try:
            backend = executor.backend(self.backend_key, self.backend_spec)
            outcome = replace(outcome, backend=f"{self.backend_spec.name} ({backend.describe()})",
                              link=backend.graph_url(next(iter(queries.values()))))
            answers: dict[str, QueryResult] = {
                part: executor.result(self.backend_key, self.backend_spec, query)
                for part, query in queries.items()}
        except BackendError as exc:
            return replace(outcome, error=exc.message)
        try:
            evaluation = self._judge(answers)
        except AmbiguousAnswer as exc:
            return replace(outcome, error=str(exc))
        warnings = tuple(w for answer in answers.values() for w in answer.warnings)
        return replace(outcome, verdict=evaluation.verdict, evaluation=evaluation,
                       warnings=warnings)

    def _judge(self, answers: dict[str, QueryResult]) -> Evaluation:
        bounds = self.resolved.bounds
        ratio = self.resolved.objective.ratio
        if ratio is None:
            return judge(observe_values(answers["query"].samples), bounds)
        window = self.resolved.window_text or None
        observations, reason = observe_ratio(answers["numerator"].samples,
                                             answers["denominator"].samples,
                                             ratio.min_denominator, window)
        return judge(observations, bounds, empty_reason=reason)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        state = self.config.stash[STATE]
        if isinstance(excinfo.value, SloCheckFailed) and not state.full_trace:
            return excinfo.value.text
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.resolved.objective.line - 1, self.name


__all__ = ["OUTCOME", "STATE", "ObjectiveItem", "RunState", "SloCheckFailed", "SpecFile"]
