"""Spec files as pytest collectors, objectives as pytest items.

``SpecFile`` loads one spec (a bad spec is a collection error naming file, line and key) and
yields one ``ObjectiveItem`` per objective that applies to the chosen stage. The item asks the
executor for its answers, judges them, records JUnit properties, and fails, skips or passes.
Collection never touches a backend.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo.backends.base import Answer, BackendType, Query
from pytest_rollout_slo.errors import BackendError, SloError, SloWarning, SpecError
from pytest_rollout_slo.plan.executor import BackendKey, Executor
from pytest_rollout_slo.plan.needs import Measurement, Need, query_params
from pytest_rollout_slo.quantity import format_time
from pytest_rollout_slo.report.text import Outcome, failure_text, properties
from pytest_rollout_slo.spec.load import ResolvedObjective, Spec, load_spec
from pytest_rollout_slo.verdict.instant import AmbiguousAnswer, Verdict
from pytest_rollout_slo.verdict.objective import judge_objective


@dataclass
class RunState:
    """The session's settings and shared objects, kept in ``config.stash``."""

    stage: str
    at: float
    full_trace: bool
    strict: bool
    backend_types: dict[str, BackendType]
    executor: Executor
    specs: dict[Path, Spec] = field(default_factory=dict)
    stages_seen: dict[str, list[Path]] = field(default_factory=dict)
    selected: int = 0
    started: float = field(default_factory=time.time)
    usage_error: str = ""
    """A usage error an xdist worker found, reported by the controller at the end."""


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
            if state.stage not in objective.bounds:
                continue
            for combination in objective.combinations():
                resolved = spec.resolve(objective, state.stage, combination)
                state.selected += 1
                title = resolved.title
                # The node id is given as text: pytest >= 9.2 would otherwise build a
                # structured id whose `[stage]` is not split off as parameters, and --lf
                # could never match it with the ids it saved.
                yield ObjectiveItem.from_parent(self, name=title, nodeid=f"{self.nodeid}::{title}",
                                                resolved=resolved, spec=spec)


