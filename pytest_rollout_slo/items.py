"""Spec files as pytest collectors, objectives as pytest items.

``SpecFile`` loads one spec (a bad spec is a collection error naming file, line and key) and
yields one ``ObjectiveItem`` per objective that applies to the chosen stage. The item asks the
executor for its answers, judges them, records JUnit properties, and fails, skips or passes.
Collection never touches a backend.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rollout_slo.backends.base import Answer, BackendType, Query
from pytest_rollout_slo.backends.freshness import freshness_evidence
from pytest_rollout_slo.errors import BackendError, SloError, SloWarning, SpecError
from pytest_rollout_slo.plan.executor import BackendKey, Executor
from pytest_rollout_slo.plan.needs import Measurement, Need, query_params
from pytest_rollout_slo.quantity import format_time
from pytest_rollout_slo.report.junit import properties
from pytest_rollout_slo.report.text import failure_text
from pytest_rollout_slo.spec.load import ResolvedObjective, Spec, load_spec
from pytest_rollout_slo.verdict.confidence import adjust_family
from pytest_rollout_slo.verdict.exposure import ExposureResult, check_stage
from pytest_rollout_slo.verdict.instant import Evaluation, UnjudgeableAnswer, Verdict
from pytest_rollout_slo.verdict.objective import judge_objective
from pytest_rollout_slo.verdict.record import VerdictRecord
from pytest_rollout_slo.verdict.stats import Adjustment


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
    gated: int = 0
    """How many of ``selected`` judge the stage (not ``track: true``)."""
    stage_ids: set[str] = field(default_factory=set)
    """Every objective of the stage that was collected, before any deselection: what a whole
    run judges, so that a run judging fewer is known to be partial."""
    judged: dict[str, VerdictRecord] = field(default_factory=dict)
    """Each objective's record once judged: a rerun (pytest-rerunfailures) reports the same
    verdict from the same answers instead of asking again until a query happens to pass."""
    started: float = field(default_factory=time.time)
    usage_error: str = ""
    """Why the gate did not run (a usage error, also one an xdist worker found)."""
    decision: str = ""
    """The run's last terminal line, ``SLO gate beta: PROMOTE (...)``."""
    decision_word: str = ""
    """``PROMOTE``, ``HOLD`` or ``PARTIAL``: the colour of that line."""
    exposures: dict[tuple[Path, str], ExposureResult | None] = field(default_factory=dict)
    """Each spec file's exposure check at the stage, made once per run (verdict.exposure)."""
    adjustment: Adjustment = "holm"
    """``--slo-confidence-adjustment``: how the run's confidence tests are adjusted."""
    family: dict[str, VerdictRecord] | None = None
    """The records of every objective judged by confidence, adjusted as one family: judged
    together when the first of them runs (see ObjectiveItem._family)."""


STATE = pytest.StashKey[RunState]()
RECORD = pytest.StashKey[VerdictRecord]()
"""An objective's record, from its call until its call report carries it."""
MESSAGE = pytest.StashKey[str]()
"""The failure text of a verdict other than pass, for repr_failure."""
_JUDGED = pytest.StashKey[tuple[VerdictRecord, bool]]()
"""An objective's record from its setup, where it is judged, to its call."""
_BUG = pytest.StashKey[Exception]()
"""Under --slo-full-trace: an exception of the plugin or a backend, raised again by the call."""


