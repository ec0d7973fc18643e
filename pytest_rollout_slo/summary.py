"""The SLO summary at the end of the terminal output: one row per judged objective.

A pytest plugin object the session registers on the controller (or a plain run); it keeps
the call reports of objectives and lays their rows out when the run ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest

_LIMIT_NAMES = {"warn_min": "warn min", "warn_max": "warn max"}
_LIMITS = ("warn_min", "warn_max", "max_increase", "max_decrease", "burn_rate_target",
           "max_violations")
_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red", "no_data": "yellow"}
_HEADERS = ("objective", "stage", "value", "threshold", "verdict")


class SummaryTable:
    """Collects the reports of objectives and prints one row per objective.

    It keeps the call reports themselves, which pytest keeps anyway, and builds a row only
    when one is needed: copying the properties of thousands of objectives for the run's
    end was a good part of the plugin's memory per objective.
    """

    def __init__(self) -> None:
        self._reports: list[pytest.TestReport] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and any(k == "slo.verdict" for k, _ in report.user_properties):
            self._reports.append(report)

    def rows(self) -> Iterator[dict[str, str]]:
        """Each objective's ``slo.*`` properties as text, with its ``outcome`` and ``nodeid``."""
        for report in self._reports:
            props = {k: str(v) for k, v in report.user_properties if k.startswith("slo.")}
            props["outcome"] = report.outcome
            props["nodeid"] = report.nodeid
            yield props

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self._reports:
            return
        writer = terminalreporter.config.get_terminal_writer()
        # Two passes over the rows, one for the column widths and one to write, so no more
        # than one formatted row exists at a time; the layout is tabulate's "simple" one.
        widths = [len(header) + 2 for header in _HEADERS]
        for props in self.rows():
            widths = [max(width, len(cell))
                      for width, cell in zip(widths, _cells(props), strict=True)]
        terminalreporter.write_sep("=", "SLO summary")
        terminalreporter.write_line(_line(_HEADERS, widths))
        terminalreporter.write_line(_line(tuple("-" * width for width in widths), widths))
        for props in self.rows():
            *row, label = _cells(props)
            if writer.hasmarkup:
                colour = _COLOURS.get(props["slo.verdict"], "red")
                label = writer.markup(label, **{colour: True, "bold": True})
            terminalreporter.write_line(_line((*row, label), widths))


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells padded to their column, two spaces apart; the last one is not padded."""
    padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths[:-1], strict=True)]
    return "  ".join([*padded, cells[-1]]).rstrip()


def _cells(props: Mapping[str, str]) -> tuple[str, str, str, str, str]:
    """Objective, stage, value, thresholds and verdict label of one row, without colour."""
    verdict = props["slo.verdict"]
    label = verdict.replace("_", " ").upper()
    if verdict == "no_data":
        label += {"passed": " (pass)", "skipped": " (skip)"}.get(props["outcome"], "")
    if verdict == "warn" and props["outcome"] == "failed":
        label += " (strict)"
    bounds = [f"min {props['slo.min']}" if props.get("slo.min") else "",
              f"max {props['slo.max']}" if props.get("slo.max") else "",
              *(f"{_LIMIT_NAMES.get(name, name)} {props[f'slo.{name}']}"
                for name in _LIMITS if props.get(f"slo.{name}"))]
    objective = props["slo.objective"]
    if props.get("slo.matrix"):
        objective += f" ({props['slo.matrix']})"
    return (objective, props["slo.stage"], props.get("slo.value", ""),
            ", ".join(b for b in bounds if b), label)


__all__ = ["SummaryTable"]
