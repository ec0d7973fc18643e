"""Unit tests of the Executor: shared queries, bounded concurrency, the run deadline, errors.

The fake backends here block on events rather than sleeping, so the tests assert what ran
and what each item was told, never how long something took; the only clock assertions say
that a run ended within its deadline plus generous slack.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import StubBackend

from pytest_rollout_slo.backends.base import Backend, Query, QueryResult, Sample
from pytest_rollout_slo.clock import time_left
from pytest_rollout_slo.errors import BackendConfigError, BackendError
from pytest_rollout_slo.plan.executor import (
    DOWN_AFTER,
    BackendDown,
    BackendKey,
    DeadlineExceeded,
    Executor,
    connection_lost,
    parse_deadline,
)
from pytest_rollout_slo.plan.xdist import WorkerPlan, xdist_queue
from pytest_rollout_slo.spec.load import BackendSpec
from pytest_rollout_slo.spec.settings import Setting

pytest_plugins = ["pytester"]

AT = 1_700_000_000.0
SLACK = 15.0  # seconds a pytest subprocess may need on a busy 2-core machine


class Gauge:
    """How many calls run at once, and the most there ever were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


class FakeBackend(StubBackend):
    """Answers ``Query("7")`` with 7.0; counts calls and how many ran at once."""

    type_name = "fake"

    def __init__(self, name: str, max_concurrency: int = 8,
                 gate: threading.Event | None = None,
                 answer: Callable[[Query], QueryResult] | None = None,
                 overall: Gauge | None = None) -> None:
        self.name = name
        self.overall = overall or Gauge()
        self.max_concurrency = max_concurrency
        self.gate = gate
        self.answer = answer
        self.calls: list[str] = []
        self.active = 0
        self.peak = 0
        self.started = threading.Condition()

    def query(self, query: Query) -> QueryResult:
        with self.started:
            self.calls.append(query.text)
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.notify_all()
        self.overall.enter()
        try:
            if self.gate is not None:
                self.gate.wait(30)
            if self.answer is not None:
                return self.answer(query)
            return QueryResult((Sample((), float(query.text)),))
        finally:
            self.overall.leave()
            with self.started:
                self.active -= 1

    def wait_for_calls(self, count: int) -> None:
        with self.started:
            assert self.started.wait_for(lambda: len(self.calls) >= count, timeout=30)


class FakeType:
    """A backend type handing out prepared FakeBackend objects by backend name."""

    name = "fake"
    settings: Mapping[str, Setting] = {"token": Setting(("string",))}

    def __init__(self, **backends: FakeBackend) -> None:
        self.backends = backends
        self.created: list[str] = []

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        self.created.append(name)
        return self.backends[name]


def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("gave up waiting after 30 s")


def samples(answer: object) -> tuple[Sample, ...]:
    assert isinstance(answer, QueryResult)
    return answer.samples


