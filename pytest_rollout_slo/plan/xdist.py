"""Which items a pytest-xdist worker plans, and reading the queue xdist keeps for it.

A worker collects every item but runs only those the controller sends it; planning the
queries of all of them would run queries for items other workers run. No pytest here: the
session hooks hand in the items and xdist's plugin objects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")


class WorkerPlan(Generic[_T]):
    """Which items a pytest-xdist worker plans when one is about to run: its own, each once.

    A worker collects every item but runs only those the controller sends it. It plans the
    item about to run, the next one (pytest's public ``nextitem``) and every item already
    queued for it, read through ``queued`` (see :func:`xdist_queue`); without that, two
    items, so a worker never runs a query for an item another worker will run.
    """

    def __init__(self, items: Sequence[_T],
                 queued: Callable[[], Iterable[int]] | None = None) -> None:
        self._items = items
        self._queued = queued
        self._index = {id(item): i for i, item in enumerate(items)}
        self._planned: set[int] = set()

    def window(self, item: _T, nextitem: _T | None = None) -> list[_T]:
        indices = [self._index.get(id(item)), self._index.get(id(nextitem))]
        if self._queued is not None:
            indices.extend(self._queued())
        fresh: list[int] = []
        for index in indices:
            if index is not None and index not in self._planned and index < len(self._items):
                self._planned.add(index)
                fresh.append(index)
        return [self._items[i] for i in fresh]


def xdist_queue(plugins: Iterable[object]) -> Callable[[], list[int]] | None:
    """How to read the indices of the items queued on this pytest-xdist worker, if we can.

    xdist has no public API for it. Its worker plugin keeps them in ``torun``: a TestQueue
    read under ``lock()`` (xdist 3.6 and later) or a ``queue.Queue`` (earlier). Both are
    only read, under their own lock; if neither is found the worker plans two items at a
    time, which costs concurrency but never a verdict.
    """
    for plugin in plugins:
        torun = getattr(plugin, "torun", None)
        lock = getattr(torun, "lock", None)
        if callable(lock):
            return functools.partial(_read_test_queue, lock)
        if getattr(torun, "mutex", None) is not None and hasattr(torun, "queue"):
            return functools.partial(_read_queue, torun)
    return None


def _read_test_queue(lock: Callable[[], Any]) -> list[int]:
    with lock() as queued:
        return [i for i in queued if type(i) is int]


def _read_queue(torun: Any) -> list[int]:
    with torun.mutex:
        return [i for i in torun.queue if type(i) is int]


__all__ = ["WorkerPlan", "xdist_queue"]
