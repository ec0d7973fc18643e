"""The hooks of a gating run: registered by the entry point only when a stage is gated.

Owns the run's state (``start``), collection of spec files, the usage errors about the
selection, planning every query before the items run (also per xdist worker), and what
happens after the run: warn texts into JUnit, evidence files, the outcome hooks.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo import __version__
from pytest_rollout_slo import recording as recording_glue
from pytest_rollout_slo.backends.base import AnyQuery, BackendType
from pytest_rollout_slo.backends.registry import BUILTIN_TYPES, DuplicateBackendType, registry
from pytest_rollout_slo.items import (
    STATE,
    ObjectiveItem,
    RunState,
    SpecFile,
    attach_record,
    serializable,
)
from pytest_rollout_slo.options import option
from pytest_rollout_slo.plan.executor import BackendKey, Executor, parse_deadline
from pytest_rollout_slo.plan.xdist import WorkerPlan, xdist_queue
from pytest_rollout_slo.report.evidence import write_json, write_markdown
from pytest_rollout_slo.report.junit import add_gate_error, add_system_out
from pytest_rollout_slo.report.run import RunMeta, decision, overall_verdict, run_meta
from pytest_rollout_slo.spec.load import BackendSpec
from pytest_rollout_slo.summary import SummaryTable
from pytest_rollout_slo.verdict.confidence import family_text
from pytest_rollout_slo.verdict.record import VerdictRecord
from pytest_rollout_slo.verdict.stats import ADJUSTMENTS

_SUMMARY = "rollout-slo-summary"
_FLAGS = "rollout-slo-flags"
_USAGE_ERROR = "slo_usage_error"
_STAGE_IDS = "slo_stage_ids"
_WORKER_PLAN = pytest.StashKey[WorkerPlan[pytest.Item]]()


@pytest.hookimpl
def pytest_slo_backend_types() -> list[BackendType]:
    return list(BUILTIN_TYPES)


# A clock a little ahead of the server's is fine; an evaluation time in the future is a typo
# (milliseconds for seconds) whose empty windows could read as zero errors.
_FUTURE_SLACK = 300.0


def parse_at(text: str) -> float:
    """Unix seconds from ``--slo-at``: RFC 3339 (``Z`` or an offset) or a number."""
    try:
        at = float(text)
    except ValueError:
        at = _parse_rfc3339(text)
    if not math.isfinite(at) or at < 0:
        raise pytest.UsageError(f"--slo-at {text!r} is not a time; give RFC 3339 with a zone "
                                "(2026-11-26T12:00:00Z) or unix seconds (1795694400)")
    if at > time.time() + _FUTURE_SLACK:
        raise pytest.UsageError(f"--slo-at {text!r} is in the future; there is no data there "
                                "yet (unix seconds, not milliseconds)")
    return at


def _parse_rfc3339(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise pytest.UsageError(
            f"--slo-at {text!r} is not a time; give RFC 3339 with a zone "
            "(2026-11-26T12:00:00Z) or unix seconds (1795694400)") from None
    if moment.tzinfo is None:
        raise pytest.UsageError(f"--slo-at {text!r} has no time zone; add Z for UTC "
                                "or an offset such as +01:00")
    return moment.astimezone(timezone.utc).timestamp()


def start(config: pytest.Config, stage: str) -> None:
    """Set up the run's state; called from pytest_configure once this module's hooks are
    registered."""
    at_text = option(config, "slo_at")
    recording, recorded_at = recording_glue.replay_at(config, stage)
    at = parse_at(at_text) if at_text else recorded_at or time.time()
    workerinput = getattr(config, "workerinput", {})
    at = float(workerinput.get("slo_at", at))  # one evaluation time on every xdist worker
    full_trace = bool(config.getoption("slo_full_trace") or config.getini("slo_full_trace"))
    strict = bool(config.getoption("slo_strict") or config.getini("slo_strict"))
    concurrency_text = option(config, "slo_concurrency")
    try:
        concurrency = int(concurrency_text)
        if concurrency < 1:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"slo_concurrency must be a whole number >= 1, "
                                f"got {concurrency_text!r}") from None
    adjustment = option(config, "slo_confidence_adjustment") or "holm"
    if adjustment not in ADJUSTMENTS:
        raise pytest.UsageError(f"slo_confidence_adjustment must be one of "
                                f"{', '.join(ADJUSTMENTS)}, got {adjustment!r}")
    deadline_text = option(config, "slo_deadline")
    try:
        deadline = parse_deadline(deadline_text)
    except ValueError:
        raise pytest.UsageError(f"slo_deadline must be a duration longer than 0s, such as 5m, "
                                f"90s or 300 (seconds), got {deadline_text!r}") from None
    try:
        backend_types = registry(config.hook.pytest_slo_backend_types())
    except DuplicateBackendType as exc:
        raise pytest.UsageError(str(exc)) from None
    backend_types, environ = recording_glue.wrap_types(config, stage, at, recording,
                                                       backend_types)
    config.stash[STATE] = RunState(stage, at, full_trace, strict, backend_types,
                                   Executor(backend_types, concurrency, environ,
                                            deadline=deadline),
                                   adjustment=adjustment)
    if not hasattr(config, "workerinput"):  # the xdist controller or a plain run reports
        config.pluginmanager.register(SummaryTable(), _SUMMARY)
    check = bool(config.getoption("slo_check_flag") or config.getini("slo_check_flag"))
    rollback = bool(config.getoption("slo_rollback"))
    if check or rollback:
        # Imported only here: the GitLab client and its HTTP stack cost a run that needs
        # no flag about 0.1 s.
        import pytest_rollout_slo.rollout as rollout  # see plugin.py on the import form

        config.pluginmanager.register(rollout.FlagGuard(config, stage, check, rollback),
                                      _FLAGS)


def _is_spec_file(config: pytest.Config, file_path: Path) -> bool:
    patterns = config.getini("slo_files")
    if not patterns:
        in_dir = file_path.suffix in (".yaml", ".yml") and file_path.parent.name == "slo_specs"
        return in_dir or file_path.name.endswith((".slo.yaml", ".slo.yml"))
    try:
        relative = file_path.relative_to(config.rootpath).as_posix()
    except ValueError:
        relative = file_path.as_posix()
    return any(fnmatch.fnmatch(relative, p) or ("/" not in p and fnmatch.fnmatch(file_path.name, p))
               for p in patterns)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With a stage gated, collect spec files only, unless ``slo_with_tests`` keeps the rest.

    A failing unit test in the same session would fail the gate, and a passing one would
    count towards it: the gate is the spec. Paths given on the command line are always
    collected (pytest does not ask this hook about them).
    """
    if STATE not in config.stash or collection_path.is_dir():
        return None
    if config.getoption("slo_with_tests") or config.getini("slo_with_tests"):
        return None
    return None if _is_spec_file(config, collection_path) else True


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SpecFile | None:
    if STATE not in parent.config.stash or not _is_spec_file(parent.config, file_path):
        return None
    return SpecFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # the controller collects nothing: tell it the stage
        workeroutput[_STAGE_IDS] = sorted(state.stage_ids)
    if session.testsfailed:
        return  # collection errors are already reported; don't pile a usage error on top
    try:
        _check_selection(state)
        guard = session.config.pluginmanager.get_plugin(_FLAGS)
        if guard is not None:  # a rollout.FlagGuard, registered only when asked for
            guard.check_before_run(session)
    except pytest.UsageError as exc:
        state.usage_error = str(exc)
        if workeroutput is None:
            raise
        # An xdist worker's exception here is lost and the run would end as "no tests ran":
        # run nothing, and let the controller report the usage error (pytest_testnodedown).
        workeroutput[_USAGE_ERROR] = str(exc)
        session.items.clear()


