"""The one HTTP client of the plugin: a requests session with bounded, deadline-aware retries.

Owns what every HTTP peer (Prometheus-compatible backends, GitLab) needs the same way: retries
only of what is safe to repeat, no retry or backoff past the run deadline, per-attempt timeouts
cut to the time left, redirects never followed (a 3xx would carry credentials to whatever host
it names), and the words for a failure on the wire. What an answer means stays with each client.

Requests are cheap: what does not change between requests is prepared once per client (the
headers with the credentials) and once per origin (the proxies, CA bundle and client
certificate that the environment gives, resolved by ``Session.merge_environment_settings``);
each request is then a ``PreparedRequest`` handed to the session's adapter, without the
environment lookup, settings merge and cookie handling ``Session.request`` repeats per call
(a third of a gate's client time, measured with py-spy). Still within ``requests``: urllib3's
pool, retries and TLS, as before.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from requests.structures import CaseInsensitiveDict
from requests.utils import get_netrc_auth
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


class _Adapter(HTTPAdapter):
    """requests' adapter, keeping what it looks up again for every request to the same origin.

    For each request the adapter parses the url, selects the proxy, checks the CA bundle path
    on disk and asks the pool manager for the pool (about 40 us, a tenth of a request on
    loopback): the answers only change with the origin, the TLS settings and the proxy, which
    key the cache here. A pool closed since (the manager keeps at most ten) is looked up
    again.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pools: dict[tuple[Any, ...], ConnectionPool] = {}
        self._checked: set[tuple[int, Any, Any]] = set()

    def get_connection_with_tls_context(self, request: requests.PreparedRequest,
                                        verify: bool | str | None,
                                        proxies: Mapping[str, str] | None = None,
                                        cert: Any = None) -> ConnectionPool:
        url = request.url or ""
        key = (tuple(url.split("/", 3)[:3]), verify, cert,
               tuple(sorted(proxies.items())) if proxies else ())
        pool = self._pools.get(key)
        if pool is None or getattr(pool, "pool", None) is None:  # closed: its queue is gone
            # A pool let go here may be freed and its id given to the next one: check anew.
            self._checked.clear()
            pool = self._pools[key] = super().get_connection_with_tls_context(
                request, verify, proxies=dict(proxies or {}), cert=cert)
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Once per pool and settings: it sets the pool's TLS attributes from the same values.
        key = (id(conn), verify, cert)
        if key not in self._checked:
            HTTPAdapter.cert_verify(self, conn, url, verify, cert)  # type: ignore[no-untyped-call]
            self._checked.add(key)


@dataclass(frozen=True, slots=True)
class _Origin:
    """The headers and the adapter's keyword arguments of every request to one origin."""

    headers: CaseInsensitiveDict[str]
    send: Mapping[str, Any]