def spec(name: str, **settings: Any) -> tuple[BackendKey, BackendSpec]:
    return BackendKey(Path("/specs/a.yaml"), name), BackendSpec(name, "fake", settings, 1)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event the fake backends wait on; always set at the end so no thread is left."""
    event = threading.Event()
    yield event
    event.set()


# --- shared queries ------------------------------------------------------------------------

def test_identical_queries_run_once_and_share_the_answer() -> None:
    backend = FakeBackend("m")
    backend_type = FakeType(m=backend)
    executor = Executor({"fake": backend_type}, 4)
    key, backend_spec = spec("m")
    executor.prefetch([(key, backend_spec, Query("7", AT, {"stage": "beta"}))] * 2)
    first = executor.result(key, backend_spec, Query("7", AT, {"stage": "beta"}))
    again = executor.result(key, backend_spec, Query("7", AT, {"stage": "beta"}))
    assert first is again
    assert samples(first) == (Sample((), 7.0),)
    assert backend.calls == ["7"]
    assert backend_type.created == ["m"]
    assert executor.planned == 1
    executor.close()


def test_an_answer_is_dropped_after_its_last_planned_read() -> None:
    # Answers are kept only for the items still to read them: a run of thousands of
    # objectives must not hold every answer until it ends.
    backend = FakeBackend("m")
    executor = Executor({"fake": FakeType(m=backend)}, 4)
    key, backend_spec = spec("m")
    executor.prefetch([(key, backend_spec, Query("7", AT))] * 2
                      + [(key, backend_spec, Query("8", AT))])
    executor.result(key, backend_spec, Query("7", AT))
    assert executor.held() == 2
    executor.result(key, backend_spec, Query("7", AT))
    executor.result(key, backend_spec, Query("8", AT))
    assert executor.held() == 0
    assert sorted(backend.calls) == ["7", "8"]
    # A read nobody planned (a rerun of the item) asks the backend again.
    assert samples(executor.result(key, backend_spec, Query("7", AT))) == (Sample((), 7.0),)
    assert sorted(backend.calls) == ["7", "7", "8"]
    assert executor.held() == 0
    executor.close()


def test_a_failed_answer_is_dropped_after_its_last_read_too() -> None:
    def refuse(query: Query) -> QueryResult:
        raise BackendError("refused", backend="m")

    executor = Executor({"fake": FakeType(m=FakeBackend("m", answer=refuse))}, 2)
    key, backend_spec = spec("m")
    executor.prefetch([(key, backend_spec, Query("boom", AT))])
    with pytest.raises(BackendError):
        executor.result(key, backend_spec, Query("boom", AT))
    assert executor.held() == 0
    executor.close()


def test_a_query_differing_in_time_params_or_backend_runs_again() -> None:
    backends = {"m": FakeBackend("m"), "n": FakeBackend("n")}
    executor = Executor({"fake": FakeType(**backends)}, 4)
    key, backend_spec = spec("m")
    executor.prefetch([(key, backend_spec, Query("7", AT)),
                       (key, backend_spec, Query("7", AT + 60)),
                       (key, backend_spec, Query("7", AT, {"stage": "ga"})),
                       (*spec("n"), Query("7", AT))])
    for query in (Query("7", AT), Query("7", AT + 60), Query("7", AT, {"stage": "ga"})):
        executor.result(key, backend_spec, query)
    executor.result(*spec("n"), Query("7", AT))
    assert backends["m"].calls == ["7", "7", "7"]
    assert backends["n"].calls == ["7"]
    executor.close()


# --- bounded concurrency -------------------------------------------------------------------

def test_a_backend_never_runs_more_than_its_max_concurrency(release: threading.Event) -> None:
    backend = FakeBackend("m", max_concurrency=2, gate=release)
    executor = Executor({"fake": FakeType(m=backend)}, 8)
    key, backend_spec = spec("m")
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(10))
    backend.wait_for_calls(2)
    time.sleep(0.2)  # room for a third call to start if the bound did not hold
    assert len(backend.calls) == 2
    release.set()
    assert [samples(executor.result(key, backend_spec, Query(str(i), AT)))[0].value
            for i in range(10)] == [float(i) for i in range(10)]
    assert backend.peak == 2
    executor.close()


def test_all_backends_together_never_run_more_than_the_concurrency(
        release: threading.Event) -> None:
    overall = Gauge()
    backends = {name: FakeBackend(name, gate=release, overall=overall) for name in ("m", "n")}
    executor = Executor({"fake": FakeType(**backends)}, 3)
    executor.prefetch((*spec(name), Query(str(i), AT)) for i in range(5) for name in "mn")
    backends["m"].wait_for_calls(1)
    backends["n"].wait_for_calls(1)
    time.sleep(0.2)
    assert len(backends["m"].calls) + len(backends["n"].calls) == 3
    release.set()
    for name in "mn":
        for i in range(5):
            executor.result(*spec(name), Query(str(i), AT))
    assert overall.peak == 3
    executor.close()


def test_a_busy_backend_does_not_hold_up_another(release: threading.Event) -> None:
    slow = FakeBackend("slow", max_concurrency=1, gate=release)
    fast = FakeBackend("fast")
    executor = Executor({"fake": FakeType(slow=slow, fast=fast)}, 4)
    executor.prefetch([(*spec("slow"), Query(str(i), AT)) for i in range(20)])
    slow.wait_for_calls(1)
    assert samples(executor.result(*spec("fast"), Query("3", AT))) == (Sample((), 3.0),)
    assert slow.calls == ["0"]
    release.set()
    executor.close()


def test_queries_start_in_the_order_they_were_planned() -> None:
    backend = FakeBackend("m", max_concurrency=1)
    executor = Executor({"fake": FakeType(m=backend)}, 1)
    key, backend_spec = spec("m")
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(30))
    executor.result(key, backend_spec, Query("29", AT))
    assert backend.calls == [str(i) for i in range(30)]
    executor.close()


# --- the run deadline ----------------------------------------------------------------------

def test_a_query_still_running_at_the_deadline_is_an_error(release: threading.Event) -> None:
    backend = FakeBackend("m", max_concurrency=1, gate=release)
    executor = Executor({"fake": FakeType(m=backend)}, 2, deadline=0.5)
    key, backend_spec = spec("m")
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(2))
    with pytest.raises(DeadlineExceeded) as running:
        executor.result(key, backend_spec, Query("0", AT))
    with pytest.raises(DeadlineExceeded) as waiting:
        executor.result(key, backend_spec, Query("1", AT))
    assert isinstance(running.value, BackendError)
    # What was pending, not a guess: one query held m's only slot, the other waited for it.
    assert running.value.message == (
        "the run deadline of 500ms passed before this query answered: it had been running for "
        "500ms; pending for m then: 1 running, 1 waiting for a slot (at most 1 at once)")
    assert waiting.value.message.startswith(
        "the run deadline of 500ms passed before this query answered: it had not started; "
        "pending for m then: ")
    assert (running.value.backend, running.value.query) == ("m", "0")
    release.set()
    executor.close()


# --- a backend that is down ----------------------------------------------------------------

def refused(query: Query) -> QueryResult:
    """What the prometheus backend raises when every connect attempt was refused."""
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        raise BackendError(f"connection refused by http://m/api/v1/query ({query.text})",
                           backend="m") from exc


def test_queued_queries_end_at_once_once_a_backend_refuses_connections_repeatedly() -> None:
    backend = FakeBackend("m", max_concurrency=1, answer=refused)
    executor = Executor({"fake": FakeType(m=backend)}, 1, deadline=60)
    key, backend_spec = spec("m")
    before = time.time()
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(50))
    errors = []
    for i in range(50):
        with pytest.raises(BackendError) as caught:
            executor.result(key, backend_spec, Query(str(i), AT))
        errors.append(caught.value)
    # Only the first DOWN_AFTER queries were sent; the others never reached the backend.
    assert backend.calls == [str(i) for i in range(DOWN_AFTER)]
    assert executor.down(key)
    assert not isinstance(errors[0], BackendDown)
    down = errors[DOWN_AFTER:]
    assert all(isinstance(e, BackendDown) for e in down)
    since = down[0].message.split("down since ")[1].split(": ")[0]
    assert abs(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() - before) < 5
    assert down[0].message.endswith(
        f": {DOWN_AFTER} queries in a row lost their connection, the first with: connection "
        "refused by http://m/api/v1/query (0); this query was not sent")
    assert (down[0].backend, down[0].query) == ("m", str(DOWN_AFTER))
    # A query planned later (an xdist worker's next batch) ends at once too.
    with pytest.raises(BackendDown):
        executor.result(key, backend_spec, Query("late", AT))
    assert len(backend.calls) == DOWN_AFTER
    executor.close()


def test_an_answer_between_lost_connections_keeps_the_backend_up() -> None:
    def flaky(query: Query) -> QueryResult:
        if int(query.text) % 2 == 0:
            return refused(query)
        return QueryResult((Sample((), 1.0),))

    backend = FakeBackend("m", max_concurrency=1, answer=flaky)
    executor = Executor({"fake": FakeType(m=backend)}, 1, deadline=60)
    key, backend_spec = spec("m")
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(10))
    for i in range(10):
        if i % 2:
            executor.result(key, backend_spec, Query(str(i), AT))
        else:
            with pytest.raises(BackendError) as caught:
                executor.result(key, backend_spec, Query(str(i), AT))
            assert not isinstance(caught.value, BackendDown)
    assert len(backend.calls) == 10
    assert not executor.down(key)
    executor.close()


def test_other_errors_never_mark_a_backend_down() -> None:
    def slow(query: Query) -> QueryResult:
        raise BackendError("timed out after 1s waiting for http://m/api/v1/query", backend="m")

    backend = FakeBackend("m", max_concurrency=1, answer=slow)
    executor = Executor({"fake": FakeType(m=backend)}, 1, deadline=60)
    key, backend_spec = spec("m")
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(5))
    for i in range(5):
        with pytest.raises(BackendError):
            executor.result(key, backend_spec, Query(str(i), AT))
    assert len(backend.calls) == 5
    executor.close()


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "refused"), ConnectionResetError(104, "reset"), BrokenPipeError(),
])
def test_connection_lost_follows_the_chains_urllib3_builds(error: OSError) -> None:
    # requests.ConnectionError(MaxRetryError(reason=NewConnectionError(...) from OSError)),
    # and ProtocolError("Connection broken: ...", OSError) for a reset while reading.
    class Wrapped(Exception):
        def __init__(self, reason: BaseException) -> None:
            super().__init__("wrapped")
            self.reason = reason

    try:
        try:
            raise error
        except OSError as inner:
            raise Wrapped(Exception("Connection broken", inner)) from None
    except Wrapped as outer:
        assert not connection_lost(BackendError("x"))
        try:
            raise BackendError("connection lost") from outer
        except BackendError as top:
            assert connection_lost(top)
    assert not connection_lost(BackendError("HTTP 503"))
    assert not connection_lost(TimeoutError("timed out"))


def test_an_answer_that_arrives_after_the_deadline_is_not_used(
        release: threading.Event) -> None:
    backend = FakeBackend("m", gate=release)
    executor = Executor({"fake": FakeType(m=backend)}, 2, deadline=0.3)
    key, backend_spec = spec("m")
    pending = executor.submit(key, backend_spec, Query("7", AT))
    backend.wait_for_calls(1)
    while executor.time_left() > 0:
        time.sleep(0.05)
    release.set()
    wait_until(pending.done)
    with pytest.raises(DeadlineExceeded):
        pending.answer()
    with pytest.raises(DeadlineExceeded):
        executor.result(key, backend_spec, Query("7", AT))
    executor.close()


def test_an_answer_in_time_is_still_read_after_the_deadline() -> None:
    executor = Executor({"fake": FakeType(m=FakeBackend("m"))}, 2, deadline=0.3)
    key, backend_spec = spec("m")
    wait_until(executor.submit(key, backend_spec, Query("7", AT)).done)
    while executor.time_left() > 0:
        time.sleep(0.05)
    assert samples(executor.result(key, backend_spec, Query("7", AT))) == (Sample((), 7.0),)
    executor.close()


def test_a_backend_sees_the_time_left_while_it_runs_a_query() -> None:
    seen: list[float | None] = []

    def answer(query: Query) -> QueryResult:
        seen.append(time_left())
        return QueryResult(())

    executor = Executor({"fake": FakeType(m=FakeBackend("m", answer=answer))}, 1, deadline=60)
    executor.result(*spec("m"), Query("x", AT))
    assert time_left() is None
    assert seen[0] is not None and 0 < seen[0] <= 60
    executor.close()


def test_close_returns_without_waiting_for_a_stuck_query(release: threading.Event) -> None:
    backend = FakeBackend("m", gate=release)
    executor = Executor({"fake": FakeType(m=backend)}, 1)
    key, backend_spec = spec("m")
    executor.prefetch((key, backend_spec, Query(str(i), AT)) for i in range(3))
    backend.wait_for_calls(1)
    executor.close()  # returns although query 0 still runs
    stuck = [t for t in threading.enumerate() if t.name.startswith("slo-query")]
    assert stuck and all(t.daemon for t in stuck)
    with pytest.raises(DeadlineExceeded, match="had not started"):
        executor.result(key, backend_spec, Query("2", AT))


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300.0), ("90", 90.0), ("1.5", 1.5),
                                                ("1h30m", 5400.0), (" 250ms ", 0.25)])
def test_parse_deadline(text: str, seconds: float) -> None:
    assert parse_deadline(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1", "0s", "soon", "", "nan", "inf"])
def test_parse_deadline_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_deadline(text)


# --- errors never pass ---------------------------------------------------------------------

def test_a_backend_creation_error_is_raised_for_every_use() -> None:
    class Broken(FakeType):
        def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
            self.created.append(name)
            raise BackendConfigError("backend m: setting url is not a url")

    broken = Broken()
    executor = Executor({"fake": broken}, 2)
    key, backend_spec = spec("m")
    for text in ("1", "2", "1"):
        with pytest.raises(BackendConfigError, match="setting url") as info:
            executor.result(key, backend_spec, Query(text, AT))
        assert info.value.backend == "m"
    with pytest.raises(BackendConfigError):
        executor.backend(key, backend_spec)
    assert broken.created == ["m"]
    executor.close()


def test_a_missing_env_variable_fails_every_query_of_that_backend_only() -> None:
    executor = Executor({"fake": FakeType(m=FakeBackend("m"), n=FakeBackend("n"))}, 2,
                        environ={})
    key, backend_spec = spec("m", token="${env:SLO_TOKEN}")
    for text in ("1", "2"):
        with pytest.raises(BackendConfigError, match="SLO_TOKEN"):
            executor.result(key, backend_spec, Query(text, AT))
    assert samples(executor.result(*spec("n"), Query("3", AT))) == (Sample((), 3.0),)
    executor.close()


def test_a_bug_in_a_backend_surfaces_as_its_own_exception() -> None:
    def answer(query: Query) -> QueryResult:
        raise KeyError("samples")

    executor = Executor({"fake": FakeType(m=FakeBackend("m", answer=answer))}, 2)
    depths = []
    for _ in range(2):  # every item that shares the query gets it, with the same traceback
        with pytest.raises(KeyError, match="samples") as info:
            executor.result(*spec("m"), Query("7", AT))
        depths.append(len(info.traceback))
    assert depths[0] == depths[1]
    executor.close()


def test_worker_plan_takes_each_item_once_the_next_one_and_the_queued_ones() -> None:
    items = [f"item{i}" for i in range(10)]
    queue = [5, 6]
    plan = WorkerPlan(items, lambda: queue)
    assert plan.window(items[0], items[4]) == ["item0", "item4", "item5", "item6"]
    queue[:] = [6, 7, 8]
    assert plan.window(items[4], items[5]) == ["item7", "item8"]
    assert WorkerPlan(items).window(items[2], None) == ["item2"]


def test_xdist_queue_reads_the_worker_queue_of_either_xdist_generation() -> None:
    import contextlib
    import queue

    class TestQueue:
        @contextlib.contextmanager
        def lock(self) -> Iterator[list[object]]:
            yield [3, 4, "shutdown"]

    class Interactor:
        def __init__(self, torun: object) -> None:
            self.torun = torun

    old = queue.Queue[object]()
    for index in (7, 8):
        old.put(index)
    assert xdist_queue([object()]) is None
    read_new = xdist_queue([object(), Interactor(TestQueue())])
    read_old = xdist_queue([Interactor(old)])
    assert read_new is not None and read_new() == [3, 4]
    assert read_old is not None and read_old() == [7, 8]


# --- through pytest ------------------------------------------------------------------------

MEMORY_CONFTEST = '''
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rollout_slo.backends.base import Query, QueryResult, Sample
from pytest_rollout_slo.spec.settings import Setting
from pytest_rollout_slo.errors import BackendError

LOG = Path(__file__).with_name("queries.log")
_LOCK = threading.Lock()


class MemoryBackend:
    """``value 0.5`` answers 0.5, ``hang`` never answers, ``bug`` raises a KeyError."""

    type_name = "memory"

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return "memory"

    def graph_url(self, query: Query) -> None:
        return None

    def close(self) -> None:
        pass

    def query(self, query: Query) -> QueryResult:
        with _LOCK, LOG.open("a") as log:
            log.write(f"{os.getpid()} {query.at!r} {query.text}\\n")
        word, _, arg = query.text.partition(" ")
        if word == "hang":
            threading.Event().wait(600)
        if word == "bug":
            return {}["samples"]
        if word == "value":
            return QueryResult((Sample((), float(arg.split()[0])),))
        raise BackendError(f"cannot answer {query.text!r}", backend=self.name)


class MemoryType:
    name = "memory"
    settings: Mapping[str, Setting] = {"token": Setting(("string",))}

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> MemoryBackend:
        return MemoryBackend(name)


def pytest_slo_backend_types() -> list[MemoryType]:
    return [MemoryType()]
'''


def memory_spec(objectives: str, backends: str = "mem: {type: memory}") -> str:
    return textwrap.dedent("""\
        version: 1
        service: svc
        backends:
          {backends}
        stages:
          s: {{}}
        objectives:
        """).format(backends=backends) + textwrap.indent(textwrap.dedent(objectives), "  ")


def objective(name: str, query: str, extra: str = "") -> str:
    return f"- name: {name}\n  query: {query}\n  max: 1\n{extra}"


def test_items_past_the_deadline_error_and_the_run_ends_in_time(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MEMORY_CONFTEST)
    pytester.makefile(".slo.yaml", gate=memory_spec(
        objective("ok", "value 0.5") + objective("stuck", "hang")
        + objective("after", "hang again")))
    start = time.monotonic()
    result = pytester.runpytest_subprocess("--slo-stage=s", "--slo-deadline=2s",
                                           "--slo-concurrency=1", timeout=120)
    elapsed = time.monotonic() - start
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines([
        "*_ ERROR at setup of stuck[[]s[]] _*",
        "*ERROR: the run deadline of 2s passed before this query answered: "
        "it had been running for 2s; pending for mem then: 1 running, 1 waiting for a slot*",
        "*_ ERROR at setup of after[[]s[]] _*",
        "*ERROR: the run deadline of 2s passed before this query answered: it had not started;*",
    ])
    assert elapsed < 2 + SLACK


def test_bad_deadline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MEMORY_CONFTEST)
    pytester.makefile(".slo.yaml", gate=memory_spec(objective("ok", "value 0.5")))
    result = pytester.runpytest("--slo-stage=s", "--slo-deadline=0s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*slo_deadline must be a duration longer than 0s*'0s'*"])


def test_deadline_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MEMORY_CONFTEST)
    pytester.makeini("[pytest]\nslo_deadline = 1s\n")
    pytester.makefile(".slo.yaml", gate=memory_spec(objective("stuck", "hang")))
    result = pytester.runpytest_subprocess("--slo-stage=s", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the run deadline of 1s passed*"])


def test_a_missing_env_variable_errors_every_item_of_its_backend(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLO_TEST_TOKEN", raising=False)
    pytester.makeconftest(MEMORY_CONFTEST)
    pytester.makefile(".slo.yaml", gate=memory_spec(
        objective("a", "value 0.5") + objective("b", "value 0.7")
        + objective("c", "value 0.2", "  backend: open\n"),
        backends="mem: {type: memory, token: '${env:SLO_TEST_TOKEN}'}\n  open: {type: memory}"))
    result = pytester.runpytest("--slo-stage=s")
    result.assert_outcomes(passed=1, errors=2)
    assert result.stdout.str().count("environment variable SLO_TEST_TOKEN is not set") >= 2


def test_a_bug_in_a_backend_errors_the_item_with_its_traceback(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MEMORY_CONFTEST)
    pytester.makefile(".slo.yaml", gate=memory_spec(objective("a", "bug")
                                                    + objective("b", "value 0.5")))
    result = pytester.runpytest("--slo-stage=s")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*KeyError: 'samples'*"])


def test_xdist_workers_agree_with_a_single_process(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MEMORY_CONFTEST)
    values = [0.5, 2.0, 0.9, 1.5] * 10
    objectives = "".join(objective(f"o{i}", f"value {v} o{i}") for i, v in enumerate(values))
    pytester.makefile(".slo.yaml",
                      gate=memory_spec(objectives + objective("twin", "value 0.5 o0")))
    log = pytester.path / "queries.log"

    def outcomes(*args: str) -> tuple[dict[str, str], list[list[str]]]:
        log.unlink(missing_ok=True)
        result = pytester.runpytest_subprocess("--slo-stage=s", "-rA", "-p", "no:randomly",
                                               *args, timeout=120)
        found = {}
        for line in result.outlines:
            word, _, rest = line.partition(" ")
            if word in ("PASSED", "FAILED") and "::" in rest:
                found[rest.split(" ")[0].split("::")[-1]] = word
        return found, [line.split(" ", 2) for line in log.read_text().splitlines()]

    single, single_log = outcomes()
    spread, spread_log = outcomes("-n", "2")
    assert len(single) == 41
    assert spread == single
    assert len(single_log) == 40  # "twin" shares the answer of o0
    assert len({pid for pid, _, _ in spread_log}) == 2
    assert len({at for _, at, _ in spread_log}) == 1  # one evaluation time for the whole run
    # Each worker plans only its own items: only "twin" may run again, on the other worker.
    assert len(spread_log) <= len(single_log) + 1
