"""Hooks that pytest-rollout-slo adds to pytest, so other plugins can extend it.

Registered through ``pytest_addhooks``. Each hook is a typed do-nothing function; its
docstring says when it runs and what it must return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from pytest_rollout_slo.backends.base import BackendType
from pytest_rollout_slo.verdict.record import VerdictRecord


@pytest.hookspec
def pytest_slo_backend_types() -> Sequence[BackendType]:  # type: ignore[empty-body]
    """Return the backend types this plugin provides (``type:`` values in spec files).

    Called once per session, before the first spec file is loaded. Every registered plugin
    is asked and the answers are merged; a type name given twice is a usage error. A type
    declares its settings (validated offline at collection) and creates backends from
    resolved settings when the first objective that uses one runs.
    """


@pytest.hookspec
def pytest_slo_verdict(item: pytest.Item, verdict: str, record: VerdictRecord) -> None:
    """Called after each objective is judged, with its verdict.

    ``verdict`` is ``pass``, ``warn``, ``fail``, ``no_data``, ``inconclusive``, ``error``
    or ``tracked``;
    ``record`` is the :class:`~pytest_rollout_slo.verdict.record.VerdictRecord` every report
    is rendered from (values as numbers, bounds, queries; its ``outcome`` is not known yet).
    An implementation may take only the arguments it needs. The item's JUnit properties
    (``item.user_properties``) are already set. Runs where the item runs: on the
    xdist worker under pytest-xdist. Example: count verdicts, or page someone on ``error``.
    """


@pytest.hookspec
def pytest_slo_stage_finished(session: pytest.Session, stage: str, verdicts: Mapping[str, str],
                              passed: bool, records: Sequence[VerdictRecord],
                              partial: bool) -> None:
    """Called once at the end of a gating run, on the xdist controller or the only process.

    Only when the objectives were judged (exit 0 or 1): not after a usage error, a spec error
    or an interrupted run.

    ``verdicts`` maps each objective's node id to its verdict, ``passed`` is True when the
    session exits 0 (the stage may be promoted), ``records`` holds every objective's record
    with pytest's outcome, ``partial`` is True when the run judged only part of the stage
    (``-k``, ``-m``, ``--deselect``, ``--lf``, ``-x``): then ``passed`` is False, and
    nothing may act on the stage as a whole (no promotion, no rollback). Example: post a
    chat message, or promote the flag to the next stage when ``passed``.
    """
