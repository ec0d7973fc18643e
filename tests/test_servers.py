"""The integration harness itself: both engines up, holding the backfill, answering exactly.

Expectations are computed from the OpenMetrics file, not from the generator, so they hold
for whatever ``backfill_openmetrics`` writes as long as the ``slo_test_*`` series are in it.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from servers import (
    FIXTURE_END,
    FIXTURE_START,
    PrometheusServer,
    VictoriaMetricsServer,
    parse_openmetrics,
)

TIMEOUT = (2.0, 10.0)
INCIDENT_END = FIXTURE_START + 150 * 60  # last minute of the 10 % error incident
FLAT_END = FIXTURE_START + 75 * 60  # last minute of the 15 minutes without traffic
REQUESTS = "slo_test_requests_total"
BUCKETS = "slo_test_duration_seconds_bucket"

Series = dict[float, float]  # timestamp (s) -> value
LabelKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Engine:
    name: str
    url: str


@pytest.fixture(params=["prometheus", "victoriametrics"])
def engine(request: pytest.FixtureRequest) -> Engine:
    server = request.getfixturevalue(f"{request.param}_server")
    return Engine(request.param, server.url)


@pytest.fixture(scope="module")
def backfill(backfill_openmetrics: Path) -> dict[str, dict[LabelKey, Series]]:
    """metric name -> label set -> samples, read back from the file both engines loaded."""
    data: dict[str, dict[LabelKey, Series]] = {}
    for sample in parse_openmetrics(backfill_openmetrics.read_text(encoding="utf-8")):
        assert sample.timestamp is not None
        key = tuple(sorted(sample.label_dict().items()))
        data.setdefault(sample.name, {}).setdefault(key, {})[sample.timestamp] = sample.value
    return data


def query(url: str, promql: str, at: float) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/query", data={"query": promql, "time": str(at)}, timeout=TIMEOUT
    )


def vector(url: str, promql: str, at: float) -> dict[LabelKey, str]:
    """Instant vector as label set -> raw value string (``"NaN"`` stays a string)."""
    response = query(url, promql, at)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    return {
        tuple(sorted(item["metric"].items())): item["value"][1] for item in body["data"]["result"]
    }


def only_value(url: str, promql: str, at: float) -> float:
    result = vector(url, promql, at)
    assert len(result) == 1, result
    return float(next(iter(result.values())))


def delta(series: Series, start: float, end: float) -> float:
    return series[end] - series[start]


def prometheus_increase(series: Series, at: float, window: float) -> float:
    """Prometheus 2.x ``increase``: closed window, extrapolated toward both edges."""
    points = sorted((t, v) for t, v in series.items() if at - window <= t <= at)
    (first_t, first_v), (last_t, last_v) = points[0], points[-1]
    sampled = last_t - first_t
    threshold = sampled / (len(points) - 1) * 1.1
    to_start, to_end = first_t - (at - window), at - last_t
    increase = last_v - first_v
    if increase > 0 and first_v >= 0:
        to_start = min(to_start, sampled * first_v / increase)
    extrapolated = sampled
    extrapolated += to_start if to_start < threshold else sampled / (len(points) - 1) / 2
    extrapolated += to_end if to_end < threshold else sampled / (len(points) - 1) / 2
    return increase * extrapolated / sampled


def victoriametrics_increase(series: Series, at: float, window: float) -> float:
    """MetricsQL ``increase``: last sample in (at - window, at] minus the one before it."""
    last = max(t for t in series if t <= at)
    previous = max(t for t in series if t <= at - window)
    return series[last] - series[previous]


def test_prometheus_is_ready_and_reports_its_version(prometheus_server: PrometheusServer) -> None:
    assert requests.get(f"{prometheus_server.url}/-/ready", timeout=TIMEOUT).status_code == 200
    info = requests.get(f"{prometheus_server.url}/api/v1/status/buildinfo", timeout=TIMEOUT)
    assert info.json()["data"]["version"]


def test_victoriametrics_answers_both_api_prefixes(
    victoriametrics_server: VictoriaMetricsServer,
) -> None:
    for prefix in ("", "/prometheus"):
        response = requests.post(
            f"{victoriametrics_server.url}{prefix}/api/v1/query",
            data={"query": f"count({REQUESTS})", "time": str(FIXTURE_END)},
            timeout=TIMEOUT,
        )
        assert response.json()["data"]["result"][0]["value"][1] == "2"


@pytest.mark.parametrize(
    ("at", "window"),
    [(FIXTURE_END, 600), (FIXTURE_END, 3600), (INCIDENT_END, 1800), (FLAT_END, 600)],
)
def test_aligned_increase_is_exact_on_both_engines(
    engine: Engine, backfill: dict[str, dict[LabelKey, Series]], at: int, window: int
) -> None:
    # Window edges on sample timestamps: Prometheus has nothing to extrapolate and
    # VictoriaMetrics' "previous sample" is the one on the left edge, so both are exact.
    got = vector(engine.url, f"sum by (code) (increase({REQUESTS}[{window}s]))", at)
    expected = {key: delta(series, at - window, at) for key, series in backfill[REQUESTS].items()}
    assert {key: float(value) for key, value in got.items()} == expected


def test_error_ratio_during_incident(
    engine: Engine, backfill: dict[str, dict[LabelKey, Series]]
) -> None:
    ratio = f'sum(rate({REQUESTS}{{code="500"}}[30m])) / sum(rate({REQUESTS}[30m]))'
    by_code = {dict(key)["code"]: series for key, series in backfill[REQUESTS].items()}
    errors = delta(by_code["500"], INCIDENT_END - 1800, INCIDENT_END)
    total = errors + delta(by_code["200"], INCIDENT_END - 1800, INCIDENT_END)
    assert only_value(engine.url, ratio, INCIDENT_END) == pytest.approx(errors / total, rel=1e-12)


def test_unaligned_increase_differs_by_engine(
    engine: Engine, backfill: dict[str, dict[LabelKey, Series]]
) -> None:
    # 30 s off the sample grid, just after traffic resumes: Prometheus extrapolates the
    # 9 intervals inside its window to 10 min, VictoriaMetrics subtracts the sample before
    # the window and does not extrapolate. Same data, different documented answers.
    at, window = FLAT_END + 5 * 60 + 30, 600
    series = backfill[REQUESTS][(("code", "200"),)]
    expected = (
        prometheus_increase(series, at, window)
        if engine.name == "prometheus"
        else victoriametrics_increase(series, at, window)
    )
    got = only_value(engine.url, f'increase({REQUESTS}{{code="200"}}[10m])', at)
    assert got == pytest.approx(expected, rel=1e-12)
    assert prometheus_increase(series, at, window) != victoriametrics_increase(series, at, window)


@pytest.mark.parametrize("at", [FIXTURE_END, INCIDENT_END])
def test_histogram_quantile_within_its_bucket(
    engine: Engine, backfill: dict[str, dict[LabelKey, Series]], at: int
) -> None:
    buckets = sorted(
        (float(dict(key)["le"]), delta(series, at - 1800, at))
        for key, series in backfill[BUCKETS].items()
    )
    rank = 0.9 * buckets[-1][1]
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    lower, below = buckets[index - 1] if index else (0.0, 0.0)
    upper, count = buckets[index]
    assert not math.isinf(upper), "fixture must put p90 in a finite bucket"
    interpolated = lower + (upper - lower) * (rank - below) / (count - below)
    promql = f"histogram_quantile(0.9, sum by (le) (rate({BUCKETS}[30m])))"
    got = only_value(engine.url, promql, at)
    # The true p90 is only known to lie in this bucket; both engines interpolate linearly.
    assert lower <= got <= upper
    assert got == pytest.approx(interpolated, rel=1e-9)


def test_zero_over_zero_is_nan_on_prometheus_and_absent_on_victoriametrics(
    engine: Engine,
) -> None:
    # The counters exist and are flat: rate is 0, not missing ...
    rates = vector(engine.url, f"sum by (code) (rate({REQUESTS}[5m]))", FLAT_END)
    assert sorted(float(v) for v in rates.values()) == [0.0, 0.0]
    # ... so the error ratio is 0/0: Prometheus says "NaN", MetricsQL drops NaN results.
    ratio = f'sum(rate({REQUESTS}{{code="500"}}[5m])) / sum(rate({REQUESTS}[5m]))'
    got = vector(engine.url, ratio, FLAT_END)
    assert list(got.values()) == (["NaN"] if engine.name == "prometheus" else [])
    # Same for a quantile of no observations.
    p90 = f"histogram_quantile(0.9, sum by (le) (rate({BUCKETS}[5m])))"
    got = vector(engine.url, p90, FLAT_END)
    assert list(got.values()) == (["NaN"] if engine.name == "prometheus" else [])


def test_window_without_samples_is_empty(engine: Engine) -> None:
    assert vector(engine.url, f"rate({REQUESTS}[5m])", FIXTURE_START - 3600) == {}


def test_syntax_error_is_rejected(engine: Engine) -> None:
    response = query(engine.url, "sum(rate(", FIXTURE_END)
    body = response.json()
    assert body["status"] == "error"
    if engine.name == "prometheus":
        assert (response.status_code, body["errorType"]) == (400, "bad_data")
    else:  # VictoriaMetrics 1.79 reports parse errors as 422 with errorType "422"
        assert (response.status_code, body["errorType"]) == (422, "422")


@pytest.mark.parametrize("kind", ["prometheus", "victoriametrics"])
def test_stopped_server_refuses_connections(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    binary: str = request.getfixturevalue(f"{kind}_binary")
    server: PrometheusServer | VictoriaMetricsServer
    if kind == "prometheus":
        server = PrometheusServer.start(tmp_path, binary=binary)
    else:
        server = VictoriaMetricsServer.start(tmp_path, binary=binary)
    with server:
        assert query(server.url, "1", FIXTURE_END).status_code == 200
    assert not server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    with pytest.raises(requests.ConnectionError):
        query(server.url, "1", FIXTURE_END)


@pytest.fixture
def blocked_tsdb(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose TSDB open blocks on a FIFO ``meta.json`` until released."""
    block = tmp_path / "01AAAAAAAAAAAAAAAAAAAAAAAA"
    block.mkdir()
    os.mkfifo(block / "meta.json")
    yield tmp_path
    release_tsdb(block)