class SloCheckFailed(SloError):
    """An objective did not hold (fail, error, no data under ``on_no_data: fail``, or
    inconclusive under ``on_inconclusive: fail``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


if TYPE_CHECKING:  # pytest types fail.Exception as an attribute, not as a class to subclass
    class _Failed(Exception):
        def __init__(self, msg: str | None = None, pytrace: bool = True) -> None: ...
else:
    _Failed = pytest.fail.Exception


class NotEvaluated(_Failed):
    """An objective could not be evaluated (an error verdict): raised in setup, so pytest
    reports an error and JUnit writes ``<error>``. Shown without a traceback."""

    # pytest names an exception by its module and class in the short summary; like its own
    # Failed, this one reads "NotEvaluated: ..." there.
    __module__ = "builtins"

    def __init__(self, text: str) -> None:
        super().__init__(text, pytrace=False)


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
                state.gated += not objective.track
                title = resolved.title
                state.stage_ids.add(f"{self.nodeid}::{title}")
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

    def setup(self) -> None:
        """Judge the objective; an error verdict ends here, as an error of the item.

        An objective that could not be evaluated (a backend error, an ambiguous answer) did
        not fail its threshold: raised in setup, pytest reports it as an error, JUnit writes
        ``<error>`` and GitLab counts it apart from the failures. The exit code is 1 either way.
        """
        state = self.config.stash[STATE]
        try:
            record, fresh = self._record(state)
        except Exception as exc:
            # Only under --slo-full-trace: the bug's traceback is shown by the call, through
            # repr_failure, which never shows a frame's locals (a setup error would under -l).
            self.stash[_BUG] = exc
            return
        self.stash[_JUDGED] = (record, fresh)
        if record.verdict is Verdict.ERROR:
            text = self._publish(record, fresh)
            raise NotEvaluated(text)

    def _record(self, state: RunState) -> tuple[VerdictRecord, bool]:
        """The objective's record, judged once per run, and whether it was judged just now.

        A rerun (pytest-rerunfailures) gets the record it already has instead of asking the
        backend until an answer happens to pass.
        """
        record = state.judged.get(self.nodeid)
        if record is not None:
            return record, False
        family = self._family(state) if self.resolved.confidence is not None else {}
        track = self.resolved.objective.track
        if self.nodeid in family:
            record = family[self.nodeid].tracked() if track else family[self.nodeid]
        else:
            record, evaluation = self._evaluate(state)
            record = (record.tracked() if track else record) if evaluation is None else (
                record.judged(evaluation, record.backend_warnings, tracked=track))
        if state.executor.redact.active:
            # Every configured secret out of every text made from the record (terminal,
            # JUnit, Markdown, JSON), labels included: a server may echo a header into its
            # labels.
            record = VerdictRecord.from_dict(state.executor.redact.deep(record.to_dict()))
        state.judged[self.nodeid] = record
        return record, True

    def _publish(self, record: VerdictRecord, fresh: bool) -> str:
        """Record the verdict where every report finds it; its failure text, or '' for a pass."""
        verdict = record.verdict
        text = "" if verdict is Verdict.PASS else failure_text(record)
        self.stash[RECORD] = record
        if text:  # kept for repr_failure; a pass needs nothing
            self.stash[MESSAGE] = text
        # A rerun sets them again rather than twice (user_properties outlive a run).
        self.user_properties[:] = [p for p in self.user_properties
                                   if not str(p[0]).startswith("slo.")]
        self.user_properties.extend(properties(record, text))
        if fresh:  # once per objective and run, however often it is rerun
            self.config.hook.pytest_slo_verdict(item=self, verdict=verdict.value, record=record)
        return text

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        bug = self.stash.get(_BUG, None)
        if bug is not None:
            raise bug
        record, fresh = self.stash.get(_JUDGED, None) or self._record(state)
        verdict = record.verdict
        text = self._publish(record, fresh)
        if verdict in (Verdict.PASS, Verdict.TRACKED):
            return
        # What pytest makes of a verdict other than pass: the objective's policy for no data
        # and for inconclusive; a warn (and a policy of warn) fails under --slo-strict.
        policy = {Verdict.NO_DATA: record.on_no_data, Verdict.WARN: "warn",
                  Verdict.INCONCLUSIVE: record.on_inconclusive}.get(verdict, "fail")
        if policy == "warn" and not state.strict:
            # Shown three ways: pytest's warnings summary, the captured output (JUnit
            # system-out) and the summary table.
            print(text)
            # Attributed to the objective's line in the spec, where the warn level is set.
            warnings.warn_explicit(SloWarning(text.splitlines()[0]), SloWarning,
                                   filename=str(self.path),
                                   lineno=self.resolved.objective.line)
            return
        if policy == "skip":
            # Reported at the objective's line in the spec, not at this line.
            raise pytest.skip.Exception(text.splitlines()[0], _use_item_location=True)
        if policy == "pass":
            print(text)
            return
        raise SloCheckFailed(text)

    def _family(self, state: RunState) -> dict[str, VerdictRecord]:
        """Every confidence objective of the run, judged at once, with the breach p-values
        of all their tests adjusted together (``--slo-confidence-adjustment``).

        The family is the run's selected items (``session.items``): under pytest-xdist each
        worker holds all of them, so every worker judges the same family and reads the same
        adjusted verdicts; a worker then also queries the confidence objectives that other
        workers run (their answers are not shared across processes).
        """
        if state.family is not None:
            return state.family
        members = [item for item in self.session.items
                   if isinstance(item, ObjectiveItem) and item.resolved.confidence is not None
                   and not item.resolved.objective.track]
        if self not in members:
            members.append(self)
        judged = [(item, *item._evaluate(state)) for item in members]
        evaluated = [(item, record, evaluation) for item, record, evaluation in judged
                     if evaluation is not None]
        adjusted = adjust_family([evaluation for _, _, evaluation in evaluated],
                                 state.adjustment,
                                 [item.resolved.objective.unit for item, _, _ in evaluated])
        family = {item.nodeid: record for item, record, evaluation in judged
                  if evaluation is None}
        for (item, record, _), evaluation in zip(evaluated, adjusted, strict=True):
            family[item.nodeid] = record.judged(evaluation, record.backend_warnings)
        state.family = family
        return family

    def _evaluate(self, state: RunState) -> tuple[VerdictRecord, Evaluation | None]:
        """The record before judging (with its backend's warnings) and the evaluation; no
        evaluation when the objective could not be judged (the record is then an error)."""
        executor = state.executor
        objective = self.resolved.objective
        measurement, needs = self.measurement(state.at)
        self._planned = None  # the answers are read once; keep no plan past the item
        queries = self.resolved.gate_queries
        main = needs[0].query if needs else None
        # Start as an error: only a complete, judged answer turns it into anything else.
        # The record is built once, when what the checks and the backend found is known.
        def record(**found: Any) -> VerdictRecord:
            backend = found.pop("backend", f"{self.backend_spec.name} ({self.backend_spec.type})")
            return VerdictRecord.planned(
                self.resolved, nodeid=self.nodeid, service=self.spec.service, at=state.at,
                backend=backend, strict=state.strict,
                # The bound values of the objective's own query at the evaluation time.
                parameters=({} if objective.burn_rate else
                            main.params if isinstance(main, Query) and main.at == state.at
                            else query_params(self.resolved.variables, state.at)),
                **found)

        exposure, asked = None, None  # the backend, once there is one
        described: dict[str, Any] = {}  # its description and the link, once known
        try:
            exposure = self._exposure(state)
            if exposure is not None and exposure.problem:
                return record(error=exposure.problem, checks=_checks(exposure)), None
            backend = asked = executor.backend(self.backend_key, self.backend_spec)
            # The link shows the objective's own query at the evaluation time.
            shown = Query(next(iter(queries.values())), state.at)
            # A burn-rate objective's queries take each alert's window: no single link.
            described = {"backend": f"{self.backend_spec.name} ({backend.describe()})",
                         "link": None if objective.burn_rate else backend.graph_url(shown)}
            answers: dict[str, Answer] = {
                need.name: executor.result(self.backend_key, self.backend_spec, need.query)
                for need in needs}
            evaluation = judge_objective(measurement, answers, format_time)
        except BackendError as exc:
            return record(error=exc.message, checks=_checks(exposure, asked, needs),
                          **described), None
        except UnjudgeableAnswer as exc:
            return record(error=str(exc), **described), None
        except Exception as exc:
            # A bug in a backend or in this plugin: still an error verdict with properties and
            # a table row, never a pass; --slo-full-trace shows where it came from.
            if state.full_trace:
                raise
            return record(error=f"internal error ({type(exc).__name__}: {exc}); "
                                "run with --slo-full-trace for the traceback", **described), None
        warned = tuple(w for answer in answers.values() if not isinstance(answer, tuple)
                       for w in answer.warnings)
        return record(backend_warnings=warned, checks=_checks(exposure, backend, needs),
                      **described), evaluation

    def _exposure(self, state: RunState) -> ExposureResult | None:
        """The stage's exposure check, made once per spec file and run, before any objective."""
        key = (self.spec.path, self.resolved.stage)
        if key not in state.exposures:
            state.exposures[key] = check_stage(state.executor, self.spec,
                                               self.spec.stages[self.resolved.stage], state.at)
        return state.exposures[key]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        state = self.config.stash[STATE]
        if isinstance(excinfo.value, SloCheckFailed) and not state.full_trace:
            return excinfo.value.text
        if isinstance(excinfo.value, SloWarning) and MESSAGE in self.stash and not state.full_trace:
            # `-W error` turned the warn verdict into an exception: still a plain verdict text.
            return (self.stash[MESSAGE]
                    + "\n  (a warn verdict: failed because warnings are errors here, -W error)")
        # The traceback, but never a frame's arguments or locals (not even under -l): they
        # hold the backend's resolved settings, tokens and passwords among them.
        return excinfo.getrepr(funcargs=False, showlocals=False, style="long", chain=True,
                               tbfilter=not state.full_trace)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.resolved.objective.line - 1, self.name


def _checks(exposure: ExposureResult | None, backend: object = None,
            needs: Sequence[Need] = ()) -> dict[str, Any]:
    """What the checks before judging found, for the evidence (``VerdictRecord.checks``)."""
    checks: dict[str, Any] = {}
    if exposure is not None:
        checks["exposure"] = exposure.to_dict()
    queries = [(n.query.text, n.query.at if isinstance(n.query, Query) else n.query.end)
               for n in needs]
    fresh = freshness_evidence(backend, queries) if backend is not None else []
    if fresh:
        checks["freshness"] = [item.to_dict() for item in fresh]
    return checks


def attach_record(item: pytest.Item, report: pytest.TestReport) -> None:
    """Move an objective item's record onto its call report (or its failed setup report),
    with pytest's outcome in it."""
    record = item.stash.get(RECORD, None)
    # An error verdict ends the item in setup (see ObjectiveItem.setup), with no call report.
    if record is not None and (report.when == "call"
                               or (report.when == "setup" and report.failed)):
        del item.stash[RECORD]
        report.slo_record = replace(record, outcome=report.outcome)  # type: ignore[attr-defined]


def record_of(report: pytest.TestReport) -> VerdictRecord | None:
    """The record on a call report: the object itself, or the plain values an xdist worker
    sent (see :func:`serializable`)."""
    record = getattr(report, "slo_record", None)
    if record is None or isinstance(record, VerdictRecord):
        return record
    return VerdictRecord.from_dict(record)


def serializable(data: dict[str, Any]) -> dict[str, Any]:
    """A report as xdist sends it, with its record as plain values execnet can send."""
    record = data.get("slo_record")
    if isinstance(record, VerdictRecord):
        data["slo_record"] = record.to_dict()
    return data


__all__ = ["MESSAGE", "RECORD", "STATE", "NotEvaluated", "ObjectiveItem", "RunState",
           "SloCheckFailed", "SpecFile", "attach_record", "record_of", "serializable"]
