"""A small fault-injecting HTTP proxy on loopback, in front of a real Prometheus.

No pytest here. Each proxy plays one fault for every request it gets, counts the requests,
and stops by itself: after ``lifetime`` seconds at the latest, or when its ``with`` block
ends. It serves at most ``max_connections`` connections at once and drops the rest, every
socket has a timeout, and every thread is a daemon, so a proxy can never hang a test run.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["forward", "refused", "hang", "late", "reset", "flaky", "unavailable", "huge",
                "trickle"]
FAULTS: tuple[Fault, ...] = ("refused", "hang", "late", "reset", "flaky", "unavailable",
                             "huge", "trickle")


_SOCKET_TIMEOUT = 5.0
_HEAD_LIMIT = 64 * 1024


class FaultProxy:
    """``with FaultProxy(upstream, "late", delay=3) as proxy: ... proxy.url ...``.

    Faults, one per proxy:

    - ``forward``: pass every request to ``upstream`` (the control);
    - ``refused``: nothing listens on the port, so every connect is refused;
    - ``hang``: accept and read the request, then never answer;
    - ``late``: answer ``upstream``'s answer after ``delay`` seconds;
    - ``reset``: send the headers and half of ``upstream``'s body, then reset the connection;
    - ``flaky``: answer 502 Bad Gateway to the first ``failures`` requests, then forward;
    - ``unavailable``: answer 503 Service Unavailable to every request;
    - ``huge``: answer a vector of ``series`` series, each 1, but ``series_outside`` which is
      ``outside_value``; the body is made here, not loaded into Prometheus;
    - ``trickle``: send ``upstream``'s answer one byte every ``interval`` seconds.
    """

    def __init__(self, upstream: str, fault: Fault, *, delay: float = 3.0, failures: int = 1,
                 series: int = 100_000, series_outside: int = 77_777,
                 outside_value: float = 5000.0, at: float = 1.0, interval: float = 0.2,
                 lifetime: float = 60.0, max_connections: int = 32) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault = fault
        self.delay = delay
        self.failures = failures
        self.series = series
        self.series_outside = series_outside
        self.outside_value = outside_value
        self.at = at  # the samples' time in a huge answer: the gate's evaluation time
        self.interval = interval
        self.lifetime = lifetime
        self.requests: list[float] = []  # time.monotonic() of every request read
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._until = 0.0
        self._huge_body: bytes | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- lifetime -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._until = time.monotonic() + self.lifetime
        if self.fault != "refused":  # a bound socket that never listens refuses connects
            self._sock.listen(64)
            self._sock.settimeout(0.1)
            threading.Thread(target=self._accept, name=f"faultproxy-{self.fault}",
                             daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the proxy stops first; True if it is still running."""
        left = min(seconds, self._until - time.monotonic())
        return left > 0 and not self._stopped.wait(left) and left >= seconds

    def _accept(self) -> None:
        while not self._stopped.is_set() and time.monotonic() < self._until:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.stop()

    # -- one connection -------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(_SOCKET_TIMEOUT)
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(time.monotonic())
                number = len(self.requests)
            self._play(conn, request, number)
        except OSError:
            pass  # the client gave up or the proxy stopped: nothing to report to anyone
        finally:
            conn.close()
            self._slots.release()

    def _play(self, conn: socket.socket, request: bytes, number: int) -> None:
        fault = self.fault
        if fault == "hang":
            self._wait(self.lifetime)
        elif fault == "unavailable" or (fault == "flaky" and number <= self.failures):
            code = 503 if fault == "unavailable" else 502
            phrase = http.client.responses[code]
            conn.sendall(_response(code, phrase, "text/plain; charset=utf-8", phrase.encode()))
        elif fault == "huge":
            conn.sendall(_response(200, "OK", "application/json", self._huge()))
        else:
            self._forward(conn, request)

    def _forward(self, conn: socket.socket, request: bytes) -> None:
        answer = self._ask_upstream(request)
        if self.fault == "late" and not self._wait(self.delay):
            return
        if self.fault == "reset":
            head, _, body = answer.partition(b"\r\n\r\n")
            conn.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
            self._wait(0.2)  # let the client read what came, then break the connection
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if self.fault == "trickle":
            for index in range(len(answer)):
                conn.sendall(answer[index:index + 1])
                if not self._wait(self.interval):
                    return
            return
        conn.sendall(answer)

    def _ask_upstream(self, request: bytes) -> bytes:
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        keep = {k: v for k, v in headers.items()
                if k.lower() in ("content-type", "accept", "authorization")}
        upstream = http.client.HTTPConnection(*self.upstream, timeout=_SOCKET_TIMEOUT)
        try:
            upstream.request(method, target, body=body, headers=keep)
            response = upstream.getresponse()
            content = response.read()
            content_type = response.getheader("Content-Type", "application/octet-stream")
            return _response(response.status, response.reason, content_type, content)
        finally:
            upstream.close()

    def _huge(self) -> bytes:
        with self._lock:
            if self._huge_body is None:
                self._huge_body = huge_vector(self.series, self.series_outside,
                                              self.outside_value, self.at)
            return self._huge_body


def huge_vector(series: int, outside: int, outside_value: float, at: float = 1.0) -> bytes:
    """A Prometheus vector answer: ``series`` series ``{instance="i<n>"}`` of value 1."""
    stamp = json.dumps(at)

    def one(n: int) -> str:
        value = outside_value if n == outside else 1
        return f'{{"metric":{{"instance":"i{n}"}},"value":[{stamp},"{value}"]}}'

    result = ",".join(one(n) for n in range(series))
    return (f'{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}'
            .encode())


def _response(status: int, phrase: str, content_type: str, body: bytes) -> bytes:
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _read_request(conn: socket.socket) -> bytes | None:
    """One HTTP request with its body (by Content-Length), or None if the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk or len(data) > _HEAD_LIMIT:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body



__all__ = ["FAULTS", "Fault", "FaultProxy", "huge_vector"]
