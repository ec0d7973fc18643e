"""Running queries: one backend object per spec backend, each distinct query run once, in time.

Items ask the :class:`Executor` for answers. Before the first item runs, the plugin hands it
the queries of the selected items (all of them, or on a pytest-xdist worker the items about to
run there), so identical queries are shared and all of them run on a bounded set of threads,
at most ``concurrency`` at once overall and at most the backend's ``max_concurrency`` at once
per backend, while pytest walks the items in order. Queries start in the order they were
planned, so the item that runs next finds its answer first. Two queries are the same when
the backend would send the same request for them (its ``request_key``): a PromQL query's
text and times, an SQL query's text and the values of the parameters it names, so a matrix
variable that a query does not use costs no request per value. An answer is kept until every
item that planned it has read it, then dropped: a run holds the answers still to be read,
not every answer of the run.

The whole run has a deadline. An item never waits past it, a query that has not started by
then never starts, and an answer that arrives after it is not used: each of these is an
*error* verdict that names the deadline and what was still pending. The threads are daemons
and are never joined, so a request stuck in a socket read cannot keep pytest from ending.
Backends are created when first needed, never at collection.

A backend that refuses or drops connections for ``DOWN_AFTER`` queries in a row is *down*
for the rest of the run: the queries still queued for it end at once as errors that say
since when, rather than each retrying on its own into the deadline.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pytest_rollout_slo.backends.base import (
    Answer,
    AnyQuery,
    Backend,
    BackendType,
    Query,
    RangeBackend,
    RequestKey,
    resolve_env,
)
from pytest_rollout_slo.backends.redact import Redactor
from pytest_rollout_slo.clock import deadline_at
from pytest_rollout_slo.errors import BackendError
from pytest_rollout_slo.quantity import format_duration, format_time, parse_duration
from pytest_rollout_slo.spec.load import BackendSpec

DEFAULT_DEADLINE = 300.0
DOWN_AFTER = 2
"""Queries in a row whose connection was refused or dropped before a backend counts as down.

Each of them has already been retried (a refused connect is, by the HTTP client), so two is
"repeatedly"; one would let a single blip fail a whole stage."""

_WAITING, _RUNNING, _DONE = 0, 1, 2


def _ask(backend: Backend, query: AnyQuery) -> Answer:
    if isinstance(query, Query):
        return backend.query(query)
    if not isinstance(backend, RangeBackend):
        raise BackendError(f"backend {backend.name} ({backend.type_name}) cannot answer range "
                           "queries", backend=backend.name, query=query.text)
    return backend.query_range(query)


class DeadlineExceeded(BackendError):
    """The run deadline passed before a query answered: an error verdict, never a pass."""


class BackendDown(BackendError):
    """The backend refused or dropped connections repeatedly; this query was never sent."""


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is a refused, reset or broken connection.

    Such an error says the server is not there, unlike a timeout (slow) or an HTTP status
    (there, and answering). urllib3 hides the OSError in ``reason`` and in its exceptions'
    arguments as well as in ``__cause__``, so all three are followed.
    """
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        exc = todo.pop()
        if not isinstance(exc, BaseException) or id(exc) in seen or len(seen) > 50:
            continue
        seen.add(id(exc))
        if isinstance(exc, ConnectionError):  # refused, reset, aborted, broken pipe
            return True
        todo += [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *exc.args]
    return False


@dataclass(slots=True)
class _Outage:
    """Connections lost in a row for one backend: since when, and the first error's text."""

    since: float
    message: str
    count: int = 1


@dataclass(frozen=True)
class BackendKey:
    """A backend is defined by a spec file; two files never share one by accident."""

    spec_path: Path
    name: str


# The backend, and what it sends for the query (see Executor._identity).
_Identity = tuple[BackendKey, RequestKey]


class Pending:
    """The answer to one planned query, shared by every item that asks the same query.

    Far lighter than a ``concurrent.futures.Future`` (no lock of its own): thousands are
    kept for the whole run, and the executor's one condition guards them all.
    """

    __slots__ = ("_error", "_readers", "_started", "_state", "_traceback", "_value")

    def __init__(self) -> None:
        self._state = _WAITING
        self._started = 0.0  # time.monotonic() when a thread began to run it
        # Reads still to come: one per plan that asked for it (shared queries count each).
        self._readers = 0
        self._value: Answer | None = None
        self._error: BaseException | None = None
        self._traceback: TracebackType | None = None

    def running(self) -> bool:
        return self._state == _RUNNING

    def done(self) -> bool:
        return self._state == _DONE

    def answer(self) -> Answer:
        """The answer of a done query, or the exception it ended with."""
        if self._error is not None:
            # The backend thread's traceback each time, not one that grows with every item.
            raise self._error.with_traceback(self._traceback)
        assert self._value is not None
        return self._value


