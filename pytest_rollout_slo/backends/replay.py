"""Recording every backend answer of a run, and replaying a run from that recording.

``--slo-record=PATH`` wraps every backend so that each answer (or error) is kept, and writes
them to one JSON file at the end of the run. ``--slo-replay=PATH`` replaces every backend type
by one that answers from that file, with no network and no environment variables: the same
specs give the same verdicts, so a failed gate can be examined, or attached to an issue,
after the fact. A query the recording does not hold is an error verdict, never a pass.
No pytest here.

The file: ``{"format": "pytest-rollout-slo/recording", "version": 1, "stage", "at",
"backends": {KEY: {"describe", "ranged"}}, "links": [[KEY, query, at, link]],
"answers": [{"backend": KEY, "kind": "instant" | "range", "query",
"time": [at] | [start, end, step], "params", "result" | "error"}]}`` where
KEY is ``<spec directory relative to the rootdir>::<backend name>``. Samples are
``[labels, value]`` with NaN and infinities as the strings ``"NaN"``, ``"+Inf"``, ``"-Inf"``.

A run sends one request for queries that differ only in what the backend does not send (see
``request_key`` in :mod:`.base`), so an answer is recorded once, with the parameters of the
query that asked first. The replay keys its queries by the same rule, by the language of the
backend type (PromQL: text and times; SQL: text and the parameters it names), and finds an
answer recorded for any query with the same key. Only at the recorded evaluation time: at
another, a query must match a recorded one in every part, so an SQL statement that names no
time is not answered from a recording of another moment.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pytest_rollout_slo.backends.base import (
    AnyQuery,
    Backend,
    BackendType,
    Query,
    QueryResult,
    RangeBackend,
    RangeQuery,
    RequestKey,
    Sample,
    Series,
    full_request_key,
    promql_request_key,
    request_key,
)
from pytest_rollout_slo.backends.redact import Redactor
from pytest_rollout_slo.backends.sqlanswer import sql_request_key
from pytest_rollout_slo.clock import time_left
from pytest_rollout_slo.errors import BackendError, SloError
from pytest_rollout_slo.files import write_text_atomic
from pytest_rollout_slo.quantity import json_number
from pytest_rollout_slo.spec.settings import Setting

FORMAT = "pytest-rollout-slo/recording"
VERSION = 1

_Keyer = Callable[[AnyQuery], RequestKey]
# What a replayed backend keys its queries by, from its type's language: the same rule as
# the recorded run's backend of that language.
_KEYERS: dict[str, _Keyer] = {"promql": promql_request_key, "sql": sql_request_key}


class RecordingError(SloError):
    """The recording file cannot be read or does not fit this run."""


def _float(value: float | str | None) -> float | None:
    if value is None:
        return None
    return float(value.replace("Inf", "inf")) if isinstance(value, str) else float(value)


def _late() -> bool:
    """The run deadline passed while the query ran: the executor will discard the answer.

    Such a query is left out of the recording, so its replay is an error, as the run was.
    """
    left = time_left()
    return left is not None and left <= 0


def _times(query: Query | RangeQuery) -> list[float]:
    return [query.at] if isinstance(query, Query) else [query.start, query.end, query.step]


def _identity(backend: str, query: Query | RangeQuery) -> str:
    return _entry_identity({"backend": backend, "query": query.text, "time": _times(query),
                            "params": dict(query.params)})


def _entry_query(entry: Mapping[str, Any]) -> AnyQuery:
    """The query a recorded answer was asked for."""
    times = [float(t) for t in entry["time"]]
    if entry.get("kind") == "range":
        return RangeQuery(str(entry["query"]), times[0], times[1], times[2],
                          dict(entry["params"]))
    return Query(str(entry["query"]), times[0], dict(entry["params"]))


def _entry_identity(entry: Mapping[str, Any]) -> str:
    """The one key of a recorded answer: backend, text, times and bound values."""
    return json.dumps([entry["backend"], entry["query"], entry["time"], entry["params"]],
                      sort_keys=True)


def _link_key(link: Sequence[Any]) -> str:
    """A graph link's key: backend, query text and time (the link itself is the value)."""
    return json.dumps(list(link[:3]))


