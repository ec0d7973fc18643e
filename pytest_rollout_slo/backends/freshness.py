"""Whether a backend's data is recent: the newest sample against the evaluation time.

A gate that judges data which stopped arriving judges an old window as if it were now: a
counter whose scrape stopped 20 minutes ago still answers ``increase(...[1h])`` with the
hour before it stopped, and a table no longer written to still has its last hour of rows.
So before an answer is judged, the newest sample behind it must lie within ``max_age`` of
the evaluation time. Each backend type finds the newest sample its own way (Prometheus by
``timestamp()`` of each metric a query selects, SQL by the spec's ``freshness.query``); this
module owns what they share: the bound, the check done once per metric and evaluation time,
and the message. No network and no pytest here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rollout_slo.backends.base import (
    AnyQuery,
    Backend,
    Query,
    QueryResult,
    RequestKey,
    request_key,
)
from pytest_rollout_slo.errors import BackendConfigError, BackendError
from pytest_rollout_slo.quantity import QuantityError, format_duration, format_time, parse_duration
from pytest_rollout_slo.spec.settings import QueryCheck, Setting, SettingProblem

DEFAULT_MAX_AGE = 300.0
"""Five minutes: a few scrape intervals at the usual 15 s to 1 m, and Prometheus's own
lookback delta, past which an instant selector no longer sees a series at all. Data older
than that is a scrape (or an export) that stopped, not one that is merely a little late."""


@dataclass(frozen=True)
class Freshness:
    """The newest sample of one metric (or one SQL freshness query) at one evaluation time."""

    what: str
    """``the metric http_requests_total`` or ``the freshness query``."""
    newest: float | None
    """Unix seconds of the newest sample; None when none was found in ``searched``."""
    at: float
    max_age: float
    searched: float | None = None
    """How far back the newest sample was looked for (seconds); None: in all the data."""

    @property
    def age(self) -> float | None:
        return None if self.newest is None else self.at - self.newest

    @property
    def fresh(self) -> bool:
        """Within the bound; never for a missing, non-finite or future timestamp."""
        age = self.age
        return age is not None and math.isfinite(age) and 0 <= age <= self.max_age

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the evidence: times as RFC 3339, ages and bounds in seconds."""
        age = self.age
        return {"what": self.what, "at": _when(self.at),
                "newest": None if self.newest is None else _when(self.newest),
                "age_seconds": age if age is not None and math.isfinite(age) else None,
                "max_age_seconds": self.max_age, "searched_seconds": self.searched,
                "fresh": self.fresh}

    def problem(self, hint: str) -> str | None:
        """The error text for stale (or unreadable) data, or None when fresh."""
        if self.fresh:
            return None
        when = _when(self.at)
        bound = f"the bound is max_age {format_duration(self.max_age)}"
        age = self.age
        if self.newest is None:
            where = ("at all" if self.searched is None
                     else f"in the {format_duration(self.searched)}")
            return (f"{self.what} found no sample {where} before the evaluation time {when} "
                    f"({bound}); {hint}")
        if age is None or not math.isfinite(age):
            return (f"the newest sample of {self.what} has the timestamp {self.newest!r}, "
                    f"which is not a time; {hint}")
        if age < 0:
            return (f"the newest sample of {self.what} is {age_text(-age)} later than the "
                    f"evaluation time {when}: the clock of the data or of --slo-at is off, "
                    f"so its freshness cannot be told")
        return (f"the newest sample of {self.what} is {age_text(age)} older than the "
                f"evaluation time {when} ({bound}); {hint}")


def freshness_summary(data: Mapping[str, Any]) -> str:
    """One line for a report from :meth:`Freshness.to_dict`."""
    bound = f"bound {format_duration(data['max_age_seconds'])}"
    if data["newest"] is None:
        return f"{data['what']}: no sample found ({bound})"
    age = data["age_seconds"]
    shown = "not a time" if age is None else (
        f"{age_text(age)} before the evaluation time" if age >= 0
        else f"{age_text(-age)} after the evaluation time")
    verdict = "fresh" if data["fresh"] else "stale"
    return f"{data['what']}: newest sample {data['newest']}, {shown} ({bound}): {verdict}"


def _when(at: float) -> str:
    try:
        return format_time(at)
    except (OverflowError, OSError, ValueError):  # no calendar time: still a message
        return f"{at!r} (Unix seconds)"


def age_text(seconds: float) -> str:
    """``21m 4s``, ``3h 2m``, ``2d 5h``: an age to the two largest units, rounded down."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.3g}s" if seconds < 1 else f"{whole}s"
    parts: list[tuple[int, str]] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if whole >= size or parts:
            parts.append((whole // size, unit))
            whole %= size
    shown = parts[:2] if parts[1][0] else parts[:1]
    return " ".join(f"{n}{unit}" for n, unit in shown)


class OncePerKey:
    """Computes each key's value once, however many threads ask; a failure is kept too, so
    a check that failed is not asked again for every query."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._done: dict[Hashable, Freshness | BackendError] = {}

    def get(self, key: Hashable, compute: Callable[[], Freshness]) -> Freshness:
        found = self._done.get(key)
        if found is None:
            with self._lock:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:  # one computation per key, other keys go on meanwhile
                found = self._done.get(key)
                if found is None:
                    try:
                        found = compute()
                    except BackendError as exc:
                        found = exc
                    self._done[key] = found
        if isinstance(found, BackendError):
            raise found
        return found

    def results(self) -> list[Freshness]:
        """Every check made so far, for the evidence."""
        return [value for value in list(self._done.values()) if isinstance(value, Freshness)]

    def found(self, key: Hashable) -> Freshness | None:
        """The check made for ``key``, if one was made and answered."""
        value = self._done.get(key)
        return value if isinstance(value, Freshness) else None


