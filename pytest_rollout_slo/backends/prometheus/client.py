"""The ``prometheus`` backend: PromQL over the HTTP API of Prometheus and compatible engines.

Owns one HTTP client per backend, the requests it sends, and the link to the query in a
graph UI; what an answer must be to count lives in ``answer``, the settings in ``config``.
Anything that is not a clean, complete answer becomes a BackendError, because a false pass
is the worst thing a gate can do. Thanos, Mimir, Cortex and VictoriaMetrics answer the same
API under a path prefix, which ``url`` carries.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import requests

from pytest_rollout_slo.backends.base import (
    AnyQuery,
    Query,
    QueryResult,
    RangeQuery,
    RequestKey,
    Series,
    promql_request_key,
)
from pytest_rollout_slo.backends.freshness import Freshness, OncePerKey
from pytest_rollout_slo.backends.http import RETRIED_STATUSES, HttpClient, transport_message
from pytest_rollout_slo.backends.prometheus.answer import (
    AnswerError,
    decode,
    envelope_problem,
    instant_samples,
    label_values,
    range_series,
)
from pytest_rollout_slo.backends.prometheus.config import PrometheusConfig
from pytest_rollout_slo.backends.prometheus.metrics import (
    newest_sample_query,
    selected_metrics,
    unknown_metrics,
)
from pytest_rollout_slo.backends.redact import Redactor, printable
from pytest_rollout_slo.errors import BackendError
from pytest_rollout_slo.quantity import format_duration

_HINTS = {401: "; check bearer_token, basic_auth or headers",
          403: "; check bearer_token, basic_auth or headers",
          404: "; check that url is the API root, with any prefix such as /prometheus"}
# vmui shows the hour before the evaluation time as a graph whose last point is the value.
_VMUI_RANGE = "1h"
# How far back the freshness check looks for a metric's newest sample, at least: far enough
# to say how old a stopped scrape is, near enough to stay cheap.
_FRESHNESS_SEARCH = 3600.0
# Answers uncompressed unless the backend's headers ask otherwise: a gate's answers are a few
# series, and gzip cost more than it saved on loopback (measured with Prometheus 2.42: about
# 1 ms of the server's time and 0.2 ms of ours per query, for answers under a kilobyte).
# `headers: {Accept-Encoding: gzip}` restores it for a backend behind a slow link.
_ENCODING = {"Accept-Encoding": "identity"}
_FRESHNESS_HINT = "; set check_freshness: false on the backend to judge without this check"


class _NamesError(Exception):
    """The metric names could not be listed; the text is the message."""


class PrometheusBackend:
    """A Prometheus-compatible API: instant and range queries by POST, with bounded retries."""

    type_name = "prometheus"

    def __init__(self, name: str, config: PrometheusConfig, *, retries: int = 3,
                 retry_backoff: float = 0.5) -> None:
        self.name = name
        self.config = config
        # The metric names of the lookback window, or why they could not be listed.
        self._names: frozenset[str] | str | None = None
        self._names_lock = threading.Lock()
        self._freshness = OncePerKey()
        self.max_concurrency = config.max_concurrency
        self._retries = retries
        self._redact = Redactor(config.secrets)
        self.secrets = config.secrets  # the run masks them in every text it writes
        # Queries are read-only, so their POST may be retried like a GET. Retry-After is not
        # honoured, so that a proxy cannot make the gate wait.
        auth_header = ({"Authorization": f"Bearer {config.bearer_token}"}
                       if config.bearer_token is not None else {})
        self._http = HttpClient(timeout=config.timeout, retries=retries, backoff=retry_backoff,
                                retried_methods=("GET", "POST"),
                                pool_maxsize=config.max_concurrency,
                                headers={**_ENCODING, **config.headers, **auth_header},
                                auth=config.basic_auth,
                                verify=config.verify, cert=config.cert, url=config.url)

    def describe(self) -> str:
        return self._redact(f"prometheus, {self.config.url}")

    def request_key(self, query: AnyQuery) -> RequestKey:
        """The text and the times: the form holds nothing else that varies by query."""
        return promql_request_key(query)

    def query(self, query: Query) -> QueryResult:
        form = {"query": query.text, "time": _unix(query.at)}
        data, warnings = self._post("/api/v1/query", form, query.text)
        try:
            result = QueryResult(instant_samples(data, query.at), warnings)
        except AnswerError as exc:
            raise self._error(str(exc), query.text) from None
        # After the answer, so that a server that is down is reported as such, by the query.
        self._check_metrics(query.text, query.at)
        self._check_freshness(query.text, query.at)
        return result

    def query_range(self, query: RangeQuery) -> tuple[Series, ...]:
        form = {"query": query.text, "start": _unix(query.start), "end": _unix(query.end),
                "step": _unix(query.step)}
        data, _ = self._post("/api/v1/query_range", form, query.text)
        try:
            series = range_series(data, query.start, query.end, query.step)
        except AnswerError as exc:
            raise self._error(str(exc), query.text) from None
        self._check_metrics(query.text, query.end)
        self._check_freshness(query.text, query.end)
        return series

    def graph_url(self, query: Query) -> str | None:
        """The query at its evaluation time in the UI that ``ui`` names; None for ``none``."""
        if self.config.ui == "none":
            return None
        moment = datetime.fromtimestamp(query.at, timezone.utc)
        if self.config.ui == "vmui":
            return self._redact(_vmui_url(self.config.url, query.text, moment))
        # The part after the query is the same for every objective of the run: made once.
        tail = _graph_tail(moment)
        return self._redact(f"{self.config.url}/graph?g0.expr={quote(query.text, safe='')}{tail}")

    def close(self) -> None:
        self._http.close()

    def _check_metrics(self, text: str, at: float) -> None:
        """BackendError when ``text`` selects a metric the backend has no series of."""
        if not self.config.check_metrics:
            return
        with self._names_lock:  # one lookup per backend and run, whatever the concurrency
            if self._names is None:
                try:
                    self._names = self._metric_names(at)
                except _NamesError as exc:
                    self._names = str(exc)  # failed once: not asked again for every query
        if isinstance(self._names, str):
            raise self._error(self._names, text)
        problem = unknown_metrics(text, self._names, format_duration(self.config.metric_lookback))
        if problem:
            raise self._error(problem, text)

    def _check_freshness(self, text: str, at: float) -> None:
        """BackendError when the newest sample of a metric ``text`` selects is too old."""
        if not self.config.check_freshness:
            return
        for name in sorted(selected_metrics(text) or ()):
            found = self._freshness.get((name, at), functools.partial(self._newest, name, at))
            problem = found.problem(f"scraping may have stopped{_FRESHNESS_HINT}")
            if problem:
                raise self._error(problem, text)

    def freshness(self) -> list[Freshness]:
        """The freshness of every metric checked so far in this run, for the evidence."""
        return self._freshness.results()

    def freshness_for(self, text: str, at: float) -> list[Freshness]:
        """The freshness of the metrics ``text`` selects at ``at``, as far as checked."""
        found = (self._freshness.found((name, at)) for name in sorted(selected_metrics(text) or ()))
        return [item for item in found if item is not None]

    def _newest(self, name: str, at: float) -> Freshness:
        """The newest sample of any series of ``name`` at or before ``at``: one query."""
        searched = max(_FRESHNESS_SEARCH, 2 * self.config.max_age)
        text = newest_sample_query(name, searched)
        try:
            data, _ = self._post("/api/v1/query", {"query": text, "time": _unix(at)}, text)
            samples = instant_samples(data, at)
        except (BackendError, AnswerError) as exc:
            message = exc.message if isinstance(exc, BackendError) else str(exc)
            raise self._error(f"checking that the metric {name} is recent failed: "
                              f"{message}{_FRESHNESS_HINT}", text) from None
        values = [sample.value for sample in samples if sample.value is not None]
        if len(samples) > 1 or len(values) != len(samples):
            raise self._error(f"checking that the metric {name} is recent returned "
                              f"{len(samples)} samples, not one timestamp{_FRESHNESS_HINT}", text)
        return Freshness(f"the metric {name}", values[0] if values else None, at,
                         self.config.max_age, searched)

    def _metric_names(self, at: float) -> frozenset[str]:
        endpoint = f"{self.config.url}/api/v1/label/__name__/values"
        params = {"start": _unix(at - self.config.metric_lookback), "end": _unix(at)}
        timeout = self._http.attempt_timeout()
        hint = ("; set check_metrics: false on the backend if it does not serve this "
                "endpoint")
        try:
            response = self._http.request("GET", endpoint, params=params, timeout=timeout)
        except requests.RequestException as exc:
            raise _NamesError(f"{transport_message(exc, endpoint, timeout)}, listing the metric "
                              "names to check that the query's metrics exist") from exc
        try:
            names = label_values(response.status_code, response.content,
                                 response.headers.get("Content-Type"))
        except AnswerError as exc:
            raise _NamesError(f"listing the metric names at {endpoint} (to check that the "
                              f"query's metrics exist) failed: {exc}{hint}") from None
        return frozenset(names)

    def _error(self, message: str, query: str) -> BackendError:
        return BackendError(self._redact(message), backend=self.name, query=query)

    def _post(self, path: str, form: Mapping[str, str],
              query: str) -> tuple[Mapping[str, Any], tuple[str, ...]]:
        """The ``data`` and ``warnings`` of a successful answer; BackendError for anything else."""
        endpoint = self.config.url + path
        timeout = self._http.attempt_timeout()
        try:
            response = self._http.post_form(endpoint, {**self.config.params, **form},
                                            timeout=timeout)
        except requests.RequestException as exc:
            raise self._error(transport_message(exc, endpoint, timeout), query) from exc
        status = response.status_code
        content_type = response.headers.get("Content-Type") or "no content type"
        try:
            payload: object = decode(response.content, response.headers.get("Content-Type"))
            problem: str | None = None
        except AnswerError as exc:
            payload, problem = None, str(exc)
        if status != 200:
            # The API answers a success with 200 only; a 201, 203 or 206 with a success body
            # comes from something in between (a cache, a proxy) and is not trusted.
            raise self._error(self._http_message(response, payload, endpoint), query)
        if problem is not None:
            why = f"; {problem}" if problem else ""
            raise self._error(f"{endpoint} answered HTTP {status} with a body that is not valid "
                              f"JSON ({content_type}{why}): {self._body(response)}", query)
        shape = envelope_problem(payload)
        if shape or not isinstance(payload, dict):
            raise self._error(f"{endpoint} answered HTTP {status} with JSON that is not a "
                              f"Prometheus API answer ({shape}): {self._body(response)}", query)
        if payload["status"] == "error":
            raise self._error(f"the server answered with an error: {_reason(payload)}", query)
        warnings = tuple(payload.get("warnings") or ())
        if warnings and self.config.on_warnings == "fail":
            raise self._error("the server answered with warnings, so the answer may be partial: "
                              f"{'; '.join(warnings)} (on_warnings: ignore accepts such answers)",
                              query)
        return payload["data"], warnings

    def _body(self, response: requests.Response) -> str:
        """The answer's body as a message quotes it: printable, cut short, secrets masked."""
        return printable(response.content, redact=self._redact)

    def _http_message(self, response: requests.Response, payload: object, endpoint: str) -> str:
        status, phrase = response.status_code, response.reason or "(no reason phrase)"
        if isinstance(payload, dict) and "error" in payload:
            reason = _reason(payload)
        else:
            reason = (f"{response.headers.get('Content-Type') or 'no content type'} body "
                      f"{self._body(response)}")
        if status in (400, 422):
            return f"the server rejected the query (HTTP {status} {phrase}): {reason}"
        if 300 <= status < 400:
            return (f"{endpoint} answered HTTP {status} {phrase}, a redirect to "
                    f"{response.headers.get('Location', '?')}; set url to where it redirects")
        # Count the attempts really made: the run deadline may have cut the retries short.
        history = getattr(getattr(response.raw, "retries", None), "history", None)
        attempts = len(history) + 1 if history is not None else self._retries + 1
        after = f" after {attempts} attempts" if status in RETRIED_STATUSES and attempts > 1 else ""
        hint = _HINTS.get(status, "")
        return f"{endpoint} answered HTTP {status} {phrase}{after}: {reason}{hint}"