def _check_selection(state: RunState) -> None:
    if state.stage not in state.stages_seen:
        if not state.stages_seen:
            raise pytest.UsageError(
                f"--slo-stage={state.stage}: no spec file was collected; put specs in a "
                "slo_specs/ directory or name them *.slo.yaml, pass their path, or set slo_files")
        raise pytest.UsageError(
            f"unknown stage {state.stage!r}; the collected spec files define: "
            f"{', '.join(state.stages_seen)}")
    if state.selected == 0:
        files = ", ".join(str(p) for p in state.stages_seen[state.stage])
        raise pytest.UsageError(
            f"stage {state.stage!r} selects no objective in {files}; a stage with nothing to "
            "check is never a green gate")
    if state.gated == 0:
        files = ", ".join(str(p) for p in state.stages_seen[state.stage])
        raise pytest.UsageError(
            f"stage {state.stage!r} has only tracked objectives (track: true) in {files}; they "
            "are reported, never judged, so nothing would decide the stage: give it at least "
            "one objective with bounds")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: take over a usage error a worker found."""
    output = getattr(node, "workeroutput", {})
    message = output.get(_USAGE_ERROR)
    state = node.config.stash.get(STATE, None)
    if state is None:
        return
    if message:
        state.usage_error = str(message)
    state.stage_ids.update(output.get(_STAGE_IDS, ()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash.get(STATE, None)
    if state is not None and state.usage_error:
        terminalreporter.write_line(f"ERROR: {state.usage_error}", red=True, bold=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the xdist controller: give every worker the controller's evaluation time."""
    state = node.config.stash.get(STATE, None)
    if state is not None:
        node.workerinput["slo_at"] = state.at


