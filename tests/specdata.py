"""Spec text and times several test modules share (test data, no helpers).

The end-to-end modules gate the same SQLite ``req`` table at the same evaluation time; the
spec-validation and schema modules start from the same file header.
"""

from __future__ import annotations

AT = "2026-11-26T12:00:00Z"
AT_UNIX = 1_795_694_400
"""``AT`` in unix seconds: where the events databases put their rows."""

ERROR_RATE = """\
- name: error_rate
  ratio:
    numerator: >-
      SELECT count(*) FROM req WHERE feature = '${feature}' AND outcome = 'error'
      AND ts >= :window_start AND ts < :window_end
    denominator: >-
      SELECT count(*) FROM req WHERE feature = '${feature}'
      AND ts >= :window_start AND ts < :window_end
  max: 5%
"""

QUIET_SKIP = """\
- name: quiet_region
  ratio:
    numerator: SELECT count(*) FROM req WHERE region = 'mars' AND outcome = 'error'
    denominator: SELECT count(*) FROM req WHERE region = 'mars'
  max: 5%
  on_no_data: skip
"""

SPEC_HEADER = """\
version: 1
service: svc
backends:
  prom: {type: prometheus, url: "http://prometheus:9090"}
  db: {type: sqlite, path: events.db}
variables: {window: 1h, feature: resolver}
stages:
  beta: {}
  ga: {}
"""
"""Everything before ``objectives:`` of a spec with a PromQL and an SQL backend."""
