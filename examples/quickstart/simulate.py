"""The quickstart's data: seeded Conflict Resolver traffic, stored as events and as metrics.

This module owns two things and nothing else:

* ``simulate`` draws three days of traffic ending at ``AT`` for the three rollout stages
  (``internal``, ``beta``, ``ga``) from ``random.Random(seed)``, so a seed is a dataset. That
  traffic is the new agent version's, cohort ``canary``; where the feature flag does not yet
  cover the whole stage, the previous version keeps serving part of it, cohort ``control``,
  drawn afterwards from a second generator (``_control_rng``) so the canary events of a seed
  never change when the control's profile does;
* ``write_sqlite`` / ``ensure_database`` and ``write_openmetrics`` store that traffic as the
  event tables the quickstart spec queries and as the Prometheus counters and histograms the
  production spec queries; ``write_sql`` stores the same tables in any engine SQLAlchemy
  reaches (PostgreSQL, DuckDB), for the ``type: sql`` backend.

``expected.py`` recomputes every objective from the raw events, independently of SQL and
PromQL, so tests can hold the plugin's answers against them; ``main`` prints those values.

Stdlib only, but ``write_sql`` (``--to URL``), which needs SQLAlchemy and the engine's driver;
run ``python simulate.py --help`` for the command line.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import math
import os
import random
import sqlite3
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO, TypeVar

SIMULATOR_VERSION = "2"
"""Bump whenever the same seed would produce different events; stale databases rebuild."""

DEFAULT_SEED = 20261120
AT = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
AT_UNIX = AT.timestamp()
PERIOD_SECONDS = 3 * 86400
START_UNIX = AT_UNIX - PERIOD_SECONDS
FEATURE = "conflict_resolver"

Stage = Literal["internal", "beta", "ga"]
STAGES: tuple[Stage, ...] = ("internal", "beta", "ga")
Cohort = Literal["canary", "control"]
COHORTS: tuple[Cohort, ...] = ("canary", "control")
"""``canary``: the new agent version in the stage; ``control``: the previous version serving
the same stage (only agent requests are simulated for it)."""
STAGE_WINDOWS: dict[str, float] = {"internal": 86400.0, "beta": 2 * 86400.0, "ga": 86400.0}
"""The ``window`` variable of each stage in rollout.slo.yaml, in seconds (24h, 2d, 24h)."""

ERROR_TYPES = ("model_timeout", "tool_failure", "context_too_large", "rate_limited")
TOOLS = ("list_conflicts", "read_file", "propose_resolution", "apply_resolution")
TOOL_CALL_BUCKETS = (0.5, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
RESPONSE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0, 120.0)
TOOL_TIMEOUT_S = 60.0


class Timed(Protocol):
    """Any simulated event: it happened at ``ts`` during ``stage``."""

    @property
    def ts(self) -> float: ...
    @property
    def stage(self) -> str: ...


_T = TypeVar("_T", bound=Timed)


@dataclass(frozen=True)
class StageProfile:
    """How one cohort behaves: volume, funnel and quality of the agent it sees."""

    users: int
    views_per_day: int
    adopter_share: float
    click_probability: float
    error_probability: float
    abandon_probability: float
    tool_failure_probability: float
    tool_median_s: float
    tool_sigma: float
    model_median_s: float
    model_sigma: float
    rating_probability: float
    thumbs_up_if_mergeable: float
    thumbs_up_otherwise: float
    mergeable_probability: float


# Internal users adopt eagerly but meet the slowest, buggiest agent; GA is the best agent
# but, with every visitor counted, too few of them click: adoption ~12% misses the 15% floor.
PROFILES: dict[str, StageProfile] = {
    "internal": StageProfile(
        users=160, views_per_day=700, adopter_share=0.45, click_probability=0.6,
        error_probability=0.030, abandon_probability=0.06, tool_failure_probability=0.12,
        tool_median_s=2.0, tool_sigma=0.75, model_median_s=5.0, model_sigma=0.45,
        rating_probability=0.8, thumbs_up_if_mergeable=0.82, thumbs_up_otherwise=0.55,
        mergeable_probability=0.58,
    ),
    "beta": StageProfile(
        users=1500, views_per_day=1400, adopter_share=0.30, click_probability=0.6,
        error_probability=0.020, abandon_probability=0.05, tool_failure_probability=0.09,
        tool_median_s=1.6, tool_sigma=0.75, model_median_s=4.5, model_sigma=0.45,
        rating_probability=0.7, thumbs_up_if_mergeable=0.86, thumbs_up_otherwise=0.60,
        mergeable_probability=0.62,
    ),
    "ga": StageProfile(
        users=5000, views_per_day=3000, adopter_share=0.165, click_probability=0.6,
        error_probability=0.012, abandon_probability=0.04, tool_failure_probability=0.05,
        tool_median_s=1.1, tool_sigma=0.7, model_median_s=4.0, model_sigma=0.4,
        rating_probability=0.7, thumbs_up_if_mergeable=0.92, thumbs_up_otherwise=0.70,
        mergeable_probability=0.66,
    ),
}


@dataclass(frozen=True)
class ControlProfile:
    """The previous agent version where it still serves part of a stage: requests only."""

    requests_per_day: int
    error_probability: float


# The internal build is newer, and buggier, than the version the rest of the internal
# stage still runs: there the canary's error rate is about 60 % above the control's. In beta
# the canary fixes errors of the previous version (about 17 % below the control). GA turns
# the flag on for everyone, so no control remains there.
CONTROL_PROFILES: dict[str, ControlProfile] = {
    "internal": ControlProfile(requests_per_day=400, error_probability=0.020),
    "beta": ControlProfile(requests_per_day=1500, error_probability=0.025),
}


# -- events -------------------------------------------------------------------------------
# Field order is column order in the SQLite tables.


@dataclass(frozen=True, slots=True)
class PageView:
    """A conflict page was shown with the "Resolve with AI" button (a button impression)."""

    ts: float
    stage: str
    user_id: int
    merge_request_id: int


@dataclass(frozen=True, slots=True)
class ButtonClick:
    ts: float
    stage: str
    user_id: int
    merge_request_id: int


@dataclass(frozen=True, slots=True)
class ChatSession:
    """``ts`` is when it was initiated; ``ended_ts`` is set only for completed sessions."""

    ts: float
    stage: str
    session_id: int
    user_id: int
    merge_request_id: int
    turns: int
    completed: bool
    ended_ts: float | None


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """``session_id`` is None for the ``control`` cohort, whose sessions are not simulated."""

    ts: float
    stage: str
    cohort: Cohort
    request_id: int
    session_id: int | None
    outcome: Literal["ok", "error"]
    error_type: str | None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """``ts`` is when the call finished, the moment its duration is known."""

    ts: float
    stage: str
    request_id: int
    tool: str
    success: bool
    duration_s: float


@dataclass(frozen=True, slots=True)
class AgentResponse:
    """The agent's answer to an ``ok`` request; ``ts`` is when it was delivered."""

    ts: float
    stage: str
    request_id: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class Rating:
    ts: float
    stage: str
    session_id: int
    user_id: int
    thumbs: Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """One per completed session, at its end: did the merge request become mergeable?"""

    ts: float
    stage: str
    session_id: int
    merge_request_id: int
    mergeable: bool


