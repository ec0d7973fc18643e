"""What the report files are built from: one record per objective, the run, its verdict.

An ObjectiveRecord holds the JUnit ``slo.*`` properties of one objective's test report (the
same data the terminal summary table reads, so it also works under pytest-xdist, on the
controller) plus the pytest outcome. Those properties are already free of secrets. RunMeta
says what a report shows about the run as a whole. No pytest here.

Overall verdict: ``error`` when nothing was checked or the session ended with an exit status
other than 0 or 1 (collection error, interruption); ``fail`` when an objective's test failed
(or the exit status is 1); ``warn`` when every objective passed but one warned, had no data
or was skipped; else ``pass``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

RunVerdict = Literal["pass", "warn", "fail", "error"]
# What needs attention first: the order of the Markdown table's rows and its verdict counts.
VERDICT_ORDER = ("fail", "error", "no_data", "warn", "pass")
THRESHOLD_KEYS = ("min", "max", "warn_min", "warn_max", "max_increase", "max_decrease",
                  "sustained", "max_violations", "burn_rate_target")
# How judge_baseline shows one value against its baseline in slo.value.
_BASELINE_SEPARATOR = " vs baseline "


@dataclass(frozen=True)
class ObjectiveRecord:
    """One objective at one stage (and matrix combination) after it ran."""

    nodeid: str
    outcome: str
    """pytest's outcome of the call: ``passed``, ``failed`` or ``skipped``."""
    props: Mapping[str, str]
    """The ``slo.*`` JUnit properties of the item, keys without the ``slo.`` prefix."""

    @classmethod
    def from_properties(cls, props: Iterable[tuple[str, object]] | Mapping[str, object],
                        outcome: str, nodeid: str) -> ObjectiveRecord:
        """From ``TestReport.user_properties`` (or a dict of them); other keys are ignored."""
        pairs = props.items() if isinstance(props, Mapping) else props
        own = {key[len("slo."):]: str(value) for key, value in pairs if key.startswith("slo.")}
        return cls(nodeid, outcome, own)

    def get(self, key: str) -> str | None:
        """A property's text, or None when it is missing or empty."""
        return self.props.get(key) or None

    @property
    def verdict(self) -> str:
        return self.props.get("verdict", "error")

    @property
    def objective(self) -> str:
        return self.props.get("objective", self.nodeid)

    @property
    def title(self) -> str:
        """``error_rate[beta]`` or ``error_rate[beta-region=eu]``, as in the failure text."""
        matrix = self.get("matrix")
        suffix = "".join(f"-{part}" for part in matrix.split(", ")) if matrix else ""
        return f"{self.objective}[{self.props.get('stage', '')}{suffix}]"

    @property
    def observations(self) -> list[Any]:
        try:
            rows = json.loads(self.props.get("observations", "[]"))
        except ValueError:
            return []
        return rows if isinstance(rows, list) else []

    @property
    def queries(self) -> dict[str, str]:
        if "numerator_query" in self.props:
            return {"numerator": self.props["numerator_query"],
                    "denominator": self.props.get("denominator_query", "")}
        return {"query": self.props.get("query", "")}

    @property
    def thresholds(self) -> dict[str, str]:
        return {key: self.props[key] for key in THRESHOLD_KEYS if self.props.get(key)}

    def value_and_baseline(self) -> tuple[str, str | None]:
        """The current value, and the baseline's value when the objective has one."""
        value = self.props.get("value", "")
        if self.get("baseline") and _BASELINE_SEPARATOR in value:
            now, before = value.split(_BASELINE_SEPARATOR, 1)
            return now, before
        return value, None


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


def run_meta(records: Sequence[ObjectiveRecord], *, stage: str, at: float,
             plugin_version: str, started: float | None = None, finished: float | None = None,
             exit_status: int | None = None) -> RunMeta:
    """RunMeta with services and backends taken from the records, sorted."""
    services = sorted({r.props["service"] for r in records if r.get("service")})
    backends = sorted({r.props["backend"] for r in records if r.get("backend")})
    return RunMeta(tuple(services), stage, at, plugin_version, tuple(backends), started,
                   finished, exit_status)


def overall_verdict(meta: RunMeta, records: Sequence[ObjectiveRecord]) -> RunVerdict:
    """The run's verdict; nothing checked is never a pass."""
    if not records or meta.exit_status not in (None, 0, 1):
        return "error"
    if meta.exit_status == 1 or any(r.outcome == "failed" for r in records):
        return "fail"
    if any(r.verdict != "pass" or r.outcome != "passed" for r in records):
        return "warn"
    return "pass"


__all__ = ["THRESHOLD_KEYS", "VERDICT_ORDER", "ObjectiveRecord", "RunMeta", "RunVerdict",
           "overall_verdict", "run_meta"]
