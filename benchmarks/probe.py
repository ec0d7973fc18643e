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

With ``BENCH_MEMORY=1`` tracemalloc runs and each region records the memory it left
allocated (``retained``) and how far above its start it peaked (``overshoot``); timings are
then not meaningful, so time and memory come from separate sessions.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from pytest_rollout_slo.collect import STATE


@dataclass
class Tally:
    seconds: float = 0.0
    retained: int = 0
    overshoot: int = 0
    regions: int = 0


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
        if memory:
            tracemalloc.start()

    @contextmanager
    def region(self, phase: str, kind: str, start: float | None = None,
               memory_start: int | None = None) -> Iterator[None]:
        tally = self.tallies[phase].setdefault(kind, Tally())
        if self.memory and memory_start is None:
            tracemalloc.reset_peak()
            memory_start = tracemalloc.get_traced_memory()[0]
        began = time.perf_counter() if start is None else start
        try:
            yield
        finally:
            tally.seconds += time.perf_counter() - began
            tally.regions += 1
            if self.memory and memory_start is not None:
                current, peak = tracemalloc.get_traced_memory()
                tally.retained += current - memory_start
                tally.overshoot = max(tally.overshoot, peak - current)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> Generator[None, object, object]:
        with self.region("collect", "all"):
            result = yield
        files = self.tallies["collect"]
        whole = files.pop("all")
        files["shared"] = Tally(whole.seconds - sum(t.seconds for t in files.values()),
                                whole.retained - sum(t.retained for t in files.values()),
                                0, 1)
        return result

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, object, object]:
        with self.region("finish", "slo"):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
            self, collector: pytest.Collector) -> Generator[None, pytest.CollectReport,
                                                            pytest.CollectReport]:
        if not isinstance(collector, pytest.File):
            return (yield)
        with self.region("collect", _kind(collector)):
            return (yield)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.items[_kind(item)] = self.items.get(_kind(item), 0) + 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        start = time.perf_counter()
        self._loop_start = start
        if self.memory:
            tracemalloc.reset_peak()
            self._loop_memory = tracemalloc.get_traced_memory()[0]
        try:
            return (yield)
        finally:
            self.loop_seconds = time.perf_counter() - start

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        if self._loop_start is not None:
            # From the start of the run loop to here the plugin planned and queued every
            # query: a cost of the objectives, so it is counted as one more slo region.
            with self.region("run", "slo", start=self._loop_start,
                             memory_start=self._loop_memory if self.memory else None):
                pass
            self._loop_start = None
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
            "tallies": {phase: {kind: asdict(t) for kind, t in kinds.items()}
                        for phase, kinds in self.tallies.items()},
        }), encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Probe(os.environ.get("BENCH_MEMORY") == "1"), "bench-probe")
