"""Session fixtures: a real Prometheus and a real VictoriaMetrics holding the same backfill."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import responses
import sqlglot
from hypothesis import settings
from servers import (
    INSTALL_HINT,
    PrometheusServer,
    VictoriaMetricsServer,
    find_binary,
    write_fixture_openmetrics,
)

# The plugin's machinery, loaded once for the whole session. pytester's in-process runs
# unload every module a run imported, so without this each run would import (and, without
# bytecode files, compile) all of it again; and libyaml's extension module cannot be
# imported twice cleanly (the loader would fall back to PyYAML's pure-Python parser, not
# the path a user's pytest takes).
import pytest_rollout_slo.rollout
import pytest_rollout_slo.session  # noqa: F401

# Property tests that leave max_examples to the profile: "ci" (the default, what
# scripts/test.sh runs) tries a few thousand examples each within the CI budget; "long"
# (`pytest --hypothesis-profile=long`) ten times as many, for a local soak.
settings.register_profile("ci", max_examples=2000, deadline=None, print_blob=True)
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=20_000)
settings.load_profile("ci")

# sqlglot loads a dialect on first use; loaded here, the SQLite one is not imported again by
# every in-process run that checks a spec's queries.
sqlglot.Dialect.get_or_raise("sqlite")

# The quickstart simulator is the servers' traffic; appended (not prepended) so that its
# conftest.py can never shadow this one.
_QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
if str(_QUICKSTART) not in sys.path:
    sys.path.append(str(_QUICKSTART))

from pgserver import ADMIN, PG_INSTALL_HINT, PostgresCluster, find_pg_binary  # noqa: E402
from simulate import (  # noqa: E402
    Events,
    ensure_database,
    simulate,
    write_openmetrics,
    write_sql,
)

BACKFILL_STEP = 300
"""Seconds between the simulator's samples in the backfill.

Every window, step and offset the specs use (the stages' 24h and 2d; 5m to 6h for sustained
points, burn-rate alerts and hourly subqueries; 1d baselines) is a multiple of it and the grid
ends on ``AT``, so ``increase`` has samples exactly on both window edges and stays exact; 300 s
instead of 60 s makes the file 13 MB instead of 60 MB and cuts promtool and the
VictoriaMetrics import from about 12 s to about 3.5 s. Off this grid the engines part: there
Prometheus extrapolates ``increase`` to the window edges (non-integer counts) while
VictoriaMetrics subtracts the last samples before each edge (whole counts).
"""


def missing(message: str, *, module: bool = False) -> NoReturn:
    """Skip for a missing server, tool or dependency, but fail under ``CI=true`` (CI must
    never skip); ``scripts/test.sh`` sets it, since it installs everything first. ``module``:
    called at a test module's top level, for the whole module."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing server or dependency is a failure)",
                    pytrace=False)
    pytest.skip(message, allow_module_level=module)


def require_binary(name: str) -> str:
    """Path of ``name``, or :func:`missing`."""
    path = find_binary(name)
    return path if path is not None else missing(f"{name} is not on PATH; {INSTALL_HINT}")


def build_backfill(directory: Path, events: Events) -> Path:
    """The one place that decides what both servers hold; returns an OpenMetrics file.

    Two stories in one file, on time ranges a year apart: the harness's ``slo_test_*`` series
    (``test_servers.py``, ``test_faults.py``) and the quickstart simulator's Conflict Resolver
    traffic (``test_integration_*.py``), every series labelled ``feature``, ``stage`` and
    ``cohort`` (``canary``; agent requests and errors also ``control`` in internal and beta).
    """
    parts = [
        write_fixture_openmetrics(directory / "fixture.om.txt"),
        directory / "conflict_resolver.om.txt",
    ]
    write_openmetrics(events, parts[1], step=BACKFILL_STEP)
    target = directory / "backfill.om.txt"
    with target.open("w", encoding="utf-8") as out:
        for part in parts:
            text = part.read_text(encoding="utf-8")
            # OpenMetrics allows one "# EOF", at the very end of the exposition.
            if not text.endswith("# EOF\n"):
                raise ValueError(f"{part} does not end in '# EOF'")
            out.write(text.removesuffix("# EOF\n"))
            part.unlink()
        out.write("# EOF\n")
    return target


@pytest.fixture(scope="session")
def quickstart_events() -> Events:
    """The quickstart simulator's default-seed traffic: what the servers and events db hold."""
    return simulate()


@pytest.fixture(scope="session")
def events_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's SQLite events database (default seed), built in a temporary dir."""
    return ensure_database(tmp_path_factory.mktemp("events") / "events.db")


