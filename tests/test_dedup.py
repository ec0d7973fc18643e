"""Each distinct request once (issue 16, point 1): what the executor shares, counted at the
backend.

Specs are loaded from YAML as a user writes them, with a matrix of regions; every item's
queries are planned and read through one Executor, as the plugin does, against a fake
Prometheus API (``responses``, counting the POSTs) and a real SQLite file (counting the
statements the backend ran). A matrix variable the query does not use costs no request per
region; one it uses costs one per region.
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout_slo.backends.base import (
    Backend,
    BackendType,
    Query,
    RangeQuery,
    full_request_key,
    promql_request_key,
)
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.sqlanswer import sql_request_key
from pytest_rollout_slo.backends.sqlite import SqliteBackend, SqliteType
from pytest_rollout_slo.plan.executor import BackendKey, Executor
from pytest_rollout_slo.plan.needs import Measurement
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Spec

AT = 1_764_158_400.0  # 2025-11-26T12:00:00Z
URL = "http://prometheus:9090"
REGIONS = ("eu", "us", "ap")

SPEC = """\
version: 1
service: svc
backends:
  prom: {type: prometheus, url: "http://prometheus:9090", check_metrics: false,
         check_freshness: false}
  db: {type: sqlite, path: events.db}
variables:
  window: 1h
stages:
  beta: {}
matrix: {region: [eu, us, ap]}
objectives:
  - name: global_errors
    backend: prom
    query: sum(rate(errors[${window}]))
    max: 1
  - name: regional_errors
    backend: prom
    query: sum(rate(errors{region="${region}"}[${window}]))
    max: 1
  - name: global_ratio
    backend: prom
    ratio:
      numerator: sum(rate(errors[${window}]))
      denominator: sum(rate(requests[${window}]))
    max: 5%
  - name: steady
    backend: prom
    query: sum(rate(errors[5m]))
    max: 1
    sustained: {over: 2h, step: 1h, max_violations: 0}
  - name: sql_global
    backend: db
    query: SELECT count(*) FROM e WHERE ts >= :window_start AND ts < :window_end
    max: 100
  - name: sql_regional
    backend: db
    query: SELECT count(*) FROM e WHERE region = :region AND ts >= :window_start
    max: 100
  - name: sql_regional_text
    backend: db
    query: SELECT count(*) FROM e WHERE region = '${region}' AND ts >= :window_start
    max: 100
  - name: sql_timeless
    backend: db
    query: SELECT count(*) FROM e
    max: 100
    sustained: {over: 2h, step: 1h, max_violations: 0}
  - name: sql_timed
    backend: db
    query: SELECT count(*) FROM e WHERE ts < :at
    max: 100
    sustained: {over: 2h, step: 1h, max_violations: 0}
"""


class CountingSqlite(SqliteBackend):
    """The real SQLite backend, counting the statements it ran."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ran: Counter[str] = Counter()

    def query(self, query: Query) -> Any:
        self.ran[query.text] += 1
        return super().query(query)


class CountingSqliteType(SqliteType):
    def __init__(self) -> None:
        self.made: list[CountingSqlite] = []

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> Backend:
        made = CountingSqlite(name, spec_dir / str(settings["path"]), 30.0)
        self.made.append(made)
        return made


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    with sqlite3.connect(tmp_path / "events.db") as db:
        db.execute("CREATE TABLE e (ts REAL, region TEXT)")
        db.executemany("INSERT INTO e VALUES (?, ?)",
                       [(AT - 60.0, region) for region in REGIONS])
    path = tmp_path / "spec.slo.yaml"
    path.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    return load_spec(path, {"prometheus": PROMETHEUS, "sqlite": CountingSqliteType()})


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        answer = {"status": "success",
                  "data": {"resultType": "vector", "result": [{"metric": {}, "value": [AT, "0"]}]}}
        ranged = {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[AT - 7200 + 3600 * k, "0"] for k in range(3)]}]}}
        mock.post(f"{URL}/api/v1/query", json=answer)
        mock.post(f"{URL}/api/v1/query_range", json=ranged)
        yield mock


def run_all(spec: Spec, sqlite_type: CountingSqliteType, names: set[str]) -> int:
    """Plan every item of the objectives ``names`` as the plugin does, read every answer
    back; how many queries the items asked for."""
    executor = Executor({"prometheus": PROMETHEUS, "sqlite": sqlite_type}, 4)
    plans = []
    for objective in spec.objectives:
        if objective.name not in names:
            continue
        backend = spec.backends[objective.backend]
        key = BackendKey(spec.path, backend.name)
        for combination in objective.combinations():
            resolved = spec.resolve(objective, "beta", combination)
            ranged = executor.ranged(key, backend)
            plans += [(key, backend, need.query)
                      for need in Measurement(resolved, AT, ranged=ranged).needs()]
    executor.prefetch(plans)
    for key, backend, query in plans:
        executor.result(key, backend, query)
    assert executor.held() == 0  # every planned read was one of the planned readers
    executor.close()
    return len(plans)


def sent(api: responses.RequestsMock) -> Counter[str]:
    return Counter(parse_qs(str(call.request.body))["query"][0] for call in api.calls)


def test_promql_not_using_the_matrix_variable_is_sent_once_for_all_regions(
        spec: Spec, api: responses.RequestsMock) -> None:
    asked = run_all(spec, CountingSqliteType(), {"global_errors", "global_ratio"})
    assert asked == 3 * (1 + 2)  # three regions of a query and of a ratio
    assert sent(api) == {"sum(rate(errors[1h]))": 1, "sum(rate(requests[1h]))": 1}