@functools.lru_cache(maxsize=64)
def _graph_tail(moment: datetime) -> str:
    """The Prometheus UI's arguments after ``g0.expr``: the table tab at ``moment``."""
    return "&" + urlencode({"g0.tab": "1", "g0.moment_input": moment.strftime("%Y-%m-%d %H:%M:%S")},
                           quote_via=quote)


def _vmui_url(url: str, text: str, moment: datetime) -> str:
    """VictoriaMetrics' web UI showing ``text`` up to ``moment``.

    vmui is served beside the API, not under its ``/prometheus`` prefix: at ``/vmui/`` on a
    single node and at ``/select/<accountID>/vmui/`` on a cluster's vmselect. It is a single
    page app that reads its state from the URL fragment: ``g0.expr`` (the query),
    ``g0.range_input`` (the duration shown), ``g0.end_input`` (UTC, ``YYYY-MM-DDTHH:MM:SS``)
    and ``g0.relative_time``, which must be ``none`` or the UI ignores ``end_input`` and shows
    the last 30 minutes. The graph tab is the UI's default and the right one: its table tab
    sends an instant query without ``time``, which VictoriaMetrics answers for now.
    """
    root = re.sub(r"/prometheus$", "", url)
    args = {"g0.expr": text, "g0.range_input": _VMUI_RANGE,
            "g0.end_input": moment.strftime("%Y-%m-%dT%H:%M:%S"), "g0.relative_time": "none"}
    return f"{root}/vmui/#/?{urlencode(args, quote_via=quote)}"


def _unix(seconds: float) -> str:
    """Unix seconds as the API parses them, to the millisecond it stores."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _reason(payload: Mapping[str, Any]) -> str:
    error = str(payload.get("error") or "no error message")
    return f"{payload['errorType']}: {error}" if payload.get("errorType") else error


__all__ = ["PrometheusBackend"]
