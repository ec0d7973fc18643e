"""Which metrics a PromQL query selects, and whether the backend has ever seen them.

A typo in a metric name does not fail a PromQL query: it selects nothing, and ``... or
vector(0)``, the usual guard of a ratio's numerator, turns that nothing into a 0 % error rate
that passes every gate. So before a query's answer is judged, every metric name it selects
(a selector's name, or an exact ``__name__`` matcher) must be among the names that had a
series in the lookback window (``/api/v1/label/__name__/values``, asked once per backend and
run). Parsing is by ``promql-parser``, the Rust port of Prometheus's own grammar; a query it
cannot parse (MetricsQL's extensions) is not checked here.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Iterable

import promql_parser


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> object | str:
    """The parsed expression of ``text``, or why it is not PromQL in the parser's words.

    Cached and shared: collection checks every query's syntax and the run then reads the
    metric names of the same texts, and a matrix resolves one text for every value it does
    not use.
    """
    try:
        return promql_parser.parse(text)
    except (ValueError, TypeError) as exc:
        return str(exc)


@functools.lru_cache(maxsize=4096)
def selected_metrics(text: str) -> frozenset[str] | None:
    """The metric names ``text`` selects by exact name; None when it is not PromQL."""
    expr = parse(text)
    if isinstance(expr, str):
        return None
    names: set[str] = set()
    for node in _walk(expr):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
                    names.add(matcher.value)
    return frozenset(names)


def _walk(expr: object) -> Iterable[object]:
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                stack.append(child)
        stack.extend(getattr(node, "args", None) or ())


def unknown_metrics(text: str, known: frozenset[str], lookback: str) -> str | None:
    """The message for the metrics ``text`` selects that ``known`` lacks, or None."""
    selected = selected_metrics(text)
    missing = sorted(selected - known) if selected else []
    if not missing:
        return None
    parts = []
    for name in missing:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    noun = "metric" if len(missing) == 1 else "metrics"
    return (f"the query selects the {noun} {', '.join(parts)}, which had no series on this "
            f"backend in the {lookback} before the evaluation time: a typo, or a metric not "
            "exported (yet); `or vector(0)` would have read it as zero. Fix the name, or set "
            "check_metrics: false on the backend if the metric appears only later")


def newest_sample_query(name: str, searched: float) -> str:
    """PromQL for the Unix time of the newest sample of any series of ``name``.

    ``timestamp()`` of a plain selector is the time of the sample it found, which lies within
    the server's lookback delta (5m by default) of the evaluation time; past it the selector
    finds nothing. So the left side answers exactly for a recent metric, and for an older one
    the subquery looks back ``searched`` seconds: evaluated every minute, each step sees the
    samples of the lookback delta before it, so together the steps miss none as long as the
    lookback delta is at least a minute.
    """
    selector = "{__name__=" + json.dumps(name) + "}"
    window = f"{math.ceil(searched)}s"
    return (f"max(timestamp({selector})) or "
            f"max(max_over_time(timestamp({selector})[{window}:1m]))")


__all__ = ["newest_sample_query", "parse", "selected_metrics", "unknown_metrics"]