class HttpClient:
    """A requests session for one peer, with the retry, timeout and redirect rules above.

    ``timeout`` is the read timeout of one attempt; connecting gets at most 5 s of it.
    ``retried_methods`` are the methods safe to send again (reads; a POST that only queries);
    they are retried after a failed connect or a 502/503/504, never after a read timeout,
    which would multiply the wait. ``retry_after`` also retries 429 (and honours the header
    on 503) when the server asks to wait no longer than that many seconds. ``verify`` and
    ``cert`` are the TLS settings (a CA bundle path, or False); with ``verify=True`` the
    environment's ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE`` names the
    bundle, as for requests and OpenSSL. ``url``, when given, has its origin's environment
    resolved at once (at backend creation), not at the first request.
    """

    def __init__(self, *, timeout: float, retries: int = 2, backoff: float = 0.5,
                 retried_methods: Collection[str] = ("GET",), pool_maxsize: int = 10,
                 retry_after: float = 0.0, headers: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None, verify: bool | str = True,
                 cert: str | tuple[str, str] | None = None, url: str | None = None) -> None:
        self.timeout = (min(5.0, timeout), timeout)
        retry = _DeadlineRetry(
            total=retries, connect=retries, read=False, status=retries, other=0,
            backoff_factor=backoff,
            status_forcelist=RETRIED_STATUSES + ((429,) if retry_after > 0 else ()),
            allowed_methods=frozenset(m.upper() for m in retried_methods),
            raise_on_status=False, respect_retry_after_header=retry_after > 0)
        retry.retry_after_cap = retry_after
        self._adapter = _Adapter(max_retries=retry, pool_maxsize=pool_maxsize)
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, self._adapter)
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        # Credentials live in the headers, never in the request url, so requests cannot
        # quote them in an exception text. Encoded once, as requests would on every call.
        template = requests.PreparedRequest()
        template.prepare_headers(self.session.headers)
        if auth is not None:
            HTTPBasicAuth(*auth)(template)
        self._headers = template.headers
        self._has_auth = auth is not None or "Authorization" in self._headers
        self._verify, self._cert = verify, cert
        self._origins: dict[str, _Origin] = {}
        self._urls: dict[str, str] = {}
        if url is not None:
            self._origin(url)

    def attempt_timeout(self) -> tuple[float, float]:
        """The (connect, read) timeout of the next attempt, cut to the run deadline."""
        left = time_left()
        if left is None:
            return self.timeout
        return (max(0.001, min(self.timeout[0], left)), max(0.001, min(self.timeout[1], left)))

    def _origin(self, url: str) -> _Origin:
        """What every request to ``url``'s origin shares, resolved on its first use.

        ``NO_PROXY``, the proxy variables and ``~/.netrc`` depend on the host only, so one
        answer holds for every path on it.
        """
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        found = self._origins.get(key)
        if found is not None:
            return found
        merged = self.session.merge_environment_settings(url, {}, False, self._verify,
                                                         self._cert)
        if merged["verify"] is True and os.environ.get("SSL_CERT_FILE"):
            # OpenSSL's variable, which requests alone leaves to certifi's bundle.
            merged["verify"] = os.environ["SSL_CERT_FILE"]
        headers = self._headers
        netrc = get_netrc_auth(url) if not self._has_auth else None
        if netrc is not None:  # as Session.request falls back to ~/.netrc
            template = requests.PreparedRequest()
            template.headers = headers.copy()
            HTTPBasicAuth(*netrc)(template)
            headers = template.headers
        found = self._origins[key] = _Origin(headers, {
            "proxies": merged["proxies"], "verify": merged["verify"], "cert": merged["cert"]})
        return found

    def _checked_url(self, url: str) -> str:
        """``url`` checked and quoted as requests prepares it, once per url."""
        known = self._urls.get(url)
        if known is None:
            prepared = requests.PreparedRequest()
            prepared.prepare_url(url, None)
            known = self._urls[url] = prepared.url or url
        return known

    def prepare(self, method: str, url: str, *, data: Mapping[str, str] | None = None,
                params: Mapping[str, str] | None = None,
                json: Mapping[str, Any] | None = None) -> requests.PreparedRequest:
        """One request: the origin's headers, and the url (checked and quoted once per url)."""
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        if params is None:
            prepared.url = self._checked_url(url)
        else:
            prepared.prepare_url(url, params)
        prepared.headers = self._origin(url).headers.copy()
        prepared.prepare_body(data, None, json)
        return prepared

    def send(self, prepared: requests.PreparedRequest, *,
             timeout: tuple[float, float]) -> requests.Response:
        """Send a prepared request through the adapter, with its retries, and read the body.

        The adapter never follows a redirect (urllib3 is called with ``redirect=False``), so
        a 3xx comes back as the answer; requests' exceptions propagate to the caller. The
        body is read here, as ``Session.send`` does: the connection goes back to the pool,
        and a body that breaks off raises inside the caller's handler.
        """
        assert prepared.url is not None
        response = self._adapter.send(prepared, stream=False, timeout=timeout,
                                      **self._origin(prepared.url).send)
        _ = response.content
        return response

    def post_form(self, url: str, form: Mapping[str, str], *,
                  timeout: tuple[float, float]) -> requests.Response:
        """POST ``form`` url-encoded, with its retries: :meth:`request` without the generic
        body handling, which costs more than the rest of the preparation (measured: 77 us
        against 17 us per request)."""
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = self._checked_url(url)
        prepared.headers = self._origin(url).headers.copy()
        body = urlencode(form)  # ASCII: percent-encoded, as requests sends a form
        prepared.headers["Content-Type"] = "application/x-www-form-urlencoded"
        prepared.headers["Content-Length"] = str(len(body))
        prepared.body = body
        return self.send(prepared, timeout=timeout)

    def request(self, method: str, url: str, *, timeout: tuple[float, float],
                data: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                json: Mapping[str, Any] | None = None) -> requests.Response:
        """Send one request, with its retries; requests' exceptions propagate to the caller.

        The caller takes ``timeout`` from :meth:`attempt_timeout` just before, so that it can
        word a timeout with the value that was really used.
        """
        return self.send(self.prepare(method, url, data=data, params=params, json=json),
                         timeout=timeout)

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
