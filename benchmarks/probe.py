"""A pytest plugin for the benchmarks: time (or trace memory of) each kind of item, per phase.

Loaded with ``-p probe`` (the benchmarks directory on ``PYTHONPATH``); writes JSON to the file
named by ``BENCH_PROBE_OUT``. Items from ``.yaml`` files are kind ``slo``, the rest ``plain``.

- ``collect``: the collection of each file (``pytest_make_collect_report`` of a File);
  the rest of the collection phase (finding files, ``pytest_itemcollected``, modifying and
  listing items) is the same work for every item and is recorded as kind ``shared``;
- ``run``: each item's whole ``pytest_runtest_protocol`` (setup, call, teardown, reports),
  plus, for ``slo``, the planning between the start of the run loop and the first item;
- ``finish``: the session's end (terminal summary, the SLO summary table, the JUnit file),
  recorded as kind ``slo``, the only kind with its own summary.

Pauses of the cyclic garbage collector are not part of any region: a collection walks every
object of the process and falls in whichever region happened to allocate the object that
crossed a threshold, so where it falls says nothing about who caused it. They are summed per
phase (``gc``) with the GC-tracked objects each kind's regions left alive (``objects``, read
between regions, outside their timing), and the benchmark shares them out in proportion to
those objects: the heap a collection walks.

With ``BENCH_MEMORY=1`` tracemalloc runs and each region records the memory it left
allocated (``retained``) and how far above its start it peaked (``overshoot``); timings are
then not meaningful, so time and memory come from separate sessions.
"""

from __future__ import annotations

import gc
import json
import os
import time
import tracemalloc
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from pytest_rollout_slo.items import STATE


@dataclass
class Tally:
    seconds: float = 0.0
    retained: int = 0
    overshoot: int = 0
    regions: int = 0
    objects: int = 0
    """GC-tracked objects the kind's regions left alive (collect and run phases)."""
    paused: float = 0.0
    """Collector pauses that fell inside the regions (not part of ``seconds``)."""


def _kind(node: pytest.Item | pytest.Collector) -> str:
    return "slo" if node.path.suffix in (".yaml", ".yml") else "plain"


