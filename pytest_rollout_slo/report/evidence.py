"""Report files for people and tools: a Markdown summary and a versioned JSON evidence file.

Both are rendered from the objectives' verdict records (already free of secrets; nothing
else goes into these files) and depend only on them: no clock, no random order, so the same
run gives the same bytes. The Markdown layout lives in :mod:`.markdown`, the run's verdict
in :mod:`.run`; this module owns the JSON document and the writing of both files. No pytest.

**JSON** (``json_report``), version ``JSON_SCHEMA_VERSION`` (2: values and thresholds became
numbers; version 1 wrote them as display text). A later version only adds keys::

    {"schema": "pytest-rollout-slo/evidence", "version": 2,
     "run": {"services": [...], "stage": "beta", "at": "2026-11-20T12:00:00Z",
             "plugin_version": "0.1.0", "backends": ["metrics (prometheus, http://...)"],
             "started": RFC 3339 | null, "finished": RFC 3339 | null,
             "exit_status": int | null,
             "verdict": "pass" | "warn" | "partial" | "fail" | "error",
             "decision": "PROMOTE" | "HOLD" | "PARTIAL" (only PROMOTE may promote),
             "partial": bool, "partial_reason": "2 of 7 objectives not run (-k ...)" | null,
             "not_run": [node ids of the stage's objectives this run did not judge],
             "usage_error": "why the gate did not run" | null,
             "total": 7, "counts": {"fail": 3, "error": 1, "no_data": 1, "inconclusive": 0,
                                   "warn": 1, "pass": 1, "tracked": 0}},
     "objectives": [  # sorted by id
       {"id": "slo_specs/x.yaml::error_rate[beta]", "title": "error_rate[beta]",
        "service": "...", "objective": "error_rate", "stage": "beta",
        "matrix": "region=eu" | null, "verdict": "pass" | "warn" | "fail" | "no_data"
                   | "inconclusive" | "error" | "tracked",
        "outcome": "passed" | "failed" | "skipped",
        "value": 0.062 | "NaN" | "+Inf" | "-Inf" | null  (the one value judged, else null),
        "value_text": "6.20%" (as the tables show it),
        "unit": "number" | "percent" | "seconds",
        "thresholds": {"min", "max", "warn_min", "warn_max": number (in the unit's base:
                       0.05 for 5%, seconds), "max_increase", "max_decrease": number
                       (a fraction when relative), "max_violations": int,
                       "burn_rate_target": fraction, "sustained": seconds} (only those set),
        "threshold_text": {same keys: "5.00%", "10%", "over 30m, step 5m", ...},
        "baseline": null | {"against": "cohort=control", "value": number | null,
                            "value_text": "3.22%" | null,
                            "change": "up 41.3% (1.33 points)" | null},
        "queries": {"query": ...} | {"numerator": ..., "denominator": ...} (resolved),
        "observations": [{"labels": {...}, "value": float | "NaN" | "+Inf" | "-Inf" | null,
                          "numerator"?, "denominator"?, "reason"?}] (at most 1000),
        "message": failure text | null, "link": graph URL | null,
        "window": "6h" | null, "at": "2026-11-20T12:00:00Z", "backend": "metrics (...)",
        "checks": {  # what was checked before judging
          "exposure": null | {"units": "users", "canary": 104, "total": 1000, "share": 0.104,
                              "promised": 0.1, "p_value": 0.68, "threshold": 0.001,
                              "rounded": false, "problem": ""},
          "freshness": [{"what": "the metric http_requests_total", "at": RFC 3339,
                         "newest": RFC 3339 | null, "age_seconds": 60.0 | null,
                         "max_age_seconds": 300.0, "searched_seconds": 3600.0 | null,
                         "fresh": true}]},
        "confidence": null | {"text": "95% (clopper-pearson)",
                              "adjustment": "Holm" | "Benjamini-Hochberg" | null,
                              "family": int | null (how many tests were adjusted together),
                              "tests": [{"labels", "test": "binomial" | "rate ratio" |
                                         "mann-whitney" | "histogram buckets" |
                                         "histogram quantiles",
                                         "method", "level", "counts": [k, n] | [k1, n1, k0, n0],
                                         "estimate", "interval": [low, high], "against",
                                         "statistic", "p_fail", "p_pass", "p_fail_adjusted",
                                         "verdict", "more"?,
                                         "buckets"? (histogram tests: the bucket bounds of
                                         the counts, or both sides' quantile intervals)}]}}]}

The ``checks`` and ``confidence`` keys and the ``inconclusive`` verdict were added within
version 2: a reader of version 2 that does not know them sees more keys and one more verdict
word.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_rollout_slo.files import write_text_atomic
from pytest_rollout_slo.quantity import format_time, format_value, json_number
from pytest_rollout_slo.report.junit import observation_rows, significance_rows
from pytest_rollout_slo.report.markdown import markdown_report
from pytest_rollout_slo.report.run import VERDICT_ORDER, RunMeta, decision, overall_verdict
from pytest_rollout_slo.report.text import failure_text, value_text
from pytest_rollout_slo.verdict.instant import Verdict
from pytest_rollout_slo.verdict.record import VerdictRecord

JSON_SCHEMA = "pytest-rollout-slo/evidence"
JSON_SCHEMA_VERSION = 2


def json_report(meta: RunMeta, records: Sequence[VerdictRecord]) -> dict[str, Any]:
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
        "decision": decision(overall_verdict(meta, records)),
        "partial": bool(meta.partial),
        "partial_reason": meta.partial or None,
        "not_run": list(meta.not_run),
        "usage_error": meta.usage_error or None,
        "total": len(records),
        "counts": {v.value: counts[v] for v in VERDICT_ORDER},
    }
    return {"schema": JSON_SCHEMA, "version": JSON_SCHEMA_VERSION, "run": run,
            "objectives": [_objective_json(r) for r in sorted(records, key=lambda r: r.nodeid)]}


def _objective_json(record: VerdictRecord) -> dict[str, Any]:
    unit = record.unit
    thresholds: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for name, value in (("min", record.bounds.min), ("max", record.bounds.max),
                        ("warn_min", record.warn.min), ("warn_max", record.warn.max)):
        if value is not None:
            thresholds[name], texts[name] = json_number(value), format_value(value, unit)
    limits = record.limit_map
    for limit in record.limits:
        if limit.name != "baseline":
            thresholds[limit.name], texts[limit.name] = json_number(limit.value), limit.text
    baseline = limits.get("baseline")
    before = record.baseline_value
    return {
        "id": record.nodeid,
        "title": record.title,
        "service": record.service or None,
        "objective": record.objective,
        "stage": record.stage or None,
        "matrix": record.matrix or None,
        "verdict": record.verdict.value,
        "outcome": record.outcome,
        "value": json_number(record.value),
        "value_text": value_text(record, with_baseline=False),
        "unit": unit,
        "thresholds": thresholds,
        "threshold_text": texts,
        "baseline": None if baseline is None else {
            "against": baseline.text, "value": json_number(before),
            "value_text": None if before is None else format_value(before, unit),
            "change": record.change or None},
        "queries": dict(record.queries),
        "observations": observation_rows(record),
        "message": None if record.verdict is Verdict.PASS else failure_text(record),
        "link": record.link,
        "window": record.window or None,
        "at": format_time(record.at),
        "backend": record.backend or None,
        "checks": {"exposure": record.checks.get("exposure"),
                   "freshness": list(record.checks.get("freshness", ()))},
        "confidence": None if not record.confidence else {
            "text": record.confidence, "adjustment": record.adjustment or None,
            "family": record.family or None, "tests": significance_rows(record)},
    }


# -- files ----------------------------------------------------------------------------------

def write_markdown(path: Path | str, meta: RunMeta, records: Sequence[VerdictRecord],
                   flag_lines: Sequence[str] = ()) -> None:
    write_text_atomic(Path(path), markdown_report(meta, records, flag_lines))


def write_json(path: Path | str, meta: RunMeta, records: Sequence[VerdictRecord]) -> None:
    document = json_report(meta, records)
    write_text_atomic(Path(path), json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False,
                                         allow_nan=False) + "\n")


__all__ = ["JSON_SCHEMA", "JSON_SCHEMA_VERSION", "json_report", "write_json", "write_markdown"]
