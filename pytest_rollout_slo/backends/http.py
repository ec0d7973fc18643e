"""The one HTTP client of the plugin: a requests session with bounded, deadline-aware retries.

Owns what every HTTP peer (Prometheus-compatible backends, GitLab) needs the same way: retries
only of what is safe to repeat, no retry or backoff past the run deadline, per-attempt timeouts
cut to the time left, redirects never followed (a 3xx would carry credentials to whatever host
it names), and the words for a failure on the wire. What an answer means stays with each client.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from pytest_rollout_slo.backends.redact import exception_text, root_cause
from pytest_rollout_slo.clock import time_left
from pytest_rollout_slo.quantity import format_duration

RETRIED_STATUSES = (502, 503, 504)

LOG = logging.getLogger("pytest_rollout_slo.http")
"""Where our retries are told, at DEBUG: ``--log-level=DEBUG`` shows them."""


class _DeadlineRetry(Retry):
    """Retry as configured, but give up rather than wait past the run deadline.

    A ``Retry-After`` longer than ``retry_after_cap`` or than the time left ends the retries
    instead of stretching the wait: a proxy or an overloaded server must not make a gate hang.
    """

    retry_after_cap = 0.0

    def is_exhausted(self) -> bool:
        left = time_left()
        return super().is_exhausted() or (left is not None and left <= self.get_backoff_time())

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None,
                  _stacktrace: TracebackType | None = None) -> _DeadlineRetry:
        if response is not None and self.respect_retry_after_header:
            wait = self.get_retry_after(response)
            left = time_left()
            if wait is not None and (wait > self.retry_after_cap
                                     or (left is not None and wait >= left)):
                # urllib3 hands the 429/503 itself back to the caller, which says what it was.
                raise MaxRetryError(_pool, url or "", None)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def new(self, **kw: Any) -> _DeadlineRetry:
        retry = super().new(**kw)
        retry.retry_after_cap = self.retry_after_cap
        return retry


class _RetryChatter(logging.Filter):
    """Moves urllib3's "Retrying (...) after connection broken" warnings about *our* retries
    to LOG at DEBUG.

    urllib3 logs each retry as a WARNING on its module's logger, which pytest captures into
    whichever item happens to be running (eight lines of ``_DeadlineRetry(total=2, ...)`` in
    the first item's log). The outcome of the retries reaches the verdict anyway; the
    attempts are for debugging. Records about another library's retries pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if args and isinstance(args[0], _DeadlineRetry):
            if LOG.isEnabledFor(logging.DEBUG):
                LOG.debug(record.getMessage())
            return False
        return True


def _quiet_retries() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    # By name: a module imported again (pytester's in-process runs) brings a class of its own.
    for old in [f for f in logger.filters if type(f).__qualname__ == "_RetryChatter"]:
        logger.removeFilter(old)
    logger.addFilter(_RetryChatter())


_quiet_retries()


class HttpClient:
    """A requests session for one peer, with the retry, timeout and redirect rules above.

    ``timeout`` is the read timeout of one attempt; connecting gets at most 5 s of it.
    ``retried_methods`` are the methods safe to send again (reads; a POST that only queries);
    they are retried after a failed connect or a 502/503/504, never after a read timeout,
    which would multiply the wait. ``retry_after`` also retries 429 (and honours the header
    on 503) when the server asks to wait no longer than that many seconds.
    """

    def __init__(self, *, timeout: float, retries: int = 2, backoff: float = 0.5,
                 retried_methods: Collection[str] = ("GET",), pool_maxsize: int = 10,
                 retry_after: float = 0.0, headers: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.timeout = (min(5.0, timeout), timeout)
        retry = _DeadlineRetry(
            total=retries, connect=retries, read=False, status=retries, other=0,
            backoff_factor=backoff,
            status_forcelist=RETRIED_STATUSES + ((429,) if retry_after > 0 else ()),
            allowed_methods=frozenset(m.upper() for m in retried_methods),
            raise_on_status=False, respect_retry_after_header=retry_after > 0)
        retry.retry_after_cap = retry_after
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=pool_maxsize)
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, adapter)
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        # Credentials live on the session, never in the request url, so requests cannot
        # quote them in an exception text.
        self.session.auth = auth

    def attempt_timeout(self) -> tuple[float, float]:
        """The (connect, read) timeout of the next attempt, cut to the run deadline."""
        left = time_left()
        if left is None:
            return self.timeout
        return (max(0.001, min(self.timeout[0], left)), max(0.001, min(self.timeout[1], left)))

    def request(self, method: str, url: str, *, timeout: tuple[float, float],
                **kwargs: Any) -> requests.Response:
        """Send one request, with its retries; requests' exceptions propagate to the caller.

        The caller takes ``timeout`` from :meth:`attempt_timeout` just before, so that it can
        word a timeout with the value that was really used.
        """
        return self.session.request(method, url, timeout=timeout, allow_redirects=False,
                                    **kwargs)

    def close(self) -> None:
        self.session.close()


def transport_message(exc: requests.RequestException, endpoint: str,
                      timeout: tuple[float, float]) -> str:
    """What went wrong on the wire, in words, without the repr soup of urllib3's exceptions."""
    root, detail = root_cause(exc), exception_text(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"timed out after {format_duration(timeout[0])} connecting to {endpoint}"
    if isinstance(exc, requests.Timeout) or isinstance(root, (Urllib3TimeoutError, TimeoutError)):
        return f"timed out after {format_duration(timeout[1])} waiting for {endpoint}"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the TLS handshake with {endpoint} failed ({detail}); check the tls settings"
    if isinstance(root, ConnectionRefusedError):
        return f"connection refused by {endpoint}; is the server running and is url right?"
    if isinstance(root, socket.gaierror):
        return f"could not resolve the host of {endpoint} ({detail})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"the connection to {endpoint} broke while reading the answer ({detail})"
    if isinstance(exc, requests.ConnectionError):
        return f"could not connect to {endpoint} ({detail})"
    return f"the request to {endpoint} failed ({detail})"


__all__ = ["RETRIED_STATUSES", "HttpClient", "transport_message"]