def _plans(state: RunState,
           items: Iterable[pytest.Item]) -> Iterator[tuple[BackendKey, BackendSpec, AnyQuery]]:
    for item in items:
        if isinstance(item, ObjectiveItem):
            for need in item.needs(state.at):
                yield item.backend_key, item.backend_spec, need.query


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start the run deadline, and every query of the selected items before the first runs."""
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    state.executor.start()
    if hasattr(session.config, "workerinput"):
        # An xdist worker holds every collected item but runs only those it is sent, so it
        # plans them as they arrive (see pytest_runtest_protocol).
        queued = xdist_queue(session.config.pluginmanager.get_plugins())
        session.config.stash[_WORKER_PLAN] = WorkerPlan(session.items, queued)
        return
    # pytest < 8 gives an xdist controller's session no ``items`` at all (it collects none).
    state.executor.prefetch(_plans(state, getattr(session, "items", ())))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """On an xdist worker: before an item runs, plan it and the items queued after it."""
    plan = item.config.stash.get(_WORKER_PLAN, None)
    if plan is not None:
        state = item.config.stash[STATE]
        state.executor.prefetch(_plans(state, plan.window(item, nextitem)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Give an objective's call report its verdict record, so it reaches the controller."""
    report = yield
    attach_record(item, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(report: pytest.TestReport | pytest.CollectReport
                                  ) -> Generator[None, dict[str, Any] | None,
                                                 dict[str, Any] | None]:
    """On an xdist worker: send an objective's record as plain values."""
    data = yield
    return serializable(data) if data is not None else None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After pytest wrote the JUnit file: put warn texts where GitLab shows them, say whether
    the run judged the whole stage, and tell the plugins that act on the stage's outcome."""
    config = session.config
    if STATE not in config.stash:
        return
    recording_glue.finish(config, config.stash[STATE].executor.redact)
    if hasattr(config, "workerinput"):
        return
    state = config.stash[STATE]
    xml_path = getattr(config.option, "xmlpath", None)
    if state.usage_error:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        meta = report_gate_not_run(config, state.stage, state.usage_error, at=state.at,
                                   started=state.started)
        state.decision, state.decision_word = decision_line(meta, []), "HOLD"
        return
    if xml_path:
        add_system_out(Path(xml_path))
    summary = config.pluginmanager.get_plugin(_SUMMARY)
    # Only a run that judged its objectives finished the stage; a usage error, a spec error
    # or an interruption said nothing about it, and a hook acting on `not passed` must not fire.
    judged = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    if not isinstance(summary, SummaryTable) or config.option.collectonly:
        return
    records = list(summary.records())
    not_run = sorted(state.stage_ids - {r.nodeid for r in records})
    partial = _partial_reason(config, state, not_run)
    if partial and exitstatus == pytest.ExitCode.OK:
        # Exit 0 promotes a stage in CI: part of a stage, however green, must not.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    meta = run_meta(records, stage=state.stage, at=state.at, plugin_version=__version__,
                    started=state.started, finished=time.time(),
                    exit_status=int(session.exitstatus), not_run=not_run, partial=partial)
    state.decision = decision_line(meta, records)
    state.decision_word = decision(overall_verdict(meta, records))
    # Written whatever the outcome: after an interruption or a spec error the files say what
    # was judged, what was not, and that the run ended early (verdict error, decision HOLD).
    write_evidence(config, meta, records)
    if judged:
        verdicts = {record.nodeid: record.verdict.value for record in records}
        config.hook.pytest_slo_stage_finished(
            session=session, stage=state.stage, verdicts=verdicts,
            passed=session.exitstatus == pytest.ExitCode.OK and not partial, records=records,
            partial=bool(partial))