@dataclass(slots=True)
class _Task:
    order: int
    key: BackendKey
    spec: BackendSpec
    query: AnyQuery
    pending: Pending


class Executor:
    """Runs queries for the items of one pytest process and hands each item its answers."""

    def __init__(self, backend_types: Mapping[str, BackendType], concurrency: int,
                 environ: Mapping[str, str] | None = None, *,
                 deadline: float = DEFAULT_DEADLINE) -> None:
        self._types = backend_types
        self._environ = os.environ if environ is None else environ
        self._concurrency = max(1, concurrency)
        self.deadline = deadline
        self._deadline_at: float | None = None
        self._backends: dict[BackendKey, Backend | BackendError] = {}
        self._limits: dict[BackendKey, int] = {}
        self._ranged: dict[BackendKey, bool] = {}
        self._create_lock = threading.Lock()
        # Guards everything below; threads wait on it for work or for a free backend slot.
        self._cond = threading.Condition(threading.Lock())
        # Queries planned and not yet read by every item that planned them.
        self._planned: dict[_Identity, Pending] = {}
        self._distinct = 0
        # Per backend, what it sends for a query: set when the backend is created.
        self._keyers: dict[BackendKey, Callable[[AnyQuery], RequestKey]] = {}
        self._bindings: dict[tuple[tuple[str, object], ...], int] = {}
        self._waiting: dict[BackendKey, deque[_Task]] = {}
        self._running: dict[BackendKey, int] = {}
        self._order = 0
        self._threads = 0
        self._outages: dict[BackendKey, _Outage] = {}
        self._down: set[BackendKey] = set()
        self._secrets: set[str] = set()
        self.redact = Redactor(())
        """Masks the secrets of every backend created so far in this process (each backend's
        optional ``secrets``), for every text the run writes."""
        self._closed = False
        # Items wait on this one for answers; every finished query notifies it.
        self._answered = threading.Condition(threading.Lock())

    @property
    def concurrency(self) -> int:
        """Queries that may run at once, over all backends."""
        return self._concurrency

    @property
    def planned(self) -> int:
        """How many distinct queries were planned so far (shared ones count once)."""
        return self._distinct

    def held(self) -> int:
        """How many answers (or queries still running) are kept for reads still to come."""
        with self._cond:
            return len(self._planned)

    # -- the deadline ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the run's deadline clock, once; the first query starts it if nobody did."""
        if self._deadline_at is None:
            self._deadline_at = time.monotonic() + self.deadline

    def time_left(self) -> float:
        """Seconds until the run deadline (negative once it passed)."""
        self.start()
        assert self._deadline_at is not None
        return self._deadline_at - time.monotonic()

    def _late(self, task: _Task, started: bool) -> DeadlineExceeded:
        """The deadline's error for ``task``, saying what was still pending when it passed.

        Read without the lock (the caller may hold it): the counts are for a person to read,
        and a copied dict view cannot change while it is summed.
        """
        name = task.spec.name
        if started:
            ran = format_duration(round(time.monotonic() - task.pending._started, 1))
            where = f"it had been running for {ran}"
        else:
            where = "it had not started"
        running = list(self._running.items())
        waiting = [(key, len(tasks)) for key, tasks in list(self._waiting.items())]
        mine = (sum(n for key, n in running if key == task.key),
                sum(n for key, n in waiting if key == task.key))
        others = (sum(n for _, n in running) - mine[0], sum(n for _, n in waiting) - mine[1])
        limit = self._limits.get(task.key)
        pending = (f"pending for {name} then: {mine[0]} running, {mine[1]} waiting for a slot"
                   + (f" (at most {limit} at once)" if limit is not None else ""))
        if any(others):
            pending += f"; for other backends: {others[0]} running, {others[1]} waiting"
        return DeadlineExceeded(
            f"the run deadline of {format_duration(self.deadline)} passed before this query "
            f"answered: {where}; {pending}", backend=name, query=task.query.text)

    # -- backends that are down -----------------------------------------------------------

    def _down_error(self, task: _Task) -> BackendDown:
        outage = self._outages[task.key]
        return BackendDown(
            f"backend {task.spec.name} is down since {format_time(round(outage.since))}: "
            f"{outage.count} queries in a row lost their connection, the first with: "
            f"{outage.message}; this query was not sent", backend=task.spec.name,
            query=task.query.text)

    def _note(self, task: _Task, error: BaseException | None) -> None:
        """Count a lost connection for the task's backend, or forget the count on an answer;
        at ``DOWN_AFTER`` in a row, end every query still waiting for that backend."""
        key = task.key
        if error is None and key not in self._outages:
            return  # the usual answer: no lock taken
        with self._cond:
            if error is None or not connection_lost(error):
                if key not in self._down:
                    self._outages.pop(key, None)
                return
            outage = self._outages.get(key)
            if outage is None:
                message = error.message if isinstance(error, BackendError) else str(error)
                self._outages[key] = outage = _Outage(time.time(), message)
            elif key not in self._down:
                outage.count += 1
            if outage.count < DOWN_AFTER or key in self._down:
                return
            self._down.add(key)
            queued = self._waiting.get(key, deque())
            ended = list(queued)
            queued.clear()
        for waiting in ended:
            self._finish(waiting, error=self._down_error(waiting))

    def down(self, key: BackendKey) -> bool:
        """Whether the backend lost its connection too often to be asked again this run."""
        return key in self._down

    # -- backends -------------------------------------------------------------------------

    def backend(self, key: BackendKey, spec: BackendSpec) -> Backend:
        """The backend for ``key``, created once; a creation error is raised on every use."""
        found = self._backends.get(key)
        if found is None:
            with self._create_lock:
                found = self._backends.get(key)
                if found is None:
                    found = self._create(key, spec)
                    self._backends[key] = found
            with self._cond:  # its own limit now applies instead of one at a time
                self._cond.notify_all()
        if isinstance(found, BackendError):
            raise found
        return found

    def _create(self, key: BackendKey, spec: BackendSpec) -> Backend | BackendError:
        try:
            settings = resolve_env(spec.settings, spec.name, self._environ)
            backend = self._types[spec.type].create(spec.name, settings, key.spec_path.parent)
        except BackendError as exc:
            exc.backend = exc.backend or spec.name
            self._keyers[key] = self._full_key  # every read raises the creation error
            return exc
        self._keyers[key] = getattr(backend, "request_key", self._full_key)
        self._limits[key] = max(1, int(getattr(backend, "max_concurrency", self._concurrency)))
        secrets = {s for s in getattr(backend, "secrets", ()) if isinstance(s, str) and s}
        if not secrets <= self._secrets:
            self._secrets |= secrets
            self.redact = Redactor(self._secrets)
        # Once per backend: a runtime-checkable Protocol's isinstance costs ~40 us on 3.11.
        self._ranged[key] = isinstance(backend, RangeBackend)
        return backend

    def ranged(self, key: BackendKey, spec: BackendSpec) -> bool:
        """Whether the backend answers range queries; raises its creation error if any."""
        self.backend(key, spec)
        return self._ranged[key]

    # -- planning and answers -------------------------------------------------------------

    def submit(self, key: BackendKey, spec: BackendSpec, query: AnyQuery) -> Pending:
        """Queue ``query`` unless the same query on the same backend was queued already."""
        return self._queue([(key, spec, query)])[0]

    def prefetch(self, plans: Iterable[tuple[BackendKey, BackendSpec, AnyQuery]]) -> None:
        """Queue every planned query, in order; the answers are read later by the items."""
        # Planning may create a backend, which takes the lock: plan first, then queue all.
        self._queue(list(plans))

    def _queue(self, plans: Sequence[tuple[BackendKey, BackendSpec, AnyQuery]]) -> list[Pending]:
        self.start()
        found: list[Pending] = []
        queued = 0
        identities = [self._identity(key, spec, query) for key, spec, query in plans]
        with self._cond:
            for (key, spec, query), identity in zip(plans, identities, strict=True):
                pending = self._planned.get(identity)
                if pending is None:
                    task = _Task(self._order, key, spec, query, Pending())
                    self._order += 1
                    self._distinct += 1
                    pending = self._planned[identity] = task.pending
                    if self._closed:
                        self._finish(task, error=self._late(task, started=False))
                    elif key in self._down:
                        self._finish(task, error=self._down_error(task))
                    else:
                        self._waiting.setdefault(key, deque()).append(task)
                        queued += 1
                pending._readers += 1
                found.append(pending)
            # One wake-up per batch, not per query: threads woken one by one would fight
            # the planning thread for the GIL.
            for _ in range(min(queued, self._concurrency - self._threads)):
                self._threads += 1
                threading.Thread(target=self._work, name=f"slo-query-{self._threads}",
                                 daemon=True).start()
            if queued:
                self._cond.notify(queued)
        return found

    def _identity(self, key: BackendKey, spec: BackendSpec, query: AnyQuery) -> _Identity:
        """Two queries are the same when the same backend would send the same request.

        Creates the backend if nobody did (the item's planning usually has), so that a
        query is keyed the same way when it is queued and when it is read; not under the
        lock, which creating a backend takes.
        """
        keyer = self._keyers.get(key)
        if keyer is None:
            with contextlib.suppress(BackendError):  # keyed in full; every read raises it
                self.backend(key, spec)
            keyer = self._keyers.get(key, self._full_key)
        return (key, keyer(query))

    def _full_key(self, query: AnyQuery) -> RequestKey:
        """``full_request_key``, for a backend that does not say what it sends, with the
        bound values numbered: items rarely share that dict by identity but often by value,
        so each distinct set is kept once rather than per planned query."""
        bound = tuple(sorted(query.params.items()))
        number = self._bindings.setdefault(bound, len(self._bindings))
        if isinstance(query, Query):
            return (query.text, query.at, number)
        return (query.text, query.start, query.end, query.step, number)

    def result(self, key: BackendKey, spec: BackendSpec, query: AnyQuery) -> Answer:
        """The answer to ``query``, waiting for it at most until the run deadline.

        This read is one of those planned for the query (a query nobody planned is queued
        now); after the last planned read the answer is dropped, and a later read runs the
        query again. Raises the backend's error (or, for a bug in a backend, whatever it
        raised), and DeadlineExceeded when no answer came in time.
        """
        identity = self._identity(key, spec, query)
        with self._cond:
            pending = self._planned.get(identity)
        if pending is None:
            pending = self.submit(key, spec, query)
        try:
            if not pending.done():
                with self._answered:
                    if not self._answered.wait_for(pending.done, max(0.0, self.time_left())):
                        task = _Task(-1, key, spec, query, pending)
                        raise self._late(task, started=pending.running())
            return pending.answer()
        finally:
            with self._cond:
                pending._readers -= 1
                if pending._readers <= 0 and self._planned.get(identity) is pending:
                    del self._planned[identity]

    # -- the threads ----------------------------------------------------------------------

    def _next_task(self) -> _Task | None:
        """The earliest planned query whose backend has a free slot."""
        best: _Task | None = None
        for key, tasks in self._waiting.items():
            free = tasks and self._running.get(key, 0) < self._limits.get(key, 1)
            if free and (best is None or tasks[0].order < best.order):
                best = tasks[0]
        if best is not None:
            self._waiting[best.key].popleft()
            self._running[best.key] = self._running.get(best.key, 0) + 1
        return best

    def _work(self) -> None:
        while True:
            with self._cond:
                task = self._next_task()
                while task is None:
                    if self._closed:
                        self._threads -= 1
                        return
                    self._cond.wait()
                    task = self._next_task()
            try:
                self._run(task)
            finally:
                with self._cond:
                    self._running[task.key] -= 1
                    self._cond.notify()

    def _run(self, task: _Task) -> None:
        if self.time_left() <= 0:
            self._finish(task, error=self._late(task, started=False))
            return
        if task.key in self._down:
            self._finish(task, error=self._down_error(task))
            return
        task.pending._started = time.monotonic()
        task.pending._state = _RUNNING
        try:
            with deadline_at(self._deadline_at):
                backend = self.backend(task.key, task.spec)
                result = _ask(backend, task.query)
        except BaseException as exc:  # handed to the item that reads the answer
            self._note(task, exc)
            self._finish(task, error=exc)
        else:
            self._note(task, None)
            # An item that waited for this answer has already given up; later ones must agree.
            if self.time_left() <= 0:
                self._finish(task, error=self._late(task, started=True))
            else:
                self._finish(task, value=result)

    def _finish(self, task: _Task, *, value: Answer | None = None,
                error: BaseException | None = None) -> None:
        pending = task.pending
        with self._answered:
            pending._value = value
            pending._error = error
            pending._traceback = None if error is None else error.__traceback__
            pending._state = _DONE
            self._answered.notify_all()

    def close(self, on_error: Callable[[str], None] | None = None) -> None:
        """Stop the threads without waiting for them, and close every backend."""
        with self._cond:
            self._closed = True
            for tasks in self._waiting.values():
                for task in tasks:
                    self._finish(task, error=self._late(task, started=False))
                tasks.clear()
            self._cond.notify_all()
        for backend in self._backends.values():
            if isinstance(backend, BackendError):
                continue
            try:
                backend.close()
            except Exception as exc:  # closing must never hide the verdicts
                if on_error is not None:
                    on_error(f"closing backend {backend.name}: {exc}")


def parse_deadline(text: str) -> float:
    """Seconds in ``--slo-deadline``: a duration (``5m``, ``90s``) or a number of seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = parse_duration(value)
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"expected a duration longer than 0s, got {text!r}")
    return seconds


__all__ = ["DEFAULT_DEADLINE", "DOWN_AFTER", "BackendDown", "BackendKey", "DeadlineExceeded",
           "Executor", "Pending", "connection_lost", "parse_deadline"]