def test_promql_using_the_matrix_variable_is_sent_once_per_region(
        spec: Spec, api: responses.RequestsMock) -> None:
    run_all(spec, CountingSqliteType(), {"regional_errors"})
    assert sent(api) == {f'sum(rate(errors{{region="{region}"}}[1h]))': 1
                         for region in REGIONS}


def test_a_sustained_promql_range_query_is_sent_once_for_all_regions(
        spec: Spec, api: responses.RequestsMock) -> None:
    run_all(spec, CountingSqliteType(), {"steady"})
    assert [call.request.url for call in api.calls] == [f"{URL}/api/v1/query_range"]


def test_sql_not_naming_the_matrix_variable_runs_once_for_all_regions(spec: Spec) -> None:
    sqlite_type = CountingSqliteType()
    run_all(spec, sqlite_type, {"sql_global"})
    assert list(sqlite_type.made[0].ran.values()) == [1]


def test_sql_naming_the_matrix_variable_runs_once_per_region(spec: Spec) -> None:
    sqlite_type = CountingSqliteType()
    run_all(spec, sqlite_type, {"sql_regional", "sql_regional_text"})
    ran = sqlite_type.made[0].ran
    assert ran["SELECT count(*) FROM e WHERE region = :region AND ts >= :window_start"] == 3
    assert sorted(ran.values()) == [1, 1, 1, 3]  # the text form differs per region anyway


def test_sql_naming_no_time_runs_once_for_every_step_and_region(spec: Spec) -> None:
    sqlite_type = CountingSqliteType()
    asked = run_all(spec, sqlite_type, {"sql_timeless"})
    assert asked == 3 * 3  # three steps in three regions
    assert list(sqlite_type.made[0].ran.values()) == [1]


def test_sql_naming_the_time_runs_once_per_step(spec: Spec) -> None:
    sqlite_type = CountingSqliteType()
    run_all(spec, sqlite_type, {"sql_timed"})
    assert list(sqlite_type.made[0].ran.values()) == [3]


# -- the keys themselves ------------------------------------------------------------------

def test_promql_key_is_text_and_times_and_tells_instant_from_range() -> None:
    assert (promql_request_key(Query("up", AT, {"region": "eu"}))
            == promql_request_key(Query("up", AT, {"region": "us"})))
    assert promql_request_key(Query("up", AT)) != promql_request_key(Query("up", AT + 1))
    assert (promql_request_key(Query("up", AT))
            != promql_request_key(RangeQuery("up", AT, AT, 60.0)))


def test_sql_key_holds_only_the_named_parameters() -> None:
    text = "SELECT 1 FROM e WHERE region = :region"
    assert (sql_request_key(Query(text, AT, {"region": "eu", "cohort": "a"}))
            == sql_request_key(Query(text, AT + 60, {"region": "eu", "cohort": "b"})))
    assert (sql_request_key(Query(text, AT, {"region": "eu"}))
            != sql_request_key(Query(text, AT, {"region": "us"})))
    # :at_ts is bound from :at, so it keys on the time.
    stamped = "SELECT 1 FROM e WHERE ts < :at_ts"
    assert (sql_request_key(Query(stamped, AT, {"at": AT}))
            != sql_request_key(Query(stamped, AT + 60, {"at": AT + 60})))
    # sqlite3 binds @name and $name by name too.
    for mark in "@$":
        other = f"SELECT 1 FROM e WHERE region = {mark}region"
        assert (sql_request_key(Query(other, AT, {"region": "eu"}))
                != sql_request_key(Query(other, AT, {"region": "us"})))


def test_a_backend_that_does_not_say_is_keyed_in_full() -> None:
    assert (full_request_key(Query("up", AT, {"region": "eu"}))
            != full_request_key(Query("up", AT, {"region": "us"})))


NAMES = st.text(st.sampled_from("abz_0"), min_size=1, max_size=4)


@given(st.dictionaries(NAMES, st.integers(0, 3), max_size=4),
       st.dictionaries(NAMES, st.integers(0, 3), max_size=4),
       st.lists(st.tuples(st.sampled_from(":@$"), NAMES), max_size=4),
       st.sampled_from(["", " '", " -- "]))
def test_sql_queries_binding_different_values_never_share_a_key(
        first: dict[str, int], second: dict[str, int], names: list[tuple[str, str]],
        filler: str) -> None:
    """Whatever the statement and values: equal keys only if every name it binds is equal."""
    text = "SELECT 1" + "".join(f"{filler}{mark}{name}" for mark, name in names)
    bound = {name for _, name in names}
    same = all(first.get(name) == second.get(name) for name in bound)
    one, two = Query(text, AT, first), Query(text, AT, second)
    if sql_request_key(one) == sql_request_key(two):
        assert same


def test_the_backend_types_say_their_rule() -> None:
    # What the real backends send, so that the executor shares what they really share.
    types: dict[str, BackendType] = {"prometheus": PROMETHEUS}
    backend = types["prometheus"].create("m", {"url": URL}, Path("."))
    query = Query("up", AT, {"region": "eu"})
    assert backend.request_key(query) == promql_request_key(query)  # type: ignore[attr-defined]
    backend.close()
