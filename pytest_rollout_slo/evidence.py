"""Report files for people and tools: a Markdown summary and a versioned JSON evidence file.

Both are built from the JUnit ``slo.*`` properties of each objective's test report (the
same data the terminal summary table reads, so they also work under pytest-xdist, on the
controller) plus the pytest outcome. Those properties are already free of secrets, and
nothing else goes into these files. Both outputs depend only on their input: no clock, no
random order, so the same run gives the same bytes. No pytest here.

**Markdown** (``markdown_report``), for a merge request note or a CI job summary::

    ## ❌ SLO gate **beta** failed: conflict-resolver, 4 of 7 objectives failed (at ...Z)

    Verdicts: 3 fail, 1 error, 1 no data, 1 warn, 1 pass.

    | Objective | Value | Threshold | Change vs baseline | Verdict |
    ...one row per objective: fail, then error, no data, warn, pass; by name within each

    <details><summary>❌ tool_success[beta-tool=read_file] FAILED: 91.85% < min 93.00%</summary>
    ...the full failure text, as in the JUnit report, for every objective that did not pass
    </details>

    <sub>pytest-rollout-slo 0.1.0 · backends: ...</sub>

    <!-- pytest-rollout-slo:conflict-resolver:beta -->

The first line holds the overall verdict (emoji and word), stage, service(s), how many
objectives failed and the evaluation time. The "Change vs baseline" column appears only when
an objective has a baseline. An objective's name links to the backend's graph of its query
where the backend has one. The last line is a hidden marker naming service(s) and stage, so a
tool can find and update its one note per merge request instead of adding a new one.

**JSON** (``json_report``), version ``JSON_SCHEMA_VERSION``; a later version only adds keys::

    {"schema": "pytest-rollout-slo/evidence", "version": 1,
     "run": {"services": [...], "stage": "beta", "at": "2026-11-20T12:00:00Z",
             "plugin_version": "0.1.0", "backends": ["metrics (prometheus, http://...)"],
             "started": RFC 3339 | null, "finished": RFC 3339 | null,
             "exit_status": int | null, "verdict": "pass" | "warn" | "fail" | "error",
             "total": 7, "counts": {"pass": 1, "warn": 1, "fail": 3, "no_data": 1, "error": 1}},
     "objectives": [  # sorted by id
       {"id": "slo_specs/x.yaml::error_rate[beta]", "title": "error_rate[beta]",
        "service": "...", "objective": "error_rate", "stage": "beta",
        "matrix": "region=eu" | null, "verdict": "pass" | "warn" | "fail" | "no_data" | "error",
        "outcome": "passed" | "failed" | "skipped", "value": "6.20%" (as shown),
        "unit": "number" | "percent" | "seconds",
        "thresholds": {"min", "max", "warn_min", "warn_max", "max_increase",
                       "max_decrease", "sustained", "max_violations", "burn_rate_target"}
                      (only those set, as shown in reports),
        "baseline": null | {"against": "cohort=control", "value": "3.22%" | null,
                            "change": "up 41.3% (1.33 points)" | null},
                     (value split from "4.55% vs baseline 3.22%"; change from the
                      optional slo.change property, shown in the Markdown too),
        "queries": {"query": ...} | {"numerator": ..., "denominator": ...} (resolved),
        "observations": [{"labels": {...}, "value": float | "NaN" | "+Inf" | "-Inf" | null,
                          "numerator"?, "denominator"?, "reason"?}],
        "message": failure text | null, "link": graph URL | null,
        "window": "6h" | null, "at": "2026-11-20T12:00:00Z", "backend": "metrics (...)"}]}

Overall verdict: ``error`` when nothing was checked or the session ended with an exit status
other than 0 or 1 (collection error, interruption); ``fail`` when an objective's test failed
(or the exit status is 1); ``warn`` when every objective passed but one warned, had no data
or was skipped; else ``pass``.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pytest_rollout_slo.quantity import format_time

JSON_SCHEMA = "pytest-rollout-slo/evidence"
JSON_SCHEMA_VERSION = 1

RunVerdict = Literal["pass", "warn", "fail", "error"]
# Order of rows in the Markdown table: what needs attention first.
_VERDICT_ORDER = ("fail", "error", "no_data", "warn", "pass")
_THRESHOLD_KEYS = ("min", "max", "warn_min", "warn_max", "max_increase", "max_decrease",
                   "sustained", "max_violations", "burn_rate_target")
# How judge_baseline shows one value against its baseline in slo.value.
_BASELINE_SEPARATOR = " vs baseline "
_HEADLINES: dict[RunVerdict, tuple[str, str]] = {
    "pass": ("✅", "passed"), "warn": ("⚠️", "passed with warnings"),
    "fail": ("❌", "failed"), "error": ("❌", "did not complete")}


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
        return {key: self.props[key] for key in _THRESHOLD_KEYS if self.props.get(key)}

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


# -- Markdown -------------------------------------------------------------------------------

def markdown_report(meta: RunMeta, records: Sequence[ObjectiveRecord]) -> str:
    """The Markdown summary; identical input gives identical text, whatever the order."""
    verdict = overall_verdict(meta, records)
    rows = sorted(records, key=_row_key)
    lines = [_headline(meta, records, verdict), ""]
    counts = Counter(r.verdict for r in records)
    if counts:
        shown = [f"{counts[v]} {v.replace('_', ' ')}" for v in _VERDICT_ORDER if counts[v]]
        shown += [f"{n} {v}" for v, n in sorted(counts.items()) if v not in _VERDICT_ORDER]
        lines += [f"Verdicts: {', '.join(shown)}.", ""]
    if rows:
        lines += _table(meta, rows)
    explained = [r for r in rows if r.verdict != "pass" and r.get("message")]
    for record in explained:
        message = record.props["message"]
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", message)),
                                     default=0))
        lines += [f"<details><summary>{_icon(record)} "
                  f"{html.escape(message.splitlines()[0], quote=False)}</summary>", "",
                  f"{fence}text", message, fence, "", "</details>", ""]
    footer = f"pytest-rollout-slo {meta.plugin_version}"
    if meta.backends:
        footer += f" · backends: {'; '.join(meta.backends)}"
    lines += [f"<sub>{_cell(footer)}</sub>", "", _marker(meta), ""]
    return "\n".join(lines)


def _headline(meta: RunMeta, records: Sequence[ObjectiveRecord], verdict: RunVerdict) -> str:
    icon, word = _HEADLINES[verdict]
    total = len(records)
    noun = "objective" if total == 1 else "objectives"
    failed = sum(r.outcome == "failed" for r in records)
    if verdict == "error":
        status = f"exit status {meta.exit_status}" if meta.exit_status is not None else ""
        detail = (f"the run ended early ({status or 'interrupted'}), {total} {noun} reported"
                  if total else "no objective was checked")
    elif verdict == "fail" and not failed:
        detail = f"all {total} {noun} held, but other tests of the session failed"
    elif verdict == "fail":
        detail = f"{failed} of {total} {noun} failed"
    elif verdict == "warn":
        notes = Counter("skipped" if r.outcome == "skipped" else r.verdict.replace("_", " ")
                        for r in records if r.verdict != "pass" or r.outcome != "passed")
        detail = (f"{total} {noun}, with "
                  + ", ".join(f"{n} {what}" for what, n in sorted(notes.items())))
    else:
        detail = f"all {total} {noun} hold" if total > 1 else "the objective holds"
    services = ", ".join(meta.services) or "(no service)"
    return (f"## {icon} SLO gate **{_cell(meta.stage)}** {word}: {_cell(services)}, {detail} "
            f"(at {format_time(meta.at)})")


def _table(meta: RunMeta, rows: Sequence[ObjectiveRecord]) -> list[str]:
    with_service = len(meta.services) > 1 or len({r.get("service") for r in rows}) > 1
    with_change = any(r.get("baseline") for r in rows)
    headers = [*(["Service"] if with_service else []), "Objective", "Value", "Threshold",
               *(["Change vs baseline"] if with_change else []), "Verdict"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for record in rows:
        value, before = record.value_and_baseline()
        cells = [*([_cell(record.props.get("service", ""))] if with_service else []),
                 _objective_cell(record), _cell(value), _cell(_threshold_text(record)),
                 *([_cell(_change_text(record, before))] if with_change else []),
                 f"{_icon(record)} {_verdict_label(record)}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if any(r.get("link") for r in rows):
        lines += ["Objective names link to the backend's graph of the query at the evaluation "
                  "time.", ""]
    return lines


def _row_key(record: ObjectiveRecord) -> tuple[int, str, str, str, str]:
    verdict = record.verdict
    rank = _VERDICT_ORDER.index(verdict) if verdict in _VERDICT_ORDER else 1
    return (rank, record.props.get("service", ""), record.objective,
            record.props.get("matrix", ""), record.nodeid)


def _objective_cell(record: ObjectiveRecord) -> str:
    name = f"`{record.objective.replace('`', '')}`"
    link = record.get("link")
    if link:
        # A URL may not hold a space, parentheses or a pipe inside a Markdown table link.
        name = f"[{name}]({quote(link, safe=_URL_SAFE)})"
    matrix = record.get("matrix")
    return f"{name} ({_cell(matrix)})" if matrix else name


def _threshold_text(record: ObjectiveRecord) -> str:
    props = record.props
    parts = [f"{key.replace('_', ' ', 1) if key.startswith('warn_') else key} {props[key]}"
             for key in _THRESHOLD_KEYS
             if props.get(key) and key not in ("sustained", "max_violations")]
    if props.get("max_violations"):
        parts.append(f"max_violations {props['max_violations']}")
    if props.get("sustained"):
        parts.append(f"sustained {props['sustained']}")
    return ", ".join(parts)


def _change_text(record: ObjectiveRecord, before: str | None) -> str:
    against = record.get("baseline")
    if not against:
        return ""
    change = record.get("change")
    if before is None:
        return f"{change} against {against}" if change else f"against {against}"
    return f"{change} against {before} ({against})" if change else f"baseline {before} ({against})"


def _verdict_label(record: ObjectiveRecord) -> str:
    # The same words as the terminal summary table.
    label = record.verdict.replace("_", " ").upper()
    if record.verdict == "no_data":
        label += {"passed": " (pass)", "skipped": " (skip)"}.get(record.outcome, "")
    if record.verdict == "warn" and record.outcome == "failed":
        label += " (strict)"
    return label


def _icon(record: ObjectiveRecord) -> str:
    if record.outcome == "failed":
        return "❌"
    if record.outcome == "skipped":
        return "⏭️"
    return "✅" if record.verdict == "pass" else "⚠️"


_URL_SAFE = ":/?#@!$&'*+,;=%~-._"
_SPECIAL = re.compile(r"[\\`*\[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipe, no markup, no line break."""
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), text.replace("&", "&amp;"))
    return re.sub(r"\r\n|\r|\n", "<br>", escaped)


