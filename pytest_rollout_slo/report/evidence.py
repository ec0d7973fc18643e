"""Report files for people and tools: a Markdown summary and a versioned JSON evidence file.

Both are built from the JUnit ``slo.*`` properties of each objective's test report plus the
pytest outcome; those properties are already free of secrets, and nothing else goes into
these files. Both outputs depend only on their input: no clock, no random order, so the same
run gives the same bytes. No pytest here.

This module owns the JSON document (below) and the writing of both files. The records and the
overall verdict live in ``evidence_records``, the Markdown layout and its rendering in
``evidence_markdown``; what other modules use of either is importable from here.

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
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_rollout_slo.files import write_text_atomic
from pytest_rollout_slo.quantity import format_time
from pytest_rollout_slo.report.markdown import markdown_report
from pytest_rollout_slo.report.records import (
    VERDICT_ORDER,
    ObjectiveRecord,
    RunMeta,
    RunVerdict,
    overall_verdict,
    run_meta,
)

JSON_SCHEMA = "pytest-rollout-slo/evidence"
JSON_SCHEMA_VERSION = 1


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
        "counts": {v: counts[v] for v in VERDICT_ORDER},
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


__all__ = ["JSON_SCHEMA", "JSON_SCHEMA_VERSION", "ObjectiveRecord", "RunMeta", "RunVerdict",
           "format_time", "json_report", "markdown_report", "overall_verdict", "run_meta",
           "write_json", "write_markdown"]