@dataclass(frozen=True)
class Events:
    """Everything one seed produced, each table sorted by ``ts``."""

    seed: int
    page_views: tuple[PageView, ...]
    button_clicks: tuple[ButtonClick, ...]
    chat_sessions: tuple[ChatSession, ...]
    agent_requests: tuple[AgentRequest, ...]
    tool_calls: tuple[ToolCall, ...]
    agent_responses: tuple[AgentResponse, ...]
    ratings: tuple[Rating, ...]
    resolutions: tuple[Resolution, ...]


# -- simulation ---------------------------------------------------------------------------


class _Builder:
    """Accumulates events; ids are global so tables can be joined across stages."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.views: list[PageView] = []
        self.clicks: list[ButtonClick] = []
        self.sessions: list[ChatSession] = []
        self.requests: list[AgentRequest] = []
        self.tool_calls: list[ToolCall] = []
        self.responses: list[AgentResponse] = []
        self.ratings: list[Rating] = []
        self.resolutions: list[Resolution] = []
        self.next_session = 1
        self.next_request = 1

    def stage(self, stage: str, index: int, profile: StageProfile) -> None:
        rng = self.rng
        user_base = (index + 1) * 1_000_000  # cohorts never share a user
        adopters = [rng.random() < profile.adopter_share for _ in range(profile.users)]
        count = profile.views_per_day * PERIOD_SECONDS // 86400
        for ts in sorted(_ms(rng.uniform(START_UNIX, AT_UNIX)) for _ in range(count)):
            user = rng.randrange(profile.users)
            merge_request = rng.randrange(1, 400_000)
            self.views.append(PageView(ts, stage, user_base + user, merge_request))
            if adopters[user] and rng.random() < profile.click_probability:
                click_ts = _ms(ts + rng.uniform(3.0, 40.0))
                self.clicks.append(ButtonClick(click_ts, stage, user_base + user, merge_request))
                self.session(stage, profile, user_base + user, merge_request, click_ts)

    def session(self, stage: str, p: StageProfile, user: int, merge_request: int,
                click_ts: float) -> None:
        rng = self.rng
        session_id, self.next_session = self.next_session, self.next_session + 1
        started = _ms(click_ts + rng.uniform(1.0, 4.0))
        planned = rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 8))
        t, turns, completed = started, 0, True
        for turn in range(planned):
            turns += 1
            t = self.turn(stage, p, session_id, t)
            if t < 0:  # the user gave up after an error
                t, completed = -t, False
                break
            if turn < planned - 1:
                if rng.random() < p.abandon_probability:
                    completed = False
                    break
                t += rng.uniform(10.0, 90.0)  # the user reads the answer and replies
        ended = _ms(t + rng.uniform(1.0, 5.0))
        # A session still running at AT is not completed yet: nothing after AT exists.
        completed = completed and ended < AT_UNIX
        self.sessions.append(ChatSession(started, stage, session_id, user, merge_request, turns,
                                         completed, ended if completed else None))
        if not completed:
            return
        mergeable = rng.random() < p.mergeable_probability
        self.resolutions.append(Resolution(ended, stage, session_id, merge_request, mergeable))
        if rng.random() < p.rating_probability:
            up = p.thumbs_up_if_mergeable if mergeable else p.thumbs_up_otherwise
            rated = _ms(ended + rng.uniform(2.0, 30.0))
            self.ratings.append(Rating(rated, stage, session_id, user,
                                       "up" if rng.random() < up else "down"))

    def turn(self, stage: str, p: StageProfile, session_id: int, t: float) -> float:
        """Add one request and what it caused; return when it ended (negated: user left)."""
        rng = self.rng
        request_id, self.next_request = self.next_request, self.next_request + 1
        if rng.random() < p.error_probability:
            error_type = rng.choices(ERROR_TYPES, weights=(4, 3, 2, 1))[0]
            self.requests.append(AgentRequest(t, stage, "canary", request_id, session_id,
                                              "error", error_type))
            ended = t + rng.uniform(2.0, 20.0)
            return -ended if rng.random() < 0.5 else ended
        self.requests.append(AgentRequest(t, stage, "canary", request_id, session_id, "ok",
                                          None))
        elapsed = 0.0
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            duration = _ms(min(rng.lognormvariate(_ln(p.tool_median_s), p.tool_sigma),
                               TOOL_TIMEOUT_S))
            elapsed += duration
            self.tool_calls.append(ToolCall(_ms(t + elapsed), stage, request_id,
                                            rng.choice(TOOLS),
                                            rng.random() >= p.tool_failure_probability,
                                            duration))
        duration = _ms(elapsed + rng.lognormvariate(_ln(p.model_median_s), p.model_sigma))
        self.responses.append(AgentResponse(_ms(t + duration), stage, request_id, duration))
        return _ms(t + duration)

    def control(self, stage: str, profile: ControlProfile, rng: random.Random) -> None:
        """The previous version's requests in ``stage``: uniform in time, errors by type."""
        count = profile.requests_per_day * PERIOD_SECONDS // 86400
        for ts in sorted(_ms(rng.uniform(START_UNIX, AT_UNIX)) for _ in range(count)):
            request_id, self.next_request = self.next_request, self.next_request + 1
            if rng.random() < profile.error_probability:
                error_type = rng.choices(ERROR_TYPES, weights=(4, 3, 2, 1))[0]
                self.requests.append(AgentRequest(ts, stage, "control", request_id, None,
                                                  "error", error_type))
            else:
                self.requests.append(AgentRequest(ts, stage, "control", request_id, None,
                                                  "ok", None))

    def events(self, seed: int) -> Events:
        def keep(rows: Iterable[_T]) -> tuple[_T, ...]:
            return tuple(sorted((r for r in rows if r.ts < AT_UNIX), key=_by_ts))

        return Events(seed, keep(self.views), keep(self.clicks), keep(self.sessions),
                      keep(self.requests), keep(self.tool_calls), keep(self.responses),
                      keep(self.ratings), keep(self.resolutions))


