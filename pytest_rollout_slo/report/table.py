"""The cells of one objective's table row, shared by the terminal summary and the Markdown
report, and the terminal table itself, laid out by tabulate's ``simple`` format.

Both tables say a verdict and a threshold in the same words; they differ in what else a row
holds (the Markdown one links names and compares with a baseline). No pytest here: the
terminal summary plugin (:mod:`pytest_rollout_slo.summary`) writes what this returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tabulate import tabulate

from pytest_rollout_slo.quantity import format_value
from pytest_rollout_slo.report.text import value_text
from pytest_rollout_slo.verdict.instant import Verdict
from pytest_rollout_slo.verdict.record import VerdictRecord

HEADERS = ("objective", "stage", "value", "threshold", "verdict")
# Limits in the order a reader compares them, and how a cell names them.
_LIMITS = ("max_increase", "max_decrease", "burn_rate_target", "max_violations", "sustained")


def verdict_label(record: VerdictRecord) -> str:
    """``FAIL``, ``NO DATA (skip)``, ``INCONCLUSIVE (pass)``, ``WARN (strict)``: the verdict
    and what pytest made of it."""
    label = record.verdict.value.replace("_", " ").upper()
    if record.verdict is Verdict.INCONCLUSIVE and record.outcome == "passed":
        label += f" ({record.on_inconclusive})"  # warn or pass
    elif record.verdict in (Verdict.NO_DATA, Verdict.INCONCLUSIVE):
        label += {"passed": " (pass)", "skipped": " (skip)"}.get(record.outcome, "")
    if record.verdict is Verdict.WARN and record.outcome == "failed":
        label += " (strict)"
    return label


def threshold_text(record: VerdictRecord, *, sustained: bool = True) -> str:
    """``min 90.00%, warn min 93.00%, max_increase 10%``: every bound the objective has."""
    unit = record.unit
    parts = [f"{name} {format_value(value, unit)}"
             for name, value in (("min", record.bounds.min), ("max", record.bounds.max),
                                 ("warn min", record.warn.min), ("warn max", record.warn.max))
             if value is not None]
    if record.verdict is Verdict.TRACKED and not parts:
        return "tracked"
    limits = record.limit_map
    parts += [f"{name} {limits[name].text}" for name in _LIMITS
              if name in limits and (sustained or name != "sustained")]
    return ", ".join(parts)


def objective_text(record: VerdictRecord) -> str:
    return f"{record.objective} ({record.matrix})" if record.matrix else record.objective


def terminal_table(records: Iterable[VerdictRecord],
                   mark: Callable[[VerdictRecord, str], str] = lambda _, label: label) -> str:
    """The summary table; ``mark`` may colour a verdict label (tabulate skips ANSI codes
    when it measures a column)."""
    rows = [(objective_text(r), r.stage, value_text(r), threshold_text(r, sustained=False),
             mark(r, verdict_label(r))) for r in records]
    text = tabulate(rows, HEADERS, tablefmt="simple", disable_numparse=True)
    # tabulate pads the last column too; a line ending in spaces is noise in a CI log.
    return "\n".join(line.rstrip() for line in text.splitlines())


__all__ = ["HEADERS", "objective_text", "terminal_table", "threshold_text", "verdict_label"]
