"""Fan-out: 200 objectives against a Prometheus API that answers every query after 50 ms.

    python benchmarks/bench_fanout.py [--objectives 200] [--delay 0.05] [--concurrency 8]

Reports the wall time of pytest's run loop (planning, all queries, all items) against the
sequential sum (objectives x delay) and against the ideal ceil(objectives / concurrency) x
delay. Target: within 1.5x of the ideal. Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from _support import machine, met, prepare, run_pytest, verdict

AT = 1_700_000_000
TARGET = 1.5


class _SlowApi(BaseHTTPRequestHandler):
    """``POST /api/v1/query``: a one-series vector of 0.5, after ``delay`` seconds."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real Prometheus offers
    delay: ClassVar[float] = 0.05
    lock: ClassVar[threading.Lock] = threading.Lock()
    served: ClassVar[int] = 0
    active: ClassVar[int] = 0
    most: ClassVar[int] = 0

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every answer (Go's server, Prometheus's, sets it).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        threading.Event().wait(cls.delay)
        with cls.lock:
            cls.active -= 1
            cls.served += 1
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [AT, "0.5"]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def spec(url: str, objectives: int, concurrency: int) -> str:
    lines = ["version: 1", "service: fanout", "backends:", "  api:", "    type: prometheus",
             f"    url: {url}", f"    max_concurrency: {concurrency}",
             # The fake API answers queries only, not the metric-name listing.
             "    check_metrics: false",
             "stages:", "  bench: {}", "objectives:"]
    for n in range(objectives):
        lines += [f"  - name: objective_{n:03d}",
                  f'    query: bench_latency_seconds{{objective="{n:03d}"}}', "    max: 1"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    _SlowApi.delay = args.delay
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
            directory = prepare(Path(tmp))
            url = f"http://127.0.0.1:{server.server_address[1]}"
            (directory / "fanout.slo.yaml").write_text(
                spec(url, args.objectives, args.concurrency), encoding="utf-8")
            session = run_pytest(directory, ["-q", "--slo-stage=bench", f"--slo-at={AT}",
                                             f"--slo-concurrency={args.concurrency}"])
    finally:
        server.shutdown()
        server.server_close()
    if session.returncode != 0 or session.items("slo") != args.objectives:
        raise SystemExit(f"expected {args.objectives} passing objectives:\n{session.output}")
    wall = session.loop_seconds
    sequential = args.objectives * args.delay
    ideal = math.ceil(args.objectives / args.concurrency) * args.delay
    ms = round(args.delay * 1000)
    print(f"bench_fanout: {args.objectives} objectives, API answering after {ms} ms, "
          f"--slo-concurrency={args.concurrency}")
    print(f"  machine: {machine()}")
    print(f"  run loop wall time: {wall:.2f} s (whole pytest process {session.wall:.2f} s)")
    print(f"  sequential sum {args.objectives} x {ms} ms = {sequential:.2f} s: "
          f"{sequential / wall:.1f}x faster")
    print(f"  ideal ceil({args.objectives}/{args.concurrency}) x {ms} ms = {ideal:.2f} s: "
          f"wall/ideal {verdict(wall / ideal, TARGET)}")
    print(f"  requests served {_SlowApi.served}, at most {_SlowApi.most} at once")
    return 0 if met(wall / ideal, TARGET) else 1


if __name__ == "__main__":
    raise SystemExit(main())