def simulate(seed: int = DEFAULT_SEED) -> Events:
    """Draw the three stages' traffic over the three days before ``AT``; same seed, same data."""
    builder = _Builder(random.Random(seed))
    for index, stage in enumerate(STAGES):
        builder.stage(stage, index, PROFILES[stage])
    control_rng = _control_rng(seed)
    for stage in STAGES:
        if stage in CONTROL_PROFILES:
            builder.control(stage, CONTROL_PROFILES[stage], control_rng)
    return builder.events(seed)


def _control_rng(seed: int) -> random.Random:
    # A string seed is hashed (SHA-512), so this stream is unrelated to any Random(int) one.
    return random.Random(f"{seed}:control")


# -- SQLite -------------------------------------------------------------------------------

_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    # table: (attribute of Events, column definitions in dataclass field order)
    "conflict_page_views": ("page_views", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "user_id INTEGER NOT NULL",
        "merge_request_id INTEGER NOT NULL")),
    "button_clicks": ("button_clicks", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "user_id INTEGER NOT NULL",
        "merge_request_id INTEGER NOT NULL")),
    "chat_sessions": ("chat_sessions", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "session_id INTEGER PRIMARY KEY",
        "user_id INTEGER NOT NULL", "merge_request_id INTEGER NOT NULL",
        "turns INTEGER NOT NULL", "completed INTEGER NOT NULL CHECK (completed IN (0, 1))",
        "ended_ts REAL")),
    "agent_requests": ("agent_requests", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL",
        "cohort TEXT NOT NULL CHECK (cohort IN ('canary', 'control'))",
        "request_id INTEGER PRIMARY KEY", "session_id INTEGER",
        "outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error'))", "error_type TEXT")),
    "tool_calls": ("tool_calls", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "request_id INTEGER NOT NULL",
        "tool TEXT NOT NULL", "success INTEGER NOT NULL CHECK (success IN (0, 1))",
        "duration_s REAL NOT NULL")),
    "agent_responses": ("agent_responses", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "request_id INTEGER NOT NULL",
        "duration_s REAL NOT NULL")),
    "ratings": ("ratings", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "session_id INTEGER NOT NULL",
        "user_id INTEGER NOT NULL", "thumbs TEXT NOT NULL CHECK (thumbs IN ('up', 'down'))")),
    "resolutions": ("resolutions", (
        "ts REAL NOT NULL", "stage TEXT NOT NULL", "session_id INTEGER NOT NULL",
        "merge_request_id INTEGER NOT NULL",
        "mergeable INTEGER NOT NULL CHECK (mergeable IN (0, 1))")),
}