def _partial_reason(config: pytest.Config, state: RunState, not_run: Sequence[str]) -> str:
    """Why this run judged only part of the stage, or '' when it judged all of it."""
    lf = config.pluginmanager.get_plugin("lfplugin")
    skipped_files = getattr(lf, "_skipped_files", 0) if getattr(lf, "active", False) else 0
    if not not_run and not skipped_files:
        return ""
    used = [f"-k {config.option.keyword!r}" if config.option.keyword else "",
            f"-m {config.option.markexpr!r}" if config.option.markexpr else "",
            "--deselect" if config.getoption("deselect", None) else "",
            "--lf" if config.getoption("lf", False) else "",
            "--sw" if config.getoption("stepwise", False) else "",
            "node ids" if any("::" in str(a) for a in config.args) else "",
            "-x/--maxfail" if config.option.maxfail else ""]
    how = ", ".join(u for u in used if u) or "the run ended early"
    if not not_run:
        return f"--lf skipped {skipped_files} spec file(s) without last failures"
    total = len(state.stage_ids)
    return f"{len(not_run)} of {total} objectives not run: {how}"


def decision_line(meta: RunMeta, records: Sequence[VerdictRecord]) -> str:
    """The terminal's last line: what the release manager does with the stage."""
    verdict = overall_verdict(meta, records)
    word = decision(verdict)
    if meta.usage_error:
        return f"SLO gate {meta.stage}: HOLD (the gate did not run: {meta.usage_error})"
    counts = Counter(r.verdict.value.replace("_", " ") for r in records)
    shown = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "nothing judged"
    noun = "objective" if len(records) == 1 else "objectives"
    if word == "PARTIAL":
        return (f"SLO gate {meta.stage}: PARTIAL ({len(records)} {noun} judged: {shown}; "
                f"{meta.partial}); a partial run never promotes")
    if verdict == "error" and not records:
        return f"SLO gate {meta.stage}: HOLD (nothing judged, exit status {meta.exit_status})"
    family = next((r for r in records if r.adjustment), None)
    if family is not None:
        shown += f"; confidence: {family_text(family.adjustment, family.family)}"
    return f"SLO gate {meta.stage}: {word} ({len(records)} {noun}: {shown})"


def report_gate_not_run(config: pytest.Config, stage: str, message: str, *, at: float,
                        started: float | None = None) -> RunMeta:
    """After a usage error: the report files still say that the gate did not run, and why."""
    base = config.invocation_params.dir
    meta = run_meta([], stage=stage, at=at, plugin_version=__version__, started=started,
                    finished=time.time(), exit_status=int(pytest.ExitCode.USAGE_ERROR),
                    usage_error=message)
    write_evidence(config, meta, [])
    xml_path = getattr(config.option, "xmlpath", None)
    if xml_path:
        add_gate_error(base / xml_path, stage, message)
    return meta


def write_evidence(config: pytest.Config, meta: RunMeta,
                   records: Sequence[VerdictRecord]) -> None:
    """The Markdown summary and JSON evidence files, when asked for; controller only."""
    md_path, json_path = option(config, "slo_report_md"), option(config, "slo_report_json")
    base = config.invocation_params.dir
    if md_path:
        guard = config.pluginmanager.get_plugin(_FLAGS)  # its lines, if it ran, go in too
        write_markdown(base / md_path, meta, records, list(getattr(guard, "lines", ())))
    if json_path:
        write_json(base / json_path, meta, records)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    state.executor.close()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if state.decision and reporter is not None:
        # After pytest's own last line, so the decision is what a CI log ends with.
        colour = {"PROMOTE": "green", "PARTIAL": "yellow"}.get(state.decision_word, "red")
        reporter.write_line(state.decision, **{colour: True, "bold": True})
