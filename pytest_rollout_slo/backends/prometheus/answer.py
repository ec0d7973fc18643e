"""What a Prometheus HTTP API answer must be to count, and the samples it then holds.

Owns the strict reading of an answer body: the documented envelope (``status``, ``data``,
``resultType``, ``result``, ``warnings``), JSON decoded per the declared charset with
duplicate keys, ``NaN``/``Infinity`` literals, huge integers and deep nesting refused, sample
values as the strings Prometheus writes (``"0.25"``, ``"1e-05"``, ``"NaN"``, ``"+Inf"``),
finite timestamps at the evaluation time or, for range answers, on the requested grid. A
gate's one promise is that it never passes by accident, so anything a Prometheus-compatible
server would not send is an :class:`AnswerError` naming what came back; nothing here lets a
Python exception escape as an "internal error". ``NaN`` stays a value (no data, judged
later); ``+Inf``/``-Inf`` are refused, because no bound can judge them honestly (``-Inf``
passes every ``max``; ``0/+Inf`` reads 0 %).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pytest_rollout_slo.backends.base import Labels, Sample, Series

# Go's strconv.FormatFloat output as Prometheus and VictoriaMetrics write sample values, plus
# the specials; ASCII digits only, no blanks, no underscores (float() takes all of those).
_VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf",
                    re.ASCII)
# The deepest documented answer: envelope > data > result > series > values > pair.
_MAX_DEPTH = 8
_MAX_INT_DIGITS = 20
# An instant answer's samples are at the evaluation time; VictoriaMetrics may move a time
# close to now back by its -search.latencyOffset (30 s by default), so allow that much.
_INSTANT_SLACK = 60.0
_TIME_TOLERANCE = 0.001  # the API stores milliseconds
_SHOWN = 120


class AnswerError(Exception):
    """The answer cannot be trusted; the text is the whole BackendError message."""


class _Refused(ValueError):
    """JSON that Python's parser would take but no Prometheus writes."""


def decode(content: bytes, content_type: str | None) -> object:
    """The JSON of a body, strictly.

    Raises AnswerError whose text says why the body is not valid JSON as Prometheus writes
    it ("" for a plain syntax error, which the body's first bytes show better).
    """
    charset = _charset(content_type)
    if content.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AnswerError("it starts with a byte order mark, which no Prometheus writes")
    try:
        text = content.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise AnswerError(f"not {charset} ({_short(exc)})") from None
    try:
        payload = json.loads(text, object_pairs_hook=_no_duplicates,
                             parse_constant=_no_constant, parse_int=_bounded_int)
    except RecursionError:
        raise AnswerError("nested far deeper than any Prometheus answer") from None
    except _Refused as exc:
        raise AnswerError(str(exc)) from None
    except ValueError:
        raise AnswerError("") from None
    if _depth(payload) > _MAX_DEPTH:
        raise AnswerError("nested deeper than any Prometheus answer")
    return payload


def envelope_problem(payload: object) -> str:
    """Why ``payload`` is not the API's envelope, or '' when it is."""
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        return 'no "status" of success or error'
    data = payload.get("data")
    if payload["status"] == "success" and not (
            isinstance(data, dict) and isinstance(data.get("resultType"), str)
            and "result" in data):
        return 'no "data" with "resultType" and "result"'
    warnings = payload.get("warnings")
    if warnings is not None and not (
            isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)):
        return '"warnings" that is not a list of strings'
    return ""


def instant_samples(data: Mapping[str, Any], at: float) -> tuple[Sample, ...]:
    """The samples of an instant query's ``data`` evaluated at ``at``."""
    kind, result = data["resultType"], data["result"]
    if kind == "vector":
        return tuple(Sample(labels(item), _instant_value(field(item, "value"), at))
                     for item in items(result))
    if kind == "scalar":
        return (Sample((), _instant_value(result, at)),)
    if kind == "matrix":
        # An instant query over a range selector: every point must hold, so each one is a
        # sample whose "@" label says when it was taken.
        samples = []
        for item in items(result):
            for t, value in points(item):
                if t > at + _TIME_TOLERANCE:
                    raise AnswerError(f"the server returned a point at {rfc3339(t)}, after the "
                                      f"evaluation time {rfc3339(at)}")
                samples.append(Sample(tuple(sorted((*labels(item), ("@", rfc3339(t))))), value))
        return tuple(samples)
    if kind == "string":
        shown = _string_value(result)
        raise AnswerError(f"the query returned a string ({shown!r}), not a number")
    raise AnswerError(f"the server returned an unknown result type {_shown(kind)}")