class ObjectiveItem(pytest.Item):
    def __init__(self, *, resolved: ResolvedObjective, spec: Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolved = resolved
        self.spec = spec
        self.backend_spec = spec.backends[resolved.objective.backend]
        self.backend_key = BackendKey(spec.path, self.backend_spec.name)
        self._planned: tuple[Measurement, list[Need]] | None = None

    def measurement(self, at: float) -> tuple[Measurement, list[Need]]:
        """What this item queries at ``at``, planned once for the prefetch and the item;
        asks for the backend, so only at run time."""
        if self._planned is not None and self._planned[0].at == at:
            return self._planned
        state = self.config.stash[STATE]
        try:
            ranged = state.executor.ranged(self.backend_key, self.backend_spec)
        except BackendError:
            ranged = False  # the item reports the error when it runs
        measurement = Measurement(self.resolved, at, ranged=ranged)
        self._planned = (measurement, measurement.needs())
        return self._planned

    def needs(self, at: float) -> list[Need]:
        return self.measurement(at)[1]

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        outcome = self._evaluate(state)
        if outcome.verdict is not Verdict.PASS:  # kept for repr_failure; a pass needs nothing
            self.stash[OUTCOME] = outcome
        self.user_properties.extend(properties(outcome))
        verdict = outcome.verdict
        self.config.hook.pytest_slo_verdict(item=self, verdict=verdict.value)
        if verdict is Verdict.PASS:
            return
        text = failure_text(outcome)
        if verdict is Verdict.WARN and not state.strict:
            # Shown three ways: pytest's warnings summary, the captured output (JUnit
            # system-out) and the summary table.
            print(text)
            # Attributed to the objective's line in the spec, where the warn level is set.
            warnings.warn_explicit(SloWarning(text.splitlines()[0]), SloWarning,
                                   filename=str(self.path),
                                   lineno=self.resolved.objective.line)
            return
        if verdict is Verdict.NO_DATA and outcome.on_no_data != "fail":
            if outcome.on_no_data == "skip":
                # Reported at the objective's line in the spec, not at this line.
                raise pytest.skip.Exception(text.splitlines()[0], _use_item_location=True)
            print(text)
            return
        raise SloCheckFailed(text)

    def _evaluate(self, state: RunState) -> Outcome:
        executor = state.executor
        objective = self.resolved.objective
        measurement, needs = self.measurement(state.at)
        self._planned = None  # the answers are read once; keep no plan past the item
        queries = dict(self.resolved.queries)
        main = needs[0].query if needs else None
        # Start as an error: only a complete, judged answer turns it into anything else.
        outcome = Outcome(
            service=self.spec.service, objective=objective.name, stage=self.resolved.stage,
            verdict=Verdict.ERROR, bounds=self.resolved.bounds, unit=objective.unit,
            on_no_data=objective.on_no_data, at=state.at,
            # Burn-rate alerts bring their own windows; the stage's window would mislead.
            window_text="" if objective.burn_rate else self.resolved.window_text,
            backend=f"{self.backend_spec.name} ({self.backend_spec.type})",
            queries=queries,
            # The bound values of the objective's own query at the evaluation time.
            parameters=({} if objective.burn_rate else
                        main.params if isinstance(main, Query) and main.at == state.at
                        else query_params(self.resolved.variables, state.at)),
            title=self.resolved.title, strict=state.strict,
            matrix=", ".join(f"{k}={v}" for k, v in self.resolved.combination),
            limits=_limits(self.resolved))
        try:
            backend = executor.backend(self.backend_key, self.backend_spec)
            # The link shows the objective's own query at the evaluation time.
            shown = Query(next(iter(queries.values())), state.at)
            # A burn-rate objective's queries take each alert's window: no single link.
            outcome = replace(outcome, backend=f"{self.backend_spec.name} ({backend.describe()})",
                              link=None if objective.burn_rate else backend.graph_url(shown))
            answers: dict[str, Answer] = {
                need.name: executor.result(self.backend_key, self.backend_spec, need.query)
                for need in needs}
            evaluation = judge_objective(measurement, answers, format_time)
        except BackendError as exc:
            return replace(outcome, error=exc.message)
        except AmbiguousAnswer as exc:
            return replace(outcome, error=str(exc))
        except Exception as exc:
            # A bug in a backend or in this plugin: still an error verdict with properties and
            # a table row, never a pass; --slo-full-trace shows where it came from.
            if state.full_trace:
                raise
            return replace(outcome, error=f"internal error ({type(exc).__name__}: {exc}); "
                                          "run with --slo-full-trace for the traceback")
        warned = tuple(w for answer in answers.values() if not isinstance(answer, tuple)
                       for w in answer.warnings)
        return replace(outcome, verdict=evaluation.verdict, evaluation=evaluation,
                       warnings=warned)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        state = self.config.stash[STATE]
        if isinstance(excinfo.value, SloCheckFailed) and not state.full_trace:
            return excinfo.value.text
        if isinstance(excinfo.value, SloWarning) and OUTCOME in self.stash and not state.full_trace:
            # `-W error` turned the warn verdict into an exception: still a plain verdict text.
            return (failure_text(self.stash[OUTCOME])
                    + "\n  (a warn verdict: failed because warnings are errors here, -W error)")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.resolved.objective.line - 1, self.name


def _limits(resolved: ResolvedObjective) -> tuple[tuple[str, str], ...]:
    objective = resolved.objective
    limits: list[tuple[str, str]] = []
    if objective.baseline is not None:
        limits.append(("baseline", objective.baseline.describe()))
        limits.extend((name, change.text) for name, change in (
            ("max_increase", objective.baseline.max_increase),
            ("max_decrease", objective.baseline.max_decrease)) if change is not None)
    if objective.sustained is not None:
        sustained = objective.sustained
        limits.append(("sustained", f"over {sustained.over_text}, step {sustained.step_text}"))
        limits.append(("max_violations", str(sustained.max_violations)))
    if objective.burn_rate is not None:
        limits.append(("burn_rate_target", f"{objective.burn_rate.target * 100:g}%"))
    return tuple(limits)


__all__ = ["OUTCOME", "STATE", "ObjectiveItem", "RunState", "SloCheckFailed", "SpecFile"]
