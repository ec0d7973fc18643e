"""What every SQL backend shares between the driver and the verdict: parameters and answers.

:func:`bind_params` adds the timestamp-typed variants of the evaluation time and window
(``:at_ts``, ``:window_start_ts``, ``:window_end_ts``) to the numeric ones the plan binds, so a
query over a ``timestamptz`` or ``DateTime`` column reads naturally. :func:`samples_from_rows`
holds an answer to the same rules as a Prometheus answer: one numeric column (each row a
value) or ``label, value`` rows; NULL is no data; a non-finite or non-numeric value is an
error naming the row and column; integers and ``Decimal`` are read as the nearest float,
which holds every count below 2**53 exactly. :func:`sql_request_key` says which queries are
one request: same text, same values of the parameters the statement names. No I/O.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from pytest_rollout_slo.backends.base import AnyQuery, Query, RequestKey, Sample, full_request_key
from pytest_rollout_slo.errors import BackendError

TIMESTAMP_PARAMS = ("at", "window_start", "window_end")
"""The numeric parameters (unix seconds) that also come as ``<name>_ts`` timestamps."""

# Every word after `:`, `@` or `$`, in literals and comments too: more than the names a
# driver binds (SQLAlchemy's text() reads `:name`, sqlite3 also `@name` and `$name`). A name
# too many only sends a query twice; a name too few would share one answer between queries
# that bind different values, so the key errs on the side of too many. sqlglot is not asked:
# its reading of placeholders differs by dialect, and this superset needs no dialect.
_NAMED = re.compile(r"[:@$](\w+)")


@functools.lru_cache(maxsize=4096)
def _named(text: str) -> tuple[str, ...]:
    return tuple(sorted(set(_NAMED.findall(text))))


def bind_params(params: Mapping[str, str | int | float], timestamps: Literal["datetime", "text"]
                ) -> dict[str, Any]:
    """``params`` with ``<name>_ts`` for each of TIMESTAMP_PARAMS that is present.

    ``datetime``: timezone-aware UTC datetimes, for drivers that bind timestamps (SQLAlchemy).
    ``text``: ISO 8601 UTC text ``2026-11-20 12:00:00``, for SQLite, whose date functions
    and text columns compare in that form.
    """
    bound: dict[str, Any] = dict(params)
    for name in TIMESTAMP_PARAMS:
        value = params.get(name)
        if isinstance(value, (int, float)) and f"{name}_ts" not in params:
            moment = datetime.fromtimestamp(value, tz=timezone.utc)
            bound[f"{name}_ts"] = (moment if timestamps == "datetime"
                                   else moment.isoformat(sep=" ").removesuffix("+00:00"))
    return bound


def sql_request_key(query: AnyQuery) -> RequestKey:
    """An SQL request: the text and the values of the parameters it names, no others.

    A matrix variable the statement does not name (``region`` in a query without
    ``:region``) binds nothing the database reads, so the regions share one request.
    ``:at_ts`` names ``at``, as :func:`bind_params` derives one from the other.
    """
    if not isinstance(query, Query):
        return full_request_key(query)
    params = query.params
    bound: list[tuple[str, object]] = []
    for name in _named(query.text):
        if name in params:
            bound.append((name, params[name]))
        elif name.endswith("_ts") and name[:-3] in TIMESTAMP_PARAMS and name[:-3] in params:
            bound.append((name, params[name[:-3]]))
    return (query.text, tuple(bound))


def samples_from_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, backend: str,
                      query: str) -> tuple[Sample, ...]:
    """The samples of an SQL answer, or BackendError saying what came back instead."""
    if len(columns) not in (1, 2):
        raise BackendError(
            f"the query returned {len(columns)} columns ({', '.join(columns) or 'none'}); "
            "return one numeric column, or two: label, value", backend=backend, query=query)
    samples = []
    for number, row in enumerate(rows, start=1):
        value = _number(row[-1], number, columns[-1], backend, query)
        label = "NULL" if len(columns) == 2 and row[0] is None else str(row[0])
        labels = ((columns[0], label),) if len(columns) == 2 else ()
        samples.append(Sample(labels, value))
    return tuple(samples)


def _shown(value: object) -> str:
    """A value from the database in a message: its repr, never longer than 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(value: Any, row: int, column: str, backend: str, query: str) -> float | None:
    if value is None:
        return None
    where = f"row {row} column {column!r} holds"
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise BackendError(
            f"{where} {type(value).__name__} {_shown(value)}, not a number; the value column must "
            "be numeric (or NULL)", backend=backend, query=query)
    if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, Decimal) and not value.is_finite()):
        raise BackendError(
            f"{where} {value}, not a finite number; return NULL for no data", backend=backend,
            query=query)
    # float() rounds an int or a Decimal to the nearest float, correctly: a Decimal 0.1 reads
    # as the float 0.1 and a count below 2**53 exactly; going through text would not add
    # precision and could lose the value to a locale or an exponent format.
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise BackendError(f"{where} {value}, beyond the range of a float", backend=backend,
                           query=query)
    return number


__all__ = ["TIMESTAMP_PARAMS", "bind_params", "samples_from_rows", "sql_request_key"]