def write_sqlite(events: Events, path: str | os.PathLike[str]) -> None:
    """Write the event tables (indexed on ``(stage, ts)``) and a ``meta`` table to ``path``.

    The database is built in a temporary file beside ``path`` and renamed over it, so a reader
    (or a parallel pytest-xdist worker) never sees a half-written file.
    """
    target = Path(path)
    with _atomic_path(target) as tmp:
        connection = sqlite3.connect(tmp)
        try:
            connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.executemany("INSERT INTO meta VALUES (?, ?)", _meta(events.seed).items())
            for table, (attribute, columns) in _TABLES.items():
                rows: tuple[object, ...] = getattr(events, attribute)
                names = [column.split()[0] for column in columns]
                connection.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
                connection.execute(f"CREATE INDEX {table}_stage_ts ON {table} (stage, ts)")
                getter = attrgetter(*names)
                marks = ", ".join("?" * len(names))
                connection.executemany(f"INSERT INTO {table} VALUES ({marks})",
                                       (getter(row) for row in rows))
            connection.commit()
        finally:
            connection.close()


def write_sql(events: Events, url: str) -> None:
    """(Re)create the event tables and ``meta`` in the database at SQLAlchemy ``url``.

    The same tables and columns as ``write_sqlite``, with ``REAL`` as ``DOUBLE PRECISION``
    (a 4-byte REAL would round a unix time to minutes), in one transaction.
    """
    import sqlalchemy  # an extra of the plugin, needed only here

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            for table in ("meta", *_TABLES):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            connection.exec_driver_sql(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.execute(sqlalchemy.text("INSERT INTO meta VALUES (:k, :v)"),
                               [{"k": k, "v": v} for k, v in _meta(events.seed).items()])
            for table, (attribute, columns) in _TABLES.items():
                rows: tuple[object, ...] = getattr(events, attribute)
                names = [column.split()[0] for column in columns]
                definitions = [column.replace(" REAL", " DOUBLE PRECISION") for column in columns]
                connection.exec_driver_sql(f"CREATE TABLE {table} ({', '.join(definitions)})")
                getter = attrgetter(*names)
                _bulk_insert(connection, table, names,
                             [tuple(map(_integer_flag, getter(row))) for row in rows])
                # After the rows, not before: DuckDB maintains an index row by row.
                connection.exec_driver_sql(
                    f"CREATE INDEX {table}_stage_ts ON {table} (stage, ts)")
    finally:
        engine.dispose()


def _bulk_insert(connection: Any, table: str, names: list[str],
                 rows: list[tuple[object, ...]]) -> None:
    """The rows by each engine's bulk path: 55,000 INSERTs take DuckDB about 20 s.

    PostgreSQL through psycopg: ``COPY ... FROM STDIN``; DuckDB: ``COPY`` from a CSV file
    (floats written by ``repr``, so they read back exactly; an empty field is NULL); any
    other engine: SQLAlchemy's batched multi-row INSERTs.
    """
    import sqlalchemy

    columns = ", ".join(names)
    raw = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif connection.dialect.name == "duckdb":
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{table}.csv"
            with path.open("w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out)
                writer.writerows(["" if v is None else repr(v) if isinstance(v, float) else v
                                  for v in row] for row in rows)
            connection.exec_driver_sql(
                f"COPY {table} ({columns}) FROM '{path}' (HEADER false, NULLSTR '')")
    elif rows:
        target = sqlalchemy.table(table, *(sqlalchemy.column(n) for n in names))
        connection.execute(sqlalchemy.insert(target),
                           [dict(zip(names, row, strict=True)) for row in rows])


def _integer_flag(value: object) -> object:
    # The flag columns are INTEGER 0/1 as in SQLite, whose driver stores True as 1; a
    # PostgreSQL driver sends a bool, which an integer column refuses.
    return int(value) if isinstance(value, bool) else value


def ensure_database(path: str | os.PathLike[str], *, seed: int = DEFAULT_SEED) -> Path:
    """Return ``path``, building it first if it is missing or another simulator/seed made it."""
    target = Path(path)
    if _stored_meta(target) != _meta(seed):
        write_sqlite(simulate(seed), target)
    return target


def _meta(seed: int) -> dict[str, str]:
    return {"simulator_version": SIMULATOR_VERSION, "seed": str(seed),
            "at": AT.isoformat().replace("+00:00", "Z")}


def _stored_meta(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return dict(connection.execute("SELECT key, value FROM meta").fetchall())
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return None  # not ours, or damaged: rebuild it


# -- OpenMetrics --------------------------------------------------------------------------


def write_openmetrics(events: Events, path: str | os.PathLike[str], *, step: int = 60) -> None:
    """Write the traffic as cumulative counters and histograms sampled every ``step`` seconds.

    The output is OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``: a
    timestamp (seconds) on every sample, each series' samples together and in time order,
    ``# EOF`` at the end. Samples run from ``START_UNIX`` to ``AT`` inclusive and every series
    starts at 0, so with ``step`` dividing 3600, ``increase(x[24h])`` at ``AT`` has samples
    exactly at both ends of the range, needs no extrapolation (Prometheus 2.x closed ranges),
    and equals the event count of ``[AT - 24h, AT)``.

    Every series carries ``feature``, ``stage`` and ``cohort``. Agent requests and errors have
    a ``control`` series wherever the previous version still served the stage; tool calls and
    durations are simulated for the new version only, so their series are all ``canary``.
    """
    if step <= 0:
        raise ValueError(f"step must be a positive number of seconds, got {step}")
    grid = list(range(int(START_UNIX), int(AT_UNIX) + 1, step))
    if grid[-1] != int(AT_UNIX):
        grid.append(int(AT_UNIX))
    served = [(s, c) for s in STAGES for c in COHORTS
              if any(r.stage == s and r.cohort == c for r in events.agent_requests)]
    canary: dict[str, str] = {"cohort": "canary"}
    with _atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as out:
        _counter(out, "agent_requests", "Agent requests of the Conflict Resolver.", grid,
                 [({"stage": s, "cohort": c},
                   [r.ts for r in events.agent_requests if r.stage == s and r.cohort == c])
                  for s, c in served])
        _counter(out, "agent_errors", "Agent requests that ended in an error, by type.", grid,
                 [({"stage": s, "cohort": c, "error_type": e},
                   [r.ts for r in events.agent_requests
                    if r.stage == s and r.cohort == c and r.error_type == e])
                  for s, c in served for e in ERROR_TYPES])
        _counter(out, "tool_calls", "Tool calls made by the agent, by outcome.", grid,
                 [({"stage": s, **canary, "outcome": "success" if ok else "failure"},
                   [c.ts for c in events.tool_calls if c.stage == s and c.success == ok])
                  for s in STAGES for ok in (True, False)])
        _histogram(out, "tool_call_duration_seconds", "Duration of one tool call.", grid,
                   TOOL_CALL_BUCKETS,
                   [({"stage": s, **canary},
                     [(c.ts, c.duration_s) for c in events.tool_calls if c.stage == s])
                    for s in STAGES])
        _histogram(out, "agent_response_duration_seconds",
                   "Time from a request to the agent's response.", grid, RESPONSE_BUCKETS,
                   [({"stage": s, **canary},
                     [(r.ts, r.duration_s) for r in events.agent_responses if r.stage == s])
                    for s in STAGES])
        # Product counters, tracked rather than gated (the plan's "Success metrics being
        # tracked"): what the dashboard's tracked row and the tracked objectives read.
        _counter(out, "conflict_page_views", "Conflict pages shown with the AI button.", grid,
                 [({"stage": s, **canary}, [v.ts for v in events.page_views if v.stage == s])
                  for s in STAGES])
        _counter(out, "button_clicks", "Clicks on the Resolve with AI button.", grid,
                 [({"stage": s, **canary}, [c.ts for c in events.button_clicks if c.stage == s])
                  for s in STAGES])
        _counter(out, "chat_sessions", "Chat sessions initiated.", grid,
                 [({"stage": s, **canary}, [c.ts for c in events.chat_sessions if c.stage == s])
                  for s in STAGES])
        _counter(out, "ratings", "User ratings, thumbs up or down.", grid,
                 [({"stage": s, **canary, "thumbs": thumbs},
                   [r.ts for r in events.ratings if r.stage == s and r.thumbs == thumbs])
                  for s in STAGES for thumbs in ("up", "down")])
        out.write("# EOF\n")


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in {"feature": FEATURE, **labels}.items())


def _cumulative(times: Sequence[float], grid: Sequence[int]) -> Iterator[int]:
    # Events strictly before the sample time: the sample at AT counts [start, AT) exactly.
    ordered = sorted(times)
    return (bisect.bisect_left(ordered, t) for t in grid)


def _counter(out: TextIO, name: str, help_text: str, grid: Sequence[int],
             series: list[tuple[dict[str, str], list[float]]]) -> None:
    out.write(f"# TYPE {name} counter\n# HELP {name} {help_text}\n")
    for labels, times in series:
        text = _labels(labels)
        out.writelines(f"{name}_total{{{text}}} {n} {t}\n"
                       for n, t in zip(_cumulative(times, grid), grid, strict=True))


def _histogram(out: TextIO, name: str, help_text: str, grid: Sequence[int],
               buckets: Sequence[float],
               series: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> None:
    out.write(f"# TYPE {name} histogram\n# UNIT {name} seconds\n# HELP {name} {help_text}\n")
    for labels, observations in series:
        observations.sort()
        times = [ts for ts, _ in observations]
        sums = [0.0]
        for _, value in observations:
            sums.append(sums[-1] + value)
        les = [repr(le) for le in buckets] + ["+Inf"]
        columns = [list(_cumulative([ts for ts, v in observations if v <= le], grid))
                   for le in buckets]
        columns.append(list(_cumulative(times, grid)))
        prefixes = [f'{name}_bucket{{{_labels({**labels, "le": le})}}} ' for le in les]
        base = _labels(labels)
        # One MetricPoint per timestamp (buckets, _count, _sum), as OpenMetrics lays them out.
        for k, t in enumerate(grid):
            out.writelines(f"{prefix}{column[k]} {t}\n"
                           for prefix, column in zip(prefixes, columns, strict=True))
            count = columns[-1][k]
            out.write(f"{name}_count{{{base}}} {count} {t}\n")
            out.write(f"{name}_sum{{{base}}} {round(sums[count], 3)!r} {t}\n")


# -- helpers ------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    # Millisecond timestamps and durations: what real event pipelines store, and short in SQL.
    return round(seconds, 3)


def _ln(median: float) -> float:
    return math.log(median)  # lognormvariate takes mu = ln(median)


def _by_ts(row: Timed) -> float:
    return row.ts


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; the result is an ordinary shared file
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _format(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4f}"


def _hide_password(url: str) -> str:
    scheme, found, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not found or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Simulate Conflict Resolver traffic ending at "
                    f"{_meta(DEFAULT_SEED)['at']} and write it out.")
    parser.add_argument("--db", type=Path, default=Path(__file__).with_name("events.db"),
                        help="SQLite database to (re)write (default: events.db beside this file)")
    parser.add_argument("--openmetrics", type=Path, default=None,
                        help="also write OpenMetrics text for promtool backfill to this path")
    parser.add_argument("--step", type=int, default=60,
                        help="seconds between OpenMetrics samples (default: 60)")
    parser.add_argument("--to", metavar="URL", action="append", default=[],
                        help="also (re)write the tables into this SQLAlchemy database, e.g. "
                             "postgresql+psycopg://admin@localhost/events or "
                             "duckdb:///events.duckdb (repeatable)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default: {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    # Imported here: expected.py imports this module, and only the command line needs it.
    from expected import expected_values

    events = simulate(args.seed)
    write_sqlite(events, args.db)
    print(f"wrote {args.db}")
    if args.openmetrics is not None:
        write_openmetrics(events, args.openmetrics, step=args.step)
        print(f"wrote {args.openmetrics}")
    for url in args.to:
        write_sql(events, url)
        print(f"wrote the tables to {_hide_password(url)}")
    print(f"expected values at {_meta(args.seed)['at']}:")
    for stage in STAGES:
        values = expected_values(events, stage)
        shown = ", ".join(f"{name}={_format(v)}" for name, v in values.items())
        print(f"  {stage} (window {STAGE_WINDOWS[stage] / 3600:g}h): {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