def range_series(data: Mapping[str, Any], start: float, end: float,
                 step: float) -> tuple[Series, ...]:
    """The series of a range query's ``data``, every point on the grid ``start + k * step``."""
    if data["resultType"] != "matrix":
        raise AnswerError(f"a range query returned a {_shown(data['resultType'])} result, "
                          "not a matrix")
    series = []
    for item in items(data["result"]):
        found = points(item)
        for t, _ in found:
            off = (t - start) / step
            if not (start - _TIME_TOLERANCE <= t <= end + _TIME_TOLERANCE
                    and abs(off - round(off)) * step <= _TIME_TOLERANCE):
                raise AnswerError(
                    f"the server returned a point at {rfc3339(t)}, which is not on the "
                    f"requested grid from {rfc3339(start)} to {rfc3339(end)} every "
                    f"{step:g}s; the gate would judge times it did not ask for")
        times = [t for t, _ in found]
        if times != sorted(set(times)):
            raise AnswerError("the server returned a series whose points are repeated or out "
                              "of order")
        series.append(Series(labels(item), found))
    return tuple(series)


def items(result: object) -> list[Mapping[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(i, dict) for i in result):
        raise AnswerError(f"the server returned a malformed result: {_shown(result)}")
    return result


def labels(item: Mapping[str, Any]) -> Labels:
    metric = item.get("metric", {})
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise AnswerError(f"the server returned malformed labels: {_shown(metric)}")
    return tuple(sorted(metric.items()))


def field(item: Mapping[str, Any], key: str) -> Any:
    if "histogram" in item or "histograms" in item:
        raise AnswerError("the query returned a native histogram, not a number; wrap it in "
                          "histogram_quantile(), histogram_count() or histogram_sum()")
    if key not in item:
        raise AnswerError(f"the server returned a series without {key!r}: {_shown(item)}")
    return item[key]


def points(item: Mapping[str, Any]) -> tuple[tuple[float, float], ...]:
    values = field(item, "values")
    if not isinstance(values, list):
        raise AnswerError(f"the server returned malformed values: {_shown(values)}")
    return tuple(_pair(point) for point in values)


def rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    spec = "seconds" if seconds == int(seconds) else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _instant_value(point: object, at: float) -> float:
    t, value = _pair(point)
    if not at - _INSTANT_SLACK <= t <= at + _TIME_TOLERANCE:
        raise AnswerError(f"the server returned a sample at {rfc3339(t)} for an evaluation at "
                          f"{rfc3339(at)}; an instant answer is taken at the time asked for")
    return value


def _timestamp(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise AnswerError(f"the server returned the timestamp {_shown(raw)}, which is not a "
                          "number")
    t = float(raw)
    # Year 1 to 9999: beyond, no datetime can name it, and no server stores it.
    if not -62135596800.0 <= t <= 253402300799.0:
        raise AnswerError(f"the server returned the timestamp {_shown(raw)}, which is not a "
                          "time a server stores")
    return t


def _pair(point: object) -> tuple[float, float]:
    """``[1700000000.5, "0.25"]`` -> ``(1700000000.5, 0.25)``; NaN kept, infinities refused."""
    if not isinstance(point, list) or len(point) != 2:
        raise AnswerError(f"the server returned a malformed [time, value] pair: "
                          f"{_shown(point)}")
    t, raw = _timestamp(point[0]), point[1]
    if not isinstance(raw, str):
        raise AnswerError(f"the server returned the value {_shown(raw)} as a JSON "
                          f"{_json_kind(raw)}; Prometheus writes sample values as strings")
    if not _VALUE.fullmatch(raw):
        raise AnswerError(f"the server returned the value {_shown(raw)}, which is not a number "
                          "as Prometheus writes one")
    value = float(raw)
    if math.isinf(value):
        raise AnswerError(f"the query produced the non-finite value {raw} at {rfc3339(t)}, "
                          "which no bound can judge: a division by zero gives it, and "
                          "histogram_quantile gives +Inf when the quantile lies above the "
                          "highest finite bucket (add a bucket, or gate a lower quantile)")
    return t, value


def _string_value(point: object) -> str:
    if not isinstance(point, list) or len(point) != 2 or not isinstance(point[1], str):
        raise AnswerError(f"the server returned a malformed string result: {_shown(point)}")
    return point[1][:_SHOWN]


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return "utf-8"  # JSON's own default (RFC 8259), and what Prometheus writes


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Which copy wins differs between parsers; a gate must not depend on it.
            raise _Refused(f"the key {_shown(key)} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON; Prometheus writes special values as strings")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits is larger than any timestamp")
    return int(text)


def _depth(value: object) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > _MAX_DEPTH:
            return depth
        level = [child for node in level
                 for child in (node.values() if isinstance(node, dict)
                               else node if isinstance(node, list) else ())]
    return depth


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "array" if isinstance(value, list) else "object"


def _shown(value: object) -> str:
    """A bounded repr: an answer's value in a message is never larger than _SHOWN."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)[:_SHOWN + 1]
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _short(exc: Exception) -> str:
    return str(exc)[:_SHOWN]


__all__ = ["AnswerError", "decode", "envelope_problem", "instant_samples", "range_series",
           "rfc3339"]
