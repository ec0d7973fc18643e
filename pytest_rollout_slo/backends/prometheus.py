"""The ``prometheus`` backend: PromQL over the HTTP API of Prometheus and compatible engines.

Owns the backend's settings, one HTTP session per backend, and the exact mapping of API
answers to samples. Anything that is not a clean, complete answer becomes a BackendError,
because a false pass is the worst thing a gate can do. Thanos, Mimir, Cortex and
VictoriaMetrics answer the same API under a path prefix, which ``url`` carries.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry

from pytest_rollout_slo.backends import Query, QueryResult, RangeQuery, Sample, Series, Setting
from pytest_rollout_slo.errors import BackendConfigError, BackendError
from pytest_rollout_slo.quantity import QuantityError, format_duration, parse_duration
from pytest_rollout_slo.redact import (
    Redactor,
    basic_auth_token,
    exception_text,
    printable,
    root_cause,
    strip_url_credentials,
    url_credentials,
)

_PATH = Setting(("string",), help="a file path, relative to the spec file")
SETTINGS: Mapping[str, Setting] = {
    "url": Setting(("string",), required=True, help="API root with any path prefix, e.g. "
                   "http://prometheus:9090 or https://mimir.example/prometheus"),
    "headers": Setting(("mapping",), help="extra HTTP headers, e.g. X-Scope-OrgID"),
    "bearer_token": Setting(("string",), secret=True, help="sent as Authorization: Bearer"),
    "basic_auth": Setting(("mapping",), help="HTTP basic auth", keys={
        "username": Setting(("string",), required=True),
        "password": Setting(("string",), required=True, secret=True),
    }),
    "tls": Setting(("mapping",), help="TLS options", keys={
        "verify": Setting(("boolean", "string"), help="false, or a CA bundle path; default true"),
        "ca_file": _PATH, "cert": _PATH, "key": _PATH,
    }),
    "timeout": Setting(("duration",), help="per query; default 30s"),
    "params": Setting(("mapping",), help="extra query parameters, e.g. dedup for Thanos"),
    "on_warnings": Setting(("string",), choices=("fail", "ignore"), help="default fail"),
    "max_concurrency": Setting(("integer",), help="queries in flight at once; default 8"),
}

# Header values that are credentials although no setting declares them secret.
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|passw|cookie", re.IGNORECASE)
_RETRIED = (502, 503, 504)
_HINTS = {401: "; check bearer_token, basic_auth or headers",
          403: "; check bearer_token, basic_auth or headers",
          404: "; check that url is the API root, with any prefix such as /prometheus"}


@dataclass(frozen=True)
class PrometheusConfig:
    """Checked and coerced settings; ``url`` is the API root without credentials."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: bool | str = True
    cert: str | tuple[str, str] | None = None
    timeout: float = 30.0
    params: Mapping[str, str] = field(default_factory=lambda: {"partial_response": "false"})
    on_warnings: Literal["fail", "ignore"] = "fail"
    max_concurrency: int = 8

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every text that must never be shown, for the backend's Redactor."""
        found = [self.bearer_token or ""]
        if self.basic_auth:
            found += [self.basic_auth[1], basic_auth_token(*self.basic_auth)]
        found += [v for k, v in self.headers.items() if _SENSITIVE_HEADER.search(k)]
        return tuple(s for s in found if s)


