"""The SLO summary at the end of the terminal output, and the records the run's reports need.

A pytest plugin object the session registers on the controller (or a plain run). Each
objective's call report carries its verdict record (``slo_record``, put there on the worker
by :func:`pytest_rollout_slo.items.attach_record`, so it crosses pytest-xdist with the
report); this plugin keeps
those reports and, when the run ends, gives the records to the table, the report files and
the stage hook.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_rollout_slo.items import record_of
from pytest_rollout_slo.report.table import terminal_table
from pytest_rollout_slo.verdict.instant import Verdict
from pytest_rollout_slo.verdict.record import VerdictRecord

_COLOURS = {Verdict.PASS: "green", Verdict.WARN: "yellow", Verdict.FAIL: "red",
            Verdict.ERROR: "red", Verdict.NO_DATA: "yellow",
            Verdict.INCONCLUSIVE: "yellow", Verdict.TRACKED: "cyan"}


class SummaryTable:
    """Collects the reports of objectives and prints one row per objective.

    It keeps the call reports themselves, which pytest keeps anyway, and builds records
    from them only when they are needed.
    """

    def __init__(self) -> None:
        # By node id, the last report winning: a rerun objective has one record, its last.
        self._reports: dict[str, pytest.TestReport] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # The call report, or the setup report of an error verdict (see items.attach_record).
        if getattr(report, "slo_record", None) is not None:
            self._reports[report.nodeid] = report

    def records(self) -> Iterator[VerdictRecord]:
        """Each objective's record, in the order the objectives first ran."""
        for report in self._reports.values():
            record = record_of(report)
            if record is not None:
                yield record

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self._reports:
            return
        writer = terminalreporter.config.get_terminal_writer()

        def mark(record: VerdictRecord, label: str) -> str:
            if not writer.hasmarkup:
                return label
            return writer.markup(label, **{_COLOURS[record.verdict]: True, "bold": True})

        terminalreporter.write_sep("=", "SLO summary")
        terminalreporter.write_line(terminal_table(self.records(), mark))


__all__ = ["SummaryTable"]
