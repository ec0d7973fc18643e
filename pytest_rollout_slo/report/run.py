"""The run as a whole in the report files: what they say about it, and its overall verdict.

Overall verdict: ``error`` when the gate did not run (a usage error), nothing was checked or
the session ended with an exit status other than 0 or 1 (collection error, interruption);
``fail`` when an objective's test failed (or the exit status is 1 for another reason);
``partial`` when the run judged only part of the stage (``-k``, ``-m``, ``--deselect``,
``--lf``, ``-x`` stopping early) and nothing failed; ``warn`` when every objective passed but
one warned, had no data or was skipped; else ``pass``. Only ``pass`` and ``warn`` promote
(:func:`decision`). No pytest here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pytest_rollout_slo.verdict.instant import Verdict
from pytest_rollout_slo.verdict.record import VerdictRecord

RunVerdict = Literal["pass", "warn", "partial", "fail", "error"]
Decision = Literal["PROMOTE", "HOLD", "PARTIAL"]
# What needs attention first: the order of the Markdown table's rows and its verdict counts.
VERDICT_ORDER = (Verdict.FAIL, Verdict.ERROR, Verdict.NO_DATA, Verdict.INCONCLUSIVE,
                 Verdict.WARN, Verdict.PASS, Verdict.TRACKED)
# Verdicts that leave a run green: a tracked objective is reported, never judged.
CLEAN = (Verdict.PASS, Verdict.TRACKED)


@dataclass(frozen=True)
class RunMeta:
    """What a report says about the run as a whole; times are unix seconds."""

    services: tuple[str, ...]
    stage: str
    at: float
    plugin_version: str
    backends: tuple[str, ...] = ()
    """``metrics (prometheus, http://prometheus:9090)``: the secret-free descriptions."""
    started: float | None = None
    finished: float | None = None
    exit_status: int | None = None
    """pytest's exit status, when known (0 all passed, 1 tests failed, 2 interrupted...)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """More ``run`` keys for the JSON file (a pipeline URL, a commit); strings only."""
    not_run: tuple[str, ...] = ()
    """The stage's objectives (node ids) that this run did not judge."""
    partial: str = ""
    """Why the run judged only part of the stage, or '' when it judged all of it."""
    usage_error: str = ""
    """Why the gate did not run at all (pytest's usage error), or ''."""


def run_meta(records: Sequence[VerdictRecord], *, stage: str, at: float,
             plugin_version: str, started: float | None = None, finished: float | None = None,
             exit_status: int | None = None, not_run: Sequence[str] = (), partial: str = "",
             usage_error: str = "") -> RunMeta:
    """RunMeta with services and backends taken from the records, sorted."""
    services = sorted({r.service for r in records if r.service})
    backends = sorted({r.backend for r in records if r.backend})
    return RunMeta(tuple(services), stage, at, plugin_version, tuple(backends), started,
                   finished, exit_status, not_run=tuple(sorted(not_run)), partial=partial,
                   usage_error=usage_error)


def overall_verdict(meta: RunMeta, records: Sequence[VerdictRecord]) -> RunVerdict:
    """The run's verdict; nothing checked is never a pass, part of a stage never a pass."""
    if meta.usage_error or not records or meta.exit_status not in (None, 0, 1):
        return "error"
    if any(r.outcome == "failed" for r in records):
        return "fail"
    if meta.partial:
        return "partial"
    if meta.exit_status == 1:
        return "fail"
    if any(r.verdict not in CLEAN or r.outcome != "passed" for r in records):
        return "warn"
    return "pass"


def decision(verdict: RunVerdict) -> Decision:
    """What the release manager does with the stage: only a whole, green run promotes."""
    if verdict in ("pass", "warn"):
        return "PROMOTE"
    return "PARTIAL" if verdict == "partial" else "HOLD"


__all__ = ["CLEAN", "VERDICT_ORDER", "Decision", "RunMeta", "RunVerdict", "decision",
           "overall_verdict", "run_meta"]