class PrometheusType:
    """The ``prometheus`` backend type: its settings and how to make a backend from them."""

    name = "prometheus"
    language = "promql"
    settings: Mapping[str, Setting] = SETTINGS

    def create(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> PrometheusBackend:
        return PrometheusBackend(name, self.config(name, settings, spec_dir))

    def config(self, name: str, settings: Mapping[str, Any], spec_dir: Path) -> PrometheusConfig:
        """Check env-resolved settings and coerce them; raise BackendConfigError if unusable."""
        return _Checker(name, spec_dir).config(settings)


PROMETHEUS = PrometheusType()


class _Checker:
    """Turns raw settings into a PrometheusConfig, naming the backend and key on any mistake."""

    def __init__(self, backend: str, spec_dir: Path) -> None:
        self.backend = backend
        self.spec_dir = spec_dir

    def fail(self, key: str, problem: str) -> BackendConfigError:
        return BackendConfigError(f"backend {self.backend}: setting {key} {problem}",
                                  backend=self.backend)

    def config(self, raw: Mapping[str, Any]) -> PrometheusConfig:
        self.known(raw, "", (*SETTINGS, "type"))
        url, url_auth = self.url(raw.get("url"))
        headers = self.strings("headers", raw.get("headers", {}))
        bearer = self.string("bearer_token", raw["bearer_token"]) if "bearer_token" in raw else None
        given = [what for what, present in (
            ("bearer_token", bearer is not None), ("basic_auth", "basic_auth" in raw),
            ("credentials in url", url_auth is not None),
            ("an Authorization header", any(k.lower() == "authorization" for k in headers)),
        ) if present]
        if len(given) > 1:
            raise BackendConfigError(f"backend {self.backend}: {' and '.join(given)} are both "
                                     "set; keep only one way to log in", backend=self.backend)
        basic = self.basic_auth(raw["basic_auth"]) if "basic_auth" in raw else url_auth
        try:
            timeout = parse_duration(raw.get("timeout", 30.0))
        except QuantityError as exc:
            raise self.fail("timeout", str(exc)) from None
        if timeout <= 0:
            raise self.fail("timeout", "must be longer than 0s")
        on_warnings = raw.get("on_warnings", "fail")
        if on_warnings not in ("fail", "ignore"):
            raise self.fail("on_warnings", f"is {on_warnings!r}; expected fail or ignore")
        params = {"partial_response": "false", **self.strings("params", raw.get("params", {}))}
        return PrometheusConfig(url, headers, bearer, basic, *self.tls(raw.get("tls", {})),
                                timeout, params, on_warnings,
                                self.positive_int(raw.get("max_concurrency", 8)))

    def known(self, raw: Mapping[str, Any], prefix: str, keys: tuple[str, ...]) -> None:
        for key in raw:
            if key not in keys:
                raise self.fail(f"{prefix}{key}", "is unknown; expected one of " +
                                ", ".join(k for k in keys if k != "type"))

    def string(self, key: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        return value

    def url(self, value: object) -> tuple[str, tuple[str, str] | None]:
        text = self.string("url", value).strip()
        shown, parts = strip_url_credentials(text), urlsplit(text)
        try:  # urlsplit checks the port only when asked for it
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid:
            raise self.fail("url", f"{shown!r} is not a valid http:// or https:// url; write it "
                            "like http://prometheus:9090 or https://mimir.example/prometheus")
        if parts.query or parts.fragment:
            raise self.fail("url", f"{shown!r} has a query string; put parameters under params")
        if re.search(r"/api/v1(/query(_range)?)?/?$", parts.path):
            raise self.fail("url", f"{shown!r} ends in an API path; give the root that "
                            "/api/v1/query is appended to")
        return shown.rstrip("/"), url_credentials(text)

    def strings(self, key: str, value: object) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping of names to strings, got "
                            f"{type(value).__name__}")
        result: dict[str, str] = {}
        for name, item in value.items():
            if isinstance(item, bool):
                item = "true" if item else "false"  # what Thanos and VictoriaMetrics parse
            if not isinstance(name, str) or not isinstance(item, (str, int, float)):
                raise self.fail(f"{key}.{name}", "must be a string")
            result[name] = str(item)
        return result

    def basic_auth(self, value: object) -> tuple[str, str]:
        if not isinstance(value, Mapping) or "username" not in value or "password" not in value:
            raise self.fail("basic_auth", "must be a mapping with username and password")
        self.known(value, "basic_auth.", ("username", "password"))
        return (self.string("basic_auth.username", value["username"]),
                self.string("basic_auth.password", value["password"]))

    def tls(self, value: object) -> tuple[bool | str, str | tuple[str, str] | None]:
        if not isinstance(value, Mapping):
            raise self.fail("tls", "must be a mapping with verify, ca_file, cert or key")
        self.known(value, "tls.", ("verify", "ca_file", "cert", "key"))
        verify: bool | str = value.get("verify", True)
        # An env-resolved setting is always text, so "false" must still mean false.
        if isinstance(verify, str) and verify.strip().lower() in ("true", "false"):
            verify = verify.strip().lower() == "true"
        if isinstance(verify, str):
            verify = self.path("tls.verify", verify)
        elif not isinstance(verify, bool):
            raise self.fail("tls.verify", "must be true, false or a CA bundle path")
        if "ca_file" in value:
            if verify is not True:
                raise self.fail("tls.ca_file", "conflicts with tls.verify; set only one of them")
            verify = self.path("tls.ca_file", value["ca_file"])
        if "key" in value and "cert" not in value:
            raise self.fail("tls.key", "needs tls.cert, the client certificate it belongs to")
        cert = self.path("tls.cert", value["cert"]) if "cert" in value else None
        if cert is not None and "key" in value:
            return verify, (cert, self.path("tls.key", value["key"]))
        return verify, cert

    def path(self, key: str, value: object) -> str:
        path = self.spec_dir / Path(self.string(key, value)).expanduser()
        if not path.is_file():
            raise self.fail(key, f"names {path}, which is not a file")
        return str(path)

    def positive_int(self, value: object) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail("max_concurrency", f"must be a whole number >= 1, got {value!r}")
        return value


class _AnswerError(Exception):
    """The answer cannot be trusted; the text is the whole BackendError message."""


class PrometheusBackend:
    """A Prometheus-compatible API: instant and range queries by POST, with bounded retries."""

    type_name = "prometheus"

    def __init__(self, name: str, config: PrometheusConfig, *, retries: int = 3,
                 retry_backoff: float = 0.5) -> None:
        self.name = name
        self.config = config
        self.max_concurrency = config.max_concurrency
        self._retries = retries
        self._redact = Redactor(config.secrets)
        self._timeout = (min(5.0, config.timeout), config.timeout)
        # Queries are read-only, so POST may be retried, but only after a failed connect or an
        # answer that says "try again"; never a 4xx, nor a read timeout, which would multiply
        # the wait. Retry-After is ignored so that a proxy cannot make the gate hang.
        retry = Retry(total=retries, connect=retries, read=False, status=retries, other=0,
                      backoff_factor=retry_backoff, status_forcelist=_RETRIED,
                      allowed_methods=frozenset({"GET", "POST"}), raise_on_status=False,
                      respect_retry_after_header=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=config.max_concurrency)
        self._session = requests.Session()
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, adapter)
        self._session.headers.update({"Accept": "application/json", **config.headers})
        if config.bearer_token is not None:
            self._session.headers["Authorization"] = f"Bearer {config.bearer_token}"
        # Credentials live here, never in the request url, so requests cannot quote them.
        self._session.auth = config.basic_auth

    def describe(self) -> str:
        return self._redact(f"prometheus, {self.config.url}")

    def query(self, query: Query) -> QueryResult:
        form = {"query": query.text, "time": _unix(query.at)}
        data, warnings = self._post("/api/v1/query", form, query.text)
        try:
            return QueryResult(_instant_samples(data), warnings)
        except _AnswerError as exc:
            raise self._error(str(exc), query.text) from None

    def query_range(self, query: RangeQuery) -> tuple[Series, ...]:
        form = {"query": query.text, "start": _unix(query.start), "end": _unix(query.end),
                "step": _unix(query.step)}
        data, _ = self._post("/api/v1/query_range", form, query.text)
        try:
            if data["resultType"] != "matrix":
                raise _AnswerError(f"a range query returned a {data['resultType']!r} result, "
                                   "not a matrix")
            return tuple(Series(_labels(s), _points(s)) for s in _items(data["result"]))
        except _AnswerError as exc:
            raise self._error(str(exc), query.text) from None

    def graph_url(self, query: Query) -> str:
        moment = datetime.fromtimestamp(query.at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        args = {"g0.expr": query.text, "g0.tab": "1", "g0.moment_input": moment}
        return self._redact(f"{self.config.url}/graph?{urlencode(args, quote_via=quote)}")

    def close(self) -> None:
        self._session.close()

    def _error(self, message: str, query: str) -> BackendError:
        return BackendError(self._redact(message), backend=self.name, query=query)

    def _post(self, path: str, form: Mapping[str, str],
              query: str) -> tuple[Mapping[str, Any], tuple[str, ...]]:
        """The ``data`` and ``warnings`` of a successful answer; BackendError for anything else."""
        endpoint = self.config.url + path
        try:
            # verify and cert go with each request because requests lets REQUESTS_CA_BUNDLE
            # override a session-level CA path, which would silently drop tls.ca_file.
            response = self._session.post(
                endpoint, data={**self.config.params, **form}, timeout=self._timeout,
                verify=self.config.verify, cert=self.config.cert, allow_redirects=False)
        except requests.RequestException as exc:
            raise self._error(_transport_message(exc, endpoint, self._timeout), query) from exc
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        status, body = response.status_code, printable(response.content)
        content_type = response.headers.get("Content-Type") or "no content type"
        if not 200 <= status < 300:
            raise self._error(self._http_message(response, payload, endpoint), query)
        if payload is None:
            raise self._error(f"{endpoint} answered HTTP {status} with a body that is not valid "
                              f"JSON ({content_type}): {body}", query)
        problem = _envelope_problem(payload)
        if problem:
            raise self._error(f"{endpoint} answered HTTP {status} with JSON that is not a "
                              f"Prometheus API answer ({problem}): {body}", query)
        if payload["status"] == "error":
            raise self._error(f"the server answered with an error: {_reason(payload)}", query)
        warnings = payload.get("warnings") or ()
        warnings = tuple(str(w) for w in ([warnings] if isinstance(warnings, str) else warnings))
        if warnings and self.config.on_warnings == "fail":
            raise self._error("the server answered with warnings, so the answer may be partial: "
                              f"{'; '.join(warnings)} (on_warnings: ignore accepts such answers)",
                              query)
        return payload["data"], warnings

    def _http_message(self, response: requests.Response, payload: object, endpoint: str) -> str:
        status, phrase = response.status_code, response.reason or "(no reason phrase)"
        if isinstance(payload, dict) and "error" in payload:
            reason = _reason(payload)
        else:
            reason = (f"{response.headers.get('Content-Type') or 'no content type'} body "
                      f"{printable(response.content)}")
        if status in (400, 422):
            return f"the server rejected the query (HTTP {status} {phrase}): {reason}"
        if 300 <= status < 400:
            return (f"{endpoint} answered HTTP {status} {phrase}, a redirect to "
                    f"{response.headers.get('Location', '?')}; set url to where it redirects")
        after = f" after {self._retries + 1} attempts" if status in _RETRIED else ""
        hint = _HINTS.get(status, "")
        return f"{endpoint} answered HTTP {status} {phrase}{after}: {reason}{hint}"


def _unix(seconds: float) -> str:
    """Unix seconds as the API parses them, to the millisecond it stores."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    spec = "seconds" if seconds == int(seconds) else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _reason(payload: Mapping[str, Any]) -> str:
    error = str(payload.get("error") or "no error message")
    return f"{payload['errorType']}: {error}" if payload.get("errorType") else error


def _envelope_problem(payload: object) -> str:
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        return 'no "status" of success or error'
    data = payload.get("data")
    if payload["status"] == "success" and not (
            isinstance(data, dict) and isinstance(data.get("resultType"), str)
            and "result" in data):
        return 'no "data" with "resultType" and "result"'
    return ""


def _instant_samples(data: Mapping[str, Any]) -> tuple[Sample, ...]:
    kind, result = data["resultType"], data["result"]
    if kind == "vector":
        return tuple(Sample(_labels(item), _pair(_field(item, "value"))[1])
                     for item in _items(result))
    if kind == "scalar":
        return (Sample((), _pair(result)[1]),)
    if kind == "matrix":
        # An instant query over a range selector: every point must hold, so each one is a
        # sample whose "@" label says when it was taken.
        return tuple(Sample(tuple(sorted((*_labels(item), ("@", _rfc3339(t))))), value)
                     for item in _items(result) for t, value in _points(item))
    if kind == "string":
        shown = _pair(result, number=False)[1]
        raise _AnswerError(f"the query returned a string ({shown!r}), not a number")
    raise _AnswerError(f"the server returned an unknown result type {kind!r}")


def _items(result: object) -> list[Mapping[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(i, dict) for i in result):
        raise _AnswerError(f"the server returned a malformed result: {str(result)[:120]}")
    return result


def _labels(item: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    metric = item.get("metric", {})
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise _AnswerError(f"the server returned malformed labels: {str(metric)[:120]}")
    return tuple(sorted(metric.items()))


def _field(item: Mapping[str, Any], key: str) -> Any:
    if "histogram" in item or "histograms" in item:
        raise _AnswerError("the query returned a native histogram, not a number; wrap it in "
                           "histogram_quantile(), histogram_count() or histogram_sum()")
    if key not in item:
        raise _AnswerError(f"the server returned a series without {key!r}: {str(item)[:120]}")
    return item[key]


def _points(item: Mapping[str, Any]) -> tuple[tuple[float, float], ...]:
    values = _field(item, "values")
    if not isinstance(values, list):
        raise _AnswerError(f"the server returned malformed values: {str(values)[:120]}")
    return tuple(_pair(point) for point in values)


def _pair(point: object, *, number: bool = True) -> tuple[float, Any]:
    """``[1700000000.5, "0.25"]`` -> ``(1700000000.5, 0.25)``; ``"NaN"`` and ``"+Inf"`` kept."""
    if (not isinstance(point, list) or len(point) != 2 or isinstance(point[0], bool)
            or not isinstance(point[0], (int, float))):
        raise _AnswerError(f"the server returned a malformed [time, value] pair: "
                           f"{str(point)[:120]}")
    raw = point[1]
    if not number:
        return float(point[0]), raw
    if isinstance(raw, str) or (isinstance(raw, (int, float)) and not isinstance(raw, bool)):
        try:
            return float(point[0]), float(raw)
        except ValueError:
            pass
    raise _AnswerError(f"the server returned the value {raw!r}, which is not a number")


def _transport_message(exc: requests.RequestException, endpoint: str,
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


__all__ = ["PROMETHEUS", "SETTINGS", "PrometheusBackend", "PrometheusConfig", "PrometheusType"]