class Recorder:
    """Collects answers from every recording backend of the run; thread safe."""

    def __init__(self, stage: str, at: float, rootdir: Path) -> None:
        self.stage = stage
        self.at = at
        self.rootdir = rootdir
        self.backends: dict[str, dict[str, Any]] = {}
        self.links: dict[str, list[Any]] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def key(self, name: str, spec_dir: Path) -> str:
        try:
            where = spec_dir.resolve().relative_to(self.rootdir.resolve()).as_posix()
        except ValueError:
            where = spec_dir.resolve().as_posix()
        return f"{where}::{name}"

    def wrap(self, backend_type: BackendType) -> BackendType:
        return _RecordingType(backend_type, self)

    def add(self, key: str, query: Query | RangeQuery, entry: dict[str, Any]) -> None:
        entry.update(backend=key, kind="instant" if isinstance(query, Query) else "range",
                     query=query.text, time=_times(query), params=dict(query.params))
        with self._lock:
            self.answers[_identity(key, query)] = entry

    def add_link(self, key: str, query: Query, link: str | None) -> None:
        with self._lock:
            entry = [key, query.text, query.at, link]
            self.links[_link_key(entry)] = entry

    def document(self, redact: Redactor | None = None) -> dict[str, Any]:
        """The recording; with ``redact``, every string in it (labels, errors, queries) has
        the run's secrets masked, so an attached recording leaks none."""
        with self._lock:
            answers = [self.answers[k] for k in sorted(self.answers)]
            links = [self.links[k] for k in sorted(self.links)]
            backends = dict(sorted(self.backends.items()))
        document = {"format": FORMAT, "version": VERSION, "stage": self.stage, "at": self.at,
                    "backends": backends, "links": links, "answers": answers}
        return redact.deep(document) if redact is not None and redact.active else document

    def write(self, path: Path, redact: Redactor | None = None) -> None:
        write_json_atomic(path, self.document(redact))


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One recording from the parts that xdist workers wrote."""
    merged: dict[str, Any] = {"format": FORMAT, "version": VERSION, "backends": {},
                              "links": [], "answers": []}
    seen: set[str] = set()
    links: dict[str, list[Any]] = {}
    for document in documents:
        merged["stage"], merged["at"] = document["stage"], document["at"]
        merged["backends"].update(document["backends"])
        links.update((_link_key(link), link) for link in document.get("links", []))
        for answer in document["answers"]:
            identity = _entry_identity(answer)
            if identity not in seen:
                seen.add(identity)
                merged["answers"].append(answer)
    merged["backends"] = dict(sorted(merged["backends"].items()))
    merged["links"] = [links[k] for k in sorted(links)]
    merged["answers"].sort(key=lambda a: (a["backend"], a["query"], a["time"]))
    return merged


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(document, indent=1, sort_keys=True) + "\n")


def _keep_query_check(wrapper: object, inner: BackendType) -> None:
    # A recorded or replayed run checks its queries at collection as the real one does: a
    # destructive query is a spec error whether or not a server would have run it.
    check = getattr(inner, "query_check", None)
    if check is not None:
        wrapper.query_check = check  # type: ignore[attr-defined]


class _RecordingType:
    def __init__(self, inner: BackendType, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.name = inner.name
        self.settings: Mapping[str, Setting] = inner.settings
        self.language = getattr(inner, "language", "")
        _keep_query_check(self, inner)

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        backend = self.inner.create(name, settings, spec_dir)
        key = self.recorder.key(name, spec_dir)
        ranged = isinstance(backend, RangeBackend)
        self.recorder.backends[key] = {"describe": backend.describe(), "ranged": ranged}
        if isinstance(backend, RangeBackend):
            return _RecordingRangeBackend(backend, key, self.recorder)
        return _RecordingBackend(backend, key, self.recorder)


_Q = TypeVar("_Q", Query, RangeQuery)
_A = TypeVar("_A")


class _RecordingBackend:
    def __init__(self, inner: Backend, key: str, recorder: Recorder) -> None:
        self.inner = inner
        self.key = key
        self.recorder = recorder
        self.name = inner.name
        self.type_name = inner.type_name
        self.max_concurrency = getattr(inner, "max_concurrency", 8)
        self.secrets: tuple[str, ...] = tuple(getattr(inner, "secrets", ()))

    def describe(self) -> str:
        return self.inner.describe()

    def request_key(self, query: AnyQuery) -> RequestKey:
        return request_key(self.inner, query)

    def graph_url(self, query: Query) -> str | None:
        link = self.inner.graph_url(query)
        self.recorder.add_link(self.key, query, link)
        return link

    def close(self) -> None:
        self.inner.close()

    def query(self, query: Query) -> QueryResult:
        return self._record(query, self.inner.query, lambda result: {
            "samples": [[dict(s.labels), json_number(s.value)] for s in result.samples],
            "warnings": list(result.warnings)})

    def _record(self, query: _Q, ask: Callable[[_Q], _A],
                encode: Callable[[_A], dict[str, Any]]) -> _A:
        """Ask the backend, and keep its answer or its error for the replay."""
        try:
            answer = ask(query)
        except BackendError as exc:
            self.recorder.add(self.key, query, {"error": exc.message})
            raise
        if not _late():  # else the run used the deadline's error; replay must not see a value
            self.recorder.add(self.key, query, {"result": encode(answer)})
        return answer


class _RecordingRangeBackend(_RecordingBackend):
    inner: RangeBackend

    def query_range(self, query: RangeQuery) -> tuple[Series, ...]:
        return self._record(query, self.inner.query_range, lambda series: {"series": [
            [dict(s.labels), [[t, json_number(v)] for t, v in s.points]] for s in series]})


class Recording:
    """A recording read back for replay."""

    def __init__(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecordingError(f"cannot read the recording {path}: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise RecordingError(f"{path} is not a pytest-rollout-slo recording")
        if document.get("version") != VERSION:
            raise RecordingError(f"{path} is a recording of version {document.get('version')}; "
                                 f"this plugin reads version {VERSION}")
        self.path = path
        try:
            self.stage = str(document["stage"])
            self.at = float(document["at"])
            self.backends: dict[str, dict[str, Any]] = {
                str(k): dict(v) for k, v in document["backends"].items()}
            self.links = {_link_key(link): link[3] for link in document["links"]}
            self.answers = {_entry_identity(a): a for a in document["answers"]}
            entries = [(str(a["backend"]), _entry_query(a), a) for a in document["answers"]]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise RecordingError(f"{path} is an incomplete or damaged recording "
                                 f"({type(exc).__name__}: {exc})") from exc
        self._entries = entries
        self._by_request: dict[_Keyer, dict[tuple[str, RequestKey], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def find(self, key: str, query: Query | RangeQuery,
             keyer: _Keyer = full_request_key) -> dict[str, Any]:
        """The answer recorded for ``query``, or for a query that ``keyer`` calls the same
        request (the run sent it once, for whichever query asked first)."""
        found: dict[str, Any] | None = self.answers.get(_identity(key, query))
        if found is None:
            found = self._requests(keyer).get((key, keyer(query)))
        if found is None:
            raise BackendError(f"the recording {self.path.name} holds no answer to this query at "
                               "this time; replay only what was recorded (same specs, stage and "
                               "--slo-at)", query=query.text)
        return found

    def _requests(self, keyer: _Keyer) -> dict[tuple[str, RequestKey], dict[str, Any]]:
        with self._lock:  # built once per rule, by whichever backend thread asks first
            index = self._by_request.get(keyer)
            if index is None:
                index = self._by_request[keyer] = {}
                for backend, query, entry in self._entries:
                    index.setdefault((backend, keyer(query)), entry)
            return index

    def wrap(self, backend_type: BackendType, rootdir: Path, at: float) -> BackendType:
        """``backend_type`` with its settings checked as usual, but answering from here, for a
        run evaluated at ``at``."""
        return _ReplayType(backend_type, self, rootdir, at)


class ReplayEnviron(Mapping[str, str]):
    """Environment for replay: backends read nothing, so a missing variable is no error."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key, "")

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


