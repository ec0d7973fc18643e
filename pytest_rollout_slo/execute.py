"""Running queries: one backend object per spec backend, and each distinct query run once.

Items ask the :class:`Executor` for answers. Before the first item runs, the plugin hands it
every query of the selected items, so identical queries are shared and all of them run on a
bounded thread pool (at most ``max_concurrency`` at once per backend) while pytest walks the
items in order. Backends are created when first needed, never at collection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout_slo.backends import Backend, BackendType, Query, QueryResult, resolve_env
from pytest_rollout_slo.errors import BackendError
from pytest_rollout_slo.spec import BackendSpec


@dataclass(frozen=True)
class BackendKey:
    """A backend is defined by a spec file; two files never share one by accident."""

    spec_path: Path
    name: str


class Executor:
    def __init__(self, backend_types: Mapping[str, BackendType], concurrency: int,
                 environ: Mapping[str, str] | None = None) -> None:
        self._types = backend_types
        self._environ = os.environ if environ is None else environ
        self._concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._backends: dict[BackendKey, Backend | BackendError] = {}
        self._limits: dict[BackendKey, threading.Semaphore] = {}
        self._futures: dict[tuple[BackendKey, str, float, tuple[tuple[str, object], ...]],
                            Future[QueryResult]] = {}
        self._lock = threading.Lock()

    def backend(self, key: BackendKey, spec: BackendSpec) -> Backend:
        """The backend for ``key``, created once; a creation error is raised on every use."""
        with self._lock:
            found = self._backends.get(key)
            if found is None:
                found = self._create(key, spec)
                self._backends[key] = found
        if isinstance(found, BackendError):
            raise found
        return found

    def _create(self, key: BackendKey, spec: BackendSpec) -> Backend | BackendError:
        try:
            settings = resolve_env(spec.settings, spec.name, self._environ)
            backend = self._types[spec.type].create(spec.name, settings, key.spec_path.parent)
        except BackendError as exc:
            exc.backend = exc.backend or spec.name
            return exc
        limit = getattr(backend, "max_concurrency", self._concurrency)
        self._limits[key] = threading.Semaphore(max(1, min(int(limit), self._concurrency)))
        return backend

    def submit(self, key: BackendKey, spec: BackendSpec, query: Query) -> Future[QueryResult]:
        """Start ``query`` unless the same query on the same backend already started."""
        identity = (key, query.text, query.at, tuple(sorted(query.params.items())))
        with self._lock:
            future = self._futures.get(identity)
            if future is not None:
                return future
            future = Future()
            self._futures[identity] = future
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._concurrency,
                                                thread_name_prefix="slo-query")
            pool = self._pool
        pool.submit(self._run, future, key, spec, query)
        return future

    def _run(self, future: Future[QueryResult], key: BackendKey, spec: BackendSpec,
             query: Query) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            backend = self.backend(key, spec)
            with self._limits[key]:
                result = backend.query(query)
        except BaseException as exc:  # handed to the item that reads the answer
            future.set_exception(exc)
        else:
            future.set_result(result)

    def prefetch(self, plans: Iterable[tuple[BackendKey, BackendSpec, Query]]) -> None:
        for key, spec, query in plans:
            self.submit(key, spec, query)

    def result(self, key: BackendKey, spec: BackendSpec, query: Query) -> QueryResult:
        return self.submit(key, spec, query).result()

    def close(self, on_error: Callable[[str], None] | None = None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for backend in self._backends.values():
            if isinstance(backend, BackendError):
                continue
            try:
                backend.close()
            except Exception as exc:  # closing must never hide the verdicts
                if on_error is not None:
                    on_error(f"closing backend {backend.name}: {exc}")