def freshness_evidence(backend: object, queries: Iterable[tuple[str, float]]) -> list[Freshness]:
    """The freshness checks behind ``queries`` (text, evaluation time) on ``backend``, for the
    evidence: what a backend with such a check (``freshness_for``) found, each once."""
    lookup = getattr(backend, "freshness_for", None)
    if lookup is None:
        return []
    found: dict[tuple[str, float], Freshness] = {}
    for text, at in queries:
        for item in lookup(text, at):
            found.setdefault((item.what, item.at), item)
    return list(found.values())


SQL_SETTING = Setting(("mapping",), help="check before judging that the events are recent",
                      keys={
    "query": Setting(("string",), required=True, help="a SELECT returning the Unix seconds of "
                     "the newest event at or before :at (or NULL), e.g. SELECT max(ts) FROM "
                     "requests WHERE ts <= :at"),
    "max_age": Setting(("duration",), help="how much older than the evaluation time the newest "
                       "event may be; default 5m"),
})
_SQL_HINT = ("events may have stopped arriving; remove freshness from the backend to judge "
             "without this check")


def check_sql_freshness(settings: Mapping[str, Any], check: QueryCheck) -> None:
    """SettingProblem when ``freshness.query`` is not a read-only SELECT, at collection."""
    freshness = settings.get("freshness")
    text = freshness.get("query") if isinstance(freshness, Mapping) else None
    problem = check(text) if isinstance(text, str) and "${" not in text else None
    if problem:
        raise SettingProblem("freshness.query", problem)


def with_sql_freshness(backend: Backend, settings: Mapping[str, Any]) -> Backend:
    """``backend``, checked by its ``freshness`` setting when it has one."""
    freshness = settings.get("freshness")
    if freshness is None:
        return backend
    try:
        if not isinstance(freshness, Mapping) or not isinstance(freshness.get("query"), str):
            raise QuantityError("must be a mapping with query (and max_age)")
        max_age = parse_duration(freshness.get("max_age", DEFAULT_MAX_AGE))
        if max_age <= 0:
            raise QuantityError("max_age must be longer than 0s")
    except QuantityError as exc:
        raise BackendConfigError(f"setting freshness: {exc}", backend=backend.name) from exc
    return SqlFreshness(backend, str(freshness["query"]), max_age)


class SqlFreshness:
    """An SQL backend whose answers count only while its freshness query finds recent events.

    The query runs once per evaluation time, bound to ``:at`` (and ``:at_ts``) only, so every
    objective of the backend shares it.
    """

    def __init__(self, backend: Backend, query: str, max_age: float) -> None:
        self.backend = backend
        self.name = backend.name
        self.type_name = backend.type_name
        self.query_text = query
        self.max_age = max_age
        self.max_concurrency = getattr(backend, "max_concurrency", 1)
        self.secrets = getattr(backend, "secrets", ())
        self._once = OncePerKey()

    def describe(self) -> str:
        return self.backend.describe()

    def graph_url(self, query: Query) -> str | None:
        return self.backend.graph_url(query)

    def close(self) -> None:
        self.backend.close()

    def request_key(self, query: AnyQuery) -> RequestKey:
        """What the wrapped backend sends, and the evaluation time: two queries the database
        answers alike (a statement without ``:at``) are one request only at the same time,
        as the freshness check they carry is made per time."""
        key = request_key(self.backend, query)
        return (key, query.at) if isinstance(query, Query) else key

    def query(self, query: Query) -> QueryResult:
        result = self.backend.query(query)
        found = self._once.get(query.at, lambda: self._newest(query.at))
        problem = found.problem(_SQL_HINT)
        if problem:
            raise BackendError(problem, backend=self.name, query=self.query_text)
        return result

    def freshness(self) -> list[Freshness]:
        """The freshness checked so far in this run, for the evidence."""
        return self._once.results()

    def freshness_for(self, text: str, at: float) -> list[Freshness]:
        """The freshness check behind a query at ``at``, once made."""
        found = self._once.found(at)
        return [found] if found is not None else []

    def _newest(self, at: float) -> Freshness:
        try:
            samples = self.backend.query(Query(self.query_text, at, {"at": at})).samples
        except BackendError as exc:
            raise BackendError(f"the freshness query failed: {exc.message}", backend=self.name,
                               query=self.query_text) from exc
        if len(samples) != 1 or samples[0].labels:
            raise BackendError(f"the freshness query returned {len(samples)} rows of "
                               f"{'two columns' if samples and samples[0].labels else 'one'}; "
                               "return one row with one value, the Unix seconds of the newest "
                               "event", backend=self.name, query=self.query_text)
        return Freshness("the freshness query", samples[0].value, at, self.max_age)


__all__ = ["DEFAULT_MAX_AGE", "SQL_SETTING", "Freshness", "OncePerKey", "SqlFreshness",
           "age_text", "check_sql_freshness", "freshness_evidence", "freshness_summary",
           "with_sql_freshness"]