class Probe:
    def __init__(self, memory: bool) -> None:
        self.memory = memory
        self.tallies: dict[str, dict[str, Tally]] = {"collect": {}, "run": {}, "finish": {}}
        self.items: dict[str, int] = {}
        self.loop_seconds = 0.0
        self.outcomes: dict[str, int] = {}
        self.queries = 0
        self._loop_start: float | None = None
        self._loop_memory = 0
        self._gc_at_loop_start = 0.0
        # Seconds of collector pauses so far, and per phase; the phase now running, if any.
        self.gc_seconds: dict[str, float] = {"collect": 0.0, "run": 0.0, "finish": 0.0}
        self._gc_total = 0.0
        self._gc_began = 0.0
        self._phase: str | None = None
        # Seconds this probe spent counting objects inside a region (taken out of it).
        self._counting = 0.0
        # The run phase: the kind whose items are running and the object count at its start.
        self._span: tuple[str, int] | None = None
        gc.callbacks.append(self._gc_pause)
        if memory:
            tracemalloc.start()

    def _gc_pause(self, event: str, info: dict[str, int]) -> None:
        if event == "start":
            self._gc_began = time.perf_counter()
            return
        paused = time.perf_counter() - self._gc_began
        self._gc_total += paused
        if self._phase is not None:
            self.gc_seconds[self._phase] += paused

    @contextmanager
    def region(self, phase: str, kind: str, start: float | None = None,
               memory_start: int | None = None) -> Iterator[None]:
        tally = self.tallies[phase].setdefault(kind, Tally())
        if self.memory and memory_start is None:
            tracemalloc.reset_peak()
            memory_start = tracemalloc.get_traced_memory()[0]
        began = time.perf_counter() if start is None else start
        # A region that began before now (the planning one) may contain pauses already seen.
        paused = self._gc_total if start is None else self._gc_at_loop_start
        counting = self._counting
        try:
            yield
        finally:
            tally.seconds += (time.perf_counter() - began - (self._gc_total - paused)
                              - (self._counting - counting))
            tally.paused += self._gc_total - paused
            tally.regions += 1
            if self.memory and memory_start is not None:
                current, peak = tracemalloc.get_traced_memory()
                tally.retained += current - memory_start
                tally.overshoot = max(tally.overshoot, peak - current)

    def _objects(self) -> int:
        """GC-tracked objects alive now; the time it takes is not part of any region."""
        began = time.perf_counter()
        count = len(gc.get_objects())
        self._counting += time.perf_counter() - began
        return count

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> Generator[None, object, object]:
        objects = self._objects()
        self._phase = "collect"
        with self.region("collect", "all"):
            result = yield
        self._phase = None
        files = self.tallies["collect"]
        whole = files.pop("all")
        files["shared"] = Tally(whole.seconds - sum(t.seconds for t in files.values()),
                                whole.retained - sum(t.retained for t in files.values()),
                                0, 1, self._objects() - objects
                                - sum(t.objects for t in files.values()),
                                whole.paused - sum(t.paused for t in files.values()))
        return result

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, object, object]:
        self._end_span()
        self._phase = "finish"
        try:
            with self.region("finish", "slo"):
                return (yield)
        finally:
            self._phase = None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
            self, collector: pytest.Collector) -> Generator[None, pytest.CollectReport,
                                                            pytest.CollectReport]:
        if not isinstance(collector, pytest.File):
            return (yield)
        objects = self._objects()
        try:
            with self.region("collect", _kind(collector)):
                return (yield)
        finally:
            self.tallies["collect"][_kind(collector)].objects += self._objects() - objects

    def _end_span(self, kind: str | None = None) -> None:
        """Count the objects the items of the running kind left; start counting ``kind``."""
        objects = self._objects()
        if self._span is not None:
            running, start = self._span
            self.tallies["run"].setdefault(running, Tally()).objects += objects - start
        self._span = None if kind is None else (kind, objects)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.items[_kind(item)] = self.items.get(_kind(item), 0) + 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        # Planning happens before the first item and is the objectives' work.
        self._end_span("slo")
        start = time.perf_counter()
        self._loop_start = start
        self._gc_at_loop_start = self._gc_total
        self._phase = "run"
        if self.memory:
            tracemalloc.reset_peak()
            self._loop_memory = tracemalloc.get_traced_memory()[0]
        try:
            return (yield)
        finally:
            self.loop_seconds = time.perf_counter() - start
            self._phase = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        if self._loop_start is not None:
            # From the start of the run loop to here the plugin planned and queued every
            # query: a cost of the objectives, so it is counted as one more slo region.
            with self.region("run", "slo", start=self._loop_start,
                             memory_start=self._loop_memory if self.memory else None):
                pass
            self._loop_start = None
        if self._span is not None and self._span[0] != _kind(item):
            self._end_span(_kind(item))
        with self.region("run", _kind(item)):
            return (yield)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.outcomes[report.outcome] = self.outcomes.get(report.outcome, 0) + 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        state = config.stash.get(STATE, None)
        if state is not None:
            self.queries = state.executor.planned
        out = os.environ.get("BENCH_PROBE_OUT")
        if not out:
            return
        Path(out).write_text(json.dumps({
            "items": self.items,
            "outcomes": self.outcomes,
            "queries": self.queries,
            "loop_seconds": self.loop_seconds,
            "gc_seconds": self.gc_seconds,
            "tallies": {phase: {kind: asdict(t) for kind, t in kinds.items()}
                        for phase, kinds in self.tallies.items()},
        }), encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Probe(os.environ.get("BENCH_MEMORY") == "1"), "bench-probe")