@pytest.fixture(scope="session")
def backfill_openmetrics(
    tmp_path_factory: pytest.TempPathFactory, quickstart_events: Events
) -> Path:
    """OpenMetrics text (seconds timestamps, ``# EOF``) loaded into every server."""
    return build_backfill(tmp_path_factory.mktemp("backfill"), quickstart_events)


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of ``prometheus`` (skip, or fail under CI, when missing)."""
    return require_binary("prometheus")


@pytest.fixture(scope="session")
def victoriametrics_binary() -> str:
    """Path of ``victoria-metrics`` (skip, or fail under CI, when missing)."""
    return require_binary("victoria-metrics")


@pytest.fixture(scope="session")
def prometheus_server(
    tmp_path_factory: pytest.TempPathFactory, backfill_openmetrics: Path, prometheus_binary: str
) -> Iterator[PrometheusServer]:
    """A ready Prometheus on 127.0.0.1 with ``backfill_openmetrics`` queryable."""
    with PrometheusServer.start(
        tmp_path_factory.mktemp("prometheus"),
        backfill_openmetrics,
        binary=prometheus_binary,
        promtool=require_binary("promtool"),
    ) as server:
        yield server


@pytest.fixture(scope="session")
def victoriametrics_server(
    tmp_path_factory: pytest.TempPathFactory,
    backfill_openmetrics: Path,
    victoriametrics_binary: str,
) -> Iterator[VictoriaMetricsServer]:
    """A ready single-node VictoriaMetrics with ``backfill_openmetrics`` imported and flushed."""
    data_dir = tmp_path_factory.mktemp("victoriametrics")
    with VictoriaMetricsServer.start(data_dir, binary=victoriametrics_binary) as server:
        server.import_openmetrics_file(backfill_openmetrics)
        yield server


@pytest.fixture
def unready_prometheus(tmp_path: Path, prometheus_binary: str) -> Iterator[PrometheusServer]:
    """A Prometheus that listens but is not ready: every ``/api/v1`` path answers 503.

    The TSDB open blocks on a FIFO ``meta.json`` (the technique of test_servers.py), so the
    not-ready window lasts until teardown instead of a few milliseconds.
    """
    block = tmp_path / "01AAAAAAAAAAAAAAAAAAAAAAAA"
    block.mkdir()
    os.mkfifo(block / "meta.json")
    with PrometheusServer.spawn(tmp_path, binary=prometheus_binary) as server:
        try:
            server.wait_until_ok("/-/healthy", timeout=30)
            yield server
        finally:  # a blocked Prometheus ignores SIGTERM: let its open() return first
            _release_fifo(block)


def _release_fifo(block: Path) -> None:
    try:
        writer: int | None = os.open(block / "meta.json", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader, the server is already gone
        writer = None
    # Removed before the writer closes, so Prometheus reads EOF once and skips the block.
    shutil.rmtree(block)
    if writer is not None:
        os.close(writer)


# -- SQL engines: a throwaway PostgreSQL cluster and a DuckDB file, both holding the quickstart

def require_pg_binary(name: str) -> str:
    """Path of ``initdb`` / ``pg_ctl``, or :func:`missing`."""
    path = find_pg_binary(name)
    return path if path is not None else missing(
        f"{name} (PostgreSQL) is not installed; {PG_INSTALL_HINT}")


@pytest.fixture(scope="session")
def postgres_cluster(quickstart_events: Events) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on loopback whose database ``events`` holds the quickstart tables,
    readable by the read-only role ``slo_gate`` (``pgserver.GATE``)."""
    require_pg_binary("pg_ctl")
    with PostgresCluster.start(require_pg_binary("initdb")) as cluster:
        write_sql(quickstart_events, cluster.url(ADMIN))
        yield cluster


@pytest.fixture(scope="session")
def events_duckdb(tmp_path_factory: pytest.TempPathFactory, quickstart_events: Events) -> Path:
    """A DuckDB file holding the quickstart tables."""
    path = tmp_path_factory.mktemp("duckdb") / "events.duckdb"
    write_sql(quickstart_events, f"duckdb:///{path}")
    return path


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, its child runs kept free of pytest-benchmark.

    Whatever pytest plugins the machine has installed load into every child run. CI's image
    has pytest-benchmark, whose 5.2 releases warn whenever xdist is active, and under the
    child's ``filterwarnings = error`` that warning ends the run as an internal error before
    any gate is judged. pytester clears PYTEST_ADDOPTS when it starts, so setting it here
    reaches in-process and subprocess runs alike; blocking a plugin that is not installed is
    a no-op.
    """
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:benchmark")
    return pytester


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """A faked HTTP API (``responses``); a test registers the answers it needs."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