def _marker(meta: RunMeta) -> str:
    services = ",".join(quote(s, safe="") for s in meta.services)
    return f"<!-- pytest-rollout-slo:{services}:{quote(meta.stage, safe='')} -->"


# -- JSON -----------------------------------------------------------------------------------

def json_report(meta: RunMeta, records: Sequence[ObjectiveRecord]) -> dict[str, Any]:
    """The evidence document (see the module docstring); objectives sorted by id."""
    counts = Counter(r.verdict for r in records)
    run: dict[str, Any] = {
        **meta.extra,
        "services": list(meta.services),
        "stage": meta.stage,
        "at": format_time(meta.at),
        "plugin_version": meta.plugin_version,
        "backends": list(meta.backends),
        "started": None if meta.started is None else format_time(meta.started),
        "finished": None if meta.finished is None else format_time(meta.finished),
        "exit_status": meta.exit_status,
        "verdict": overall_verdict(meta, records),
        "total": len(records),
        "counts": {v: counts[v] for v in _VERDICT_ORDER},
    }
    return {"schema": JSON_SCHEMA, "version": JSON_SCHEMA_VERSION, "run": run,
            "objectives": [_objective_json(r) for r in sorted(records, key=lambda r: r.nodeid)]}


def _objective_json(record: ObjectiveRecord) -> dict[str, Any]:
    value, before = record.value_and_baseline()
    against = record.get("baseline")
    return {
        "id": record.nodeid,
        "title": record.title,
        "service": record.get("service"),
        "objective": record.objective,
        "stage": record.get("stage"),
        "matrix": record.get("matrix"),
        "verdict": record.verdict,
        "outcome": record.outcome,
        "value": value,
        "unit": record.get("unit"),
        "thresholds": record.thresholds,
        "baseline": None if against is None else {
            "against": against, "value": before, "change": record.get("change")},
        "queries": record.queries,
        "observations": record.observations,
        "message": record.get("message"),
        "link": record.get("link"),
        "window": record.get("window"),
        "at": record.get("at"),
        "backend": record.get("backend"),
    }


# -- files ----------------------------------------------------------------------------------

def write_markdown(path: Path | str, meta: RunMeta, records: Sequence[ObjectiveRecord]) -> None:
    write_text_atomic(Path(path), markdown_report(meta, records))


def write_json(path: Path | str, meta: RunMeta, records: Sequence[ObjectiveRecord]) -> None:
    document = json_report(meta, records)
    write_text_atomic(Path(path), json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False,
                                         allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write next to the target, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open applies the umask, unlike tempfile's private 0600 files.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


__all__ = ["JSON_SCHEMA", "JSON_SCHEMA_VERSION", "ObjectiveRecord", "RunMeta", "RunVerdict",
           "format_time", "json_report", "markdown_report", "overall_verdict", "run_meta",
           "write_json", "write_markdown", "write_text_atomic"]