def release_tsdb(block: Path) -> None:
    if not block.exists():
        return
    # Opening the write end lets Prometheus' blocked open() return; removing the block
    # before closing means it reads EOF once, logs the broken block and carries on.
    try:
        writer: int | None = os.open(block / "meta.json", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader (the server is already gone)
        writer = None
    shutil.rmtree(block)
    if writer is not None:
        os.close(writer)


def test_prometheus_not_ready_answers_503(blocked_tsdb: Path, prometheus_binary: str) -> None:
    # The HTTP listener is up while the TSDB is still opening; the FIFO holds it there, so
    # the not-ready window is deterministic instead of a few milliseconds long.
    with PrometheusServer.spawn(blocked_tsdb, binary=prometheus_binary) as server:
        try:
            server.wait_until_ok("/-/healthy", timeout=30)
            response = query(server.url, "1", FIXTURE_END)
            assert (response.status_code, response.text.strip()) == (503, "Service Unavailable")
            assert requests.get(f"{server.url}/-/ready", timeout=TIMEOUT).status_code == 503
        finally:  # a blocked Prometheus ignores SIGTERM: release it before stop()
            release_tsdb(blocked_tsdb / "01AAAAAAAAAAAAAAAAAAAAAAAA")
        server.wait_ready(timeout=30)
        assert query(server.url, "1", FIXTURE_END).status_code == 200