class _ReplayType:
    def __init__(self, inner: BackendType, recording: Recording, rootdir: Path,
                 at: float) -> None:
        self.name = inner.name
        self.settings: Mapping[str, Setting] = inner.settings
        self.language = getattr(inner, "language", "")
        _keep_query_check(self, inner)
        self.recording = recording
        self.rootdir = rootdir
        self.at = at

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        key = Recorder("", 0.0, self.rootdir).key(name, spec_dir)
        # Answer range queries only where the recorded backend did, so the measurement asks
        # the same queries it asked when recording.
        ranged = bool(self.recording.backends.get(key, {}).get("ranged"))
        kind = _ReplayRangeBackend if ranged else _ReplayBackend
        replayed = kind(name, self.name, key, self.recording)
        if self.at == self.recording.at:
            replayed.keyer = _KEYERS.get(self.language, full_request_key)
        return replayed


class _ReplayBackend:
    max_concurrency = 8
    keyer: _Keyer = staticmethod(full_request_key)

    def __init__(self, name: str, type_name: str, key: str, recording: Recording) -> None:
        self.name = name
        self.type_name = type_name
        self.key = key
        self.recording = recording

    def describe(self) -> str:
        described = self.recording.backends.get(self.key, {}).get("describe", self.type_name)
        return f"{described}, replayed from {self.recording.path.name}"

    def graph_url(self, query: Query) -> str | None:
        link = self.recording.links.get(_link_key([self.key, query.text, query.at]))
        return str(link) if link else None

    def close(self) -> None:
        return None

    def request_key(self, query: AnyQuery) -> RequestKey:
        return self.keyer(query)

    def query(self, query: Query) -> QueryResult:
        entry = self._entry(query)
        result = entry["result"]
        return QueryResult(tuple(Sample(tuple(sorted(labels.items())), _float(value))
                                 for labels, value in result["samples"]),
                           tuple(result.get("warnings", ())))

    def _entry(self, query: Query | RangeQuery) -> dict[str, Any]:
        entry = self.recording.find(self.key, query, self.keyer)
        if "error" in entry:
            raise BackendError(str(entry["error"]), backend=self.name, query=query.text)
        return entry


class _ReplayRangeBackend(_ReplayBackend):
    def query_range(self, query: RangeQuery) -> tuple[Series, ...]:
        result = self._entry(query)["result"]
        series = []
        for labels, points in result["series"]:
            values = tuple((float(t), _float(v)) for t, v in points)
            series.append(Series(tuple(sorted(labels.items())), values))
        return tuple(series)
