"""Real Prometheus and VictoriaMetrics servers on loopback for integration tests.

No pytest here: fixtures in ``conftest.py`` decide whether a missing binary skips or fails.
Every server runs in its own data directory on a random port; ``stop()`` (also run at
interpreter exit, and by the kernel if the test process dies) never leaves a process behind.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import math
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, TypeVar

import requests

__all__ = [
    "FIXTURE_END",
    "FIXTURE_START",
    "FIXTURE_STEP",
    "INSTALL_HINT",
    "PrometheusServer",
    "Sample",
    "ServerError",
    "VictoriaMetricsServer",
    "find_binary",
    "free_port",
    "openmetrics_to_import_text",
    "parse_openmetrics",
    "write_fixture_openmetrics",
]

INSTALL_HINT = (
    "install them with `sudo apt-get install prometheus victoria-metrics` "
    "(or run scripts/ensure-servers.sh as root)"
)

_HTTP_TIMEOUT = (1.0, 5.0)
_POLL_INTERVAL = 0.05
_STOP_GRACE = 10.0
_LOG_TAIL_LINES = 30


class ServerError(RuntimeError):
    """A test server could not be started, fed or queried."""


class _PortTaken(ServerError):
    """Another process holds the port free_port() picked; retried on a fresh port."""


def find_binary(name: str) -> str | None:
    """Absolute path of ``name`` on PATH, or None."""
    return shutil.which(name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test process is SIGKILLed the kernel
    # sends SIGTERM to the server, so no orphan survives a killed CI job. The signal follows
    # the spawning *thread*: start servers from the thread that runs the tests.
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


_S = TypeVar("_S", bound="_ServerProcess")
_LIVE: set[_ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class _ServerProcess:
    """One spawned server process with its log file; a context manager that stops it."""

    name: ClassVar[str] = "server"

    def __init__(self, argv: Sequence[str], port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir / f"{self.name}.log"
        self.started_in = 0.0
        self._log: IO[bytes] = self.log_path.open("wb")
        try:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            self._log.close()
            raise ServerError(f"cannot run {argv[0]}: {exc}") from exc
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self) -> None:
        """Terminate, wait, kill if needed; idempotent."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        _LIVE.discard(self)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_ok(self, path: str, timeout: float) -> None:
        """Poll ``GET path`` until it answers 200; raise ServerError with the log tail."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running():
                tail = self.log_tail()
                error = _PortTaken if "address already in use" in tail else ServerError
                raise error(
                    f"{self.name} exited with code {self._proc.returncode} before {path} "
                    f"answered 200; log {self.log_path}:\n{tail}"
                )
            try:
                response = requests.get(self.url + path, timeout=_HTTP_TIMEOUT)
            except requests.ConnectionError as exc:
                last = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    if not self._answering_is_us():
                        raise _PortTaken(f"another server already answers on {self.url}")
                    return
                last = f"HTTP {response.status_code}"
            time.sleep(_POLL_INTERVAL)
        raise ServerError(
            f"{self.name} at {self.url} not ready after {timeout:.0f} s ({path}: {last}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def _answering_is_us(self) -> bool:
        """Whether the server on our port runs with our data dir (not a port-race winner)."""
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} pid={self.pid}>"


def _start_with_retries(spawn: Callable[[], _S], ready: Callable[[_S], None]) -> _S:
    # free_port() can lose a race with another process; retry on a fresh port in that case.
    for attempt in range(3):
        started = time.monotonic()
        server = spawn()
        try:
            ready(server)
        except _PortTaken:
            server.stop()
            if attempt < 2:
                continue
            raise
        except BaseException:
            server.stop()
            raise
        server.started_in = time.monotonic() - started
        return server
    raise AssertionError("unreachable")


class PrometheusServer(_ServerProcess):
    """``prometheus`` with an empty config (no scraping) over a backfilled TSDB."""

    name = "prometheus"

    @classmethod
    def spawn(cls, data_dir: Path, *, binary: str = "prometheus",
              rule_files: Sequence[Path] = (), evaluation_interval: str = "1m"
              ) -> PrometheusServer:
        """Start the process without waiting for readiness (see ``wait_ready``); the rule
        files, if any, are evaluated every ``evaluation_interval``."""
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "prometheus.yml"
        text = "scrape_configs: []\n"
        if rule_files:
            text = (f"global: {{evaluation_interval: {evaluation_interval}}}\n"
                    f"rule_files: {json.dumps([str(p) for p in rule_files])}\n" + text)
        config.write_text(text, encoding="utf-8")
        port = free_port()
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            # Backfilled blocks lie in the past; default 15d retention would delete them.
            "--storage.tsdb.retention.time=10y",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        return cls(argv, port, data_dir)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        openmetrics: Path | None = None,
        *,
        binary: str = "prometheus",
        promtool: str = "promtool",
        timeout: float = 30.0,
        rule_files: Sequence[Path] = (),
        evaluation_interval: str = "1m",
    ) -> PrometheusServer:
        """Backfill ``openmetrics`` into ``data_dir``, start, wait for ``/-/ready``."""
        data_dir.mkdir(parents=True, exist_ok=True)
        blocks = _create_blocks(promtool, openmetrics, data_dir) if openmetrics else []

        def ready(server: PrometheusServer) -> None:
            server.wait_ready(timeout)
            server._check_blocks_queryable(blocks)

        return _start_with_retries(
            lambda: cls.spawn(data_dir, binary=binary, rule_files=rule_files,
                              evaluation_interval=evaluation_interval), ready)

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_until_ok("/-/ready", timeout)

    def _answering_is_us(self) -> bool:
        # The flags API answers only once ready; the log line comes only after a good bind.
        return self.running() and 'msg="Listening on"' in self.log_tail(lines=1000)

    def _check_blocks_queryable(self, blocks: Sequence[tuple[int, int]]) -> None:
        # Proves the backfilled blocks were loaded (and not dropped by retention).
        for min_ms, max_ms in blocks:
            response = requests.get(
                f"{self.url}/api/v1/labels",
                params={"start": f"{min_ms / 1000:.3f}", "end": f"{(max_ms - 1) / 1000:.3f}"},
                timeout=_HTTP_TIMEOUT,
            )
            if response.status_code != 200 or "__name__" not in response.json()["data"]:
                raise ServerError(
                    f"backfilled block [{min_ms}, {max_ms}) ms is not queryable "
                    f"(HTTP {response.status_code}: {response.text[:200]}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )


def _create_blocks(promtool: str, openmetrics: Path, data_dir: Path) -> list[tuple[int, int]]:
    """Run promtool backfill; return the (min, max) ms range of each block it wrote."""
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServerError(
            f"promtool could not backfill {openmetrics} (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    blocks = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and len(fields[0]) == 26 and fields[1].isdigit():
            blocks.append((int(fields[1]), int(fields[2])))
    return blocks


class VictoriaMetricsServer(_ServerProcess):
    """Single-node ``victoria-metrics``; ``url`` serves ``/api/v1`` and ``/prometheus/api/v1``."""

    name = "victoria-metrics"

    @classmethod
    def start(
        cls, data_dir: Path, *, binary: str = "victoria-metrics", timeout: float = 30.0
    ) -> VictoriaMetricsServer:
        data_dir.mkdir(parents=True, exist_ok=True)

        def spawn() -> VictoriaMetricsServer:
            port = free_port()
            argv = [
                binary,
                f"-storageDataPath={data_dir / 'storage'}",
                f"-httpListenAddr=127.0.0.1:{port}",
                "-retentionPeriod=100y",
                # Samples less than 30 s old are hidden by default; a simulator may write them.
                "-search.latencyOffset=0s",
                # The rollup cache could answer from before an import into an old time range.
                "-search.disableCache",
                # A sample imported twice must count once (1ms: only exact duplicates merge).
                "-dedup.minScrapeInterval=1ms",
            ]
            return cls(argv, port, data_dir)

        return _start_with_retries(spawn, lambda server: server.wait_until_ok("/health", timeout))

    def _answering_is_us(self) -> bool:
        flags = requests.get(f"{self.url}/flags", timeout=_HTTP_TIMEOUT).text
        return f'-storageDataPath="{self.data_dir / "storage"}"' in flags.splitlines()

    def import_prometheus(self, text: str) -> None:
        """Import exposition text whose samples carry millisecond timestamps, then flush."""
        response = requests.post(
            f"{self.url}/api/v1/import/prometheus",
            data=text.encode("utf-8"),
            timeout=(_HTTP_TIMEOUT[0], 120.0),
        )
        if response.status_code not in (200, 204):
            raise ServerError(f"import failed: HTTP {response.status_code}: {response.text[:500]}")
        self.force_flush()

    def import_openmetrics_file(self, path: Path) -> None:
        """Import the same OpenMetrics file promtool backfills into Prometheus."""
        self.import_prometheus(openmetrics_to_import_text(path.read_text(encoding="utf-8")))

    def force_flush(self) -> None:
        """Make recently ingested samples searchable now instead of within about a second."""
        response = requests.get(f"{self.url}/internal/force_flush", timeout=_HTTP_TIMEOUT)
        if response.status_code != 200:
            raise ServerError(f"force_flush failed: HTTP {response.status_code}")


# --- OpenMetrics text ------------------------------------------------------------------------

_SAMPLE_RE = re.compile(
    r"""^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    (?P<labels>\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?
    [ \t]+(?P<value>\S+)
    (?:[ \t]+(?P<timestamp>[^#\s]\S*))?
    (?:[ \t]+\#.*)?$""",
    re.VERBOSE,
)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: str  # raw text between braces, as written
    value: float
    timestamp: float | None  # seconds

    def label_dict(self) -> dict[str, str]:
        return {
            key: re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], raw)
            for key, raw in _LABEL_RE.findall(self.labels)
        }


def parse_openmetrics(text: str) -> Iterator[Sample]:
    """Samples of an OpenMetrics (or Prometheus text) exposition; comments are skipped."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE_RE.match(line)
        if match is None:
            raise ValueError(f"line {number}: not a sample: {line[:200]!r}")
        timestamp = match["timestamp"]
        yield Sample(
            name=match["name"],
            labels=(match["labels"] or "{}")[1:-1],
            value=float(match["value"]),
            timestamp=float(timestamp) if timestamp is not None else None,
        )


def openmetrics_to_import_text(text: str) -> str:
    """Rewrite OpenMetrics (seconds timestamps) as exposition text with ms timestamps."""
    out = []
    for sample in parse_openmetrics(text):
        if sample.timestamp is None:
            raise ValueError(f"{sample.name}{{{sample.labels}}}: backfill samples need timestamps")
        value = repr(sample.value) if math.isfinite(sample.value) else _special(sample.value)
        millis = round(sample.timestamp * 1000)
        out.append(f"{sample.name}{{{sample.labels}}} {value} {millis}\n")
    return "".join(out)


def _special(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


# --- Deterministic fixture data --------------------------------------------------------------

FIXTURE_END = 1763640000  # 2025-11-20T12:00:00Z
FIXTURE_STEP = 60
FIXTURE_START = FIXTURE_END - 3 * 3600
_BUCKETS = (0.1, 0.25, 0.5, 1.0)
# One minute of traffic: 50 fast, 30 medium, 15 slow, 4 slower, 1 outlier request.
_LATENCIES = (
    [0.002 * (k + 1) for k in range(50)]
    + [0.1 + 0.005 * (k + 1) for k in range(30)]
    + [0.25 + (k + 1) / 60 for k in range(15)]
    + [0.5 + 0.125 * (k + 1) for k in range(4)]
    + [2.0]
)


def _minute_traffic(minute: int) -> tuple[int, int, float]:
    """(ok, error, latency factor) for the minute ending at sample ``minute``."""
    if 61 <= minute <= 75:  # 15 minutes without traffic: error ratio is 0/0
        return 0, 0, 1.0
    if 121 <= minute <= 150:  # 30-minute incident: 10 % errors, twice the latency
        return 90, 10, 2.0
    return 98, 2, 1.0


def write_fixture_openmetrics(path: Path) -> Path:
    """Write 3 h of ``slo_test_requests_total`` and ``slo_test_duration_seconds``.

    One sample every 60 s from FIXTURE_START to FIXTURE_END inclusive; see
    ``_minute_traffic`` for the story the data tells.
    """
    bounds = (*_BUCKETS, math.inf)
    columns: dict[str, list[float]] = {}
    running: dict[str, float] = {}
    for minute in range((FIXTURE_END - FIXTURE_START) // FIXTURE_STEP + 1):
        ok, err, factor = _minute_traffic(minute) if minute else (0, 0, 1.0)
        latencies = [factor * v for v in _LATENCIES] if ok + err else []
        increments = {
            'slo_test_requests_total{code="200"}': float(ok),
            'slo_test_requests_total{code="500"}': float(err),
            **{
                f'slo_test_duration_seconds_bucket{{le="{_le(b)}"}}': float(
                    sum(1 for v in latencies if v <= b)
                )
                for b in bounds
            },
            "slo_test_duration_seconds_count": float(len(latencies)),
            "slo_test_duration_seconds_sum": sum(latencies),
        }
        for selector, increment in increments.items():
            running[selector] = running.get(selector, 0.0) + increment
            columns.setdefault(selector, []).append(running[selector])
    lines = []
    for selector, values in columns.items():
        if selector.startswith('slo_test_requests_total{code="200"'):
            lines.append("# TYPE slo_test_requests counter")
        elif selector.startswith('slo_test_duration_seconds_bucket{le="0.1"'):
            lines.append("# TYPE slo_test_duration_seconds histogram")
        lines += [
            f"{selector} {_number(value)} {FIXTURE_START + i * FIXTURE_STEP}"
            for i, value in enumerate(values)
        ]
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)
