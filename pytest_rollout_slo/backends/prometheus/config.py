"""Settings of the ``prometheus`` backend: the schema, the checked config, and the checker.

Owns everything between a spec file's ``backends:`` entry and a usable PrometheusConfig:
the Setting schema that spec files are validated against offline, the coercion of
env-resolved values at run time, and a message naming the backend and key for each mistake.
No network and no pytest here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pytest_rollout_slo.backends.freshness import DEFAULT_MAX_AGE
from pytest_rollout_slo.backends.redact import (
    basic_auth_token,
    strip_url_credentials,
    url_credentials,
)
from pytest_rollout_slo.errors import BackendConfigError
from pytest_rollout_slo.quantity import QuantityError, parse_duration
from pytest_rollout_slo.spec.settings import CONTROL_CHARACTER, Setting, has_control_character

UiKind = Literal["prometheus", "vmui", "none"]
UI_CHOICES: tuple[UiKind, ...] = get_args(UiKind)
_OnWarnings = Literal["fail", "ignore"]
_ON_WARNINGS: tuple[_OnWarnings, ...] = get_args(_OnWarnings)
_Choice = TypeVar("_Choice", bound=str)

_PATH = Setting(("string",), help="a file path, relative to the spec file")
SETTINGS: Mapping[str, Setting] = {
    # url, headers and basic_auth may hold credentials: `secret` keeps them out of messages.
    "url": Setting(("string",), required=True, secret=True, help="API root with any path "
                   "prefix, e.g. http://prometheus:9090 or https://mimir.example/prometheus"),
    "headers": Setting(("mapping",), secret=True, help="extra HTTP headers, e.g. X-Scope-OrgID"),
    "bearer_token": Setting(("string",), secret=True, help="sent as Authorization: Bearer"),
    "basic_auth": Setting(("mapping",), secret=True, help="HTTP basic auth", keys={
        "username": Setting(("string",), required=True),
        "password": Setting(("string",), required=True, secret=True),
    }),
    "tls": Setting(("mapping",), help="TLS options", keys={
        "verify": Setting(("boolean", "string"), help="false, or a CA bundle path; default true"),
        "ca_file": _PATH, "cert": _PATH, "key": _PATH,
    }),
    "timeout": Setting(("duration",), help="per query; default 30s"),
    "params": Setting(("mapping",), help="extra query parameters, e.g. dedup for Thanos"),
    "on_warnings": Setting(("string",), choices=_ON_WARNINGS, help="default fail"),
    "max_concurrency": Setting(("integer",), minimum=1,
                               help="queries in flight at once; default 8"),
    "ui": Setting(("string",), choices=UI_CHOICES, help="the graph link in reports: prometheus "
                  "(/graph), vmui (VictoriaMetrics) or none; default prometheus"),
    "check_metrics": Setting(("boolean",), help="before judging, check that every metric a "
                             "query selects has series on the backend; default true"),
    "metric_lookback": Setting(("duration",), help="how far back a metric must have had a "
                               "series for check_metrics; default 7d"),
    "parse_promql": Setting(("boolean",), help="parse every query with Prometheus's grammar "
                            "at collection (false for MetricsQL extensions); default true"),
    "check_freshness": Setting(("boolean",), help="before judging, check that the newest "
                               "sample of every metric a query selects is recent; default true"),
    "freshness": Setting(("mapping",), help="the freshness check's bound", keys={
        "max_age": Setting(("duration",), help="how much older than the evaluation time the "
                           "newest sample may be; default 5m"),
    }),
}

# Header (and query parameter) values that are credentials although no setting declares
# them secret.
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|passw|cookie", re.IGNORECASE)


@dataclass(frozen=True)
class PrometheusConfig:
    """Checked and coerced settings; ``url`` is the API root without credentials."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold keys
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: bool | str = True
    cert: str | tuple[str, str] | None = None
    timeout: float = 30.0
    # May hold an API key although none is declared secret; kept out of the repr too.
    params: Mapping[str, str] = field(default_factory=lambda: {"partial_response": "false"},
                                      repr=False)
    on_warnings: _OnWarnings = "fail"
    max_concurrency: int = 8
    ui: UiKind = "prometheus"
    check_metrics: bool = True
    metric_lookback: float = 7 * 86400.0
    check_freshness: bool = True
    max_age: float = DEFAULT_MAX_AGE

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every text that must never be shown, for the backend's Redactor."""
        found = [self.bearer_token or ""]
        if self.basic_auth:
            found += [self.basic_auth[1], basic_auth_token(*self.basic_auth)]
        found += [v for k, v in self.headers.items() if _SENSITIVE_HEADER.search(k)]
        found += [v for k, v in self.params.items() if _SENSITIVE_HEADER.search(k)]
        return tuple(s for s in found if s)


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
        headers = {name: self.latin1(f"headers.{name}", value)
                   for name, value in self.strings("headers", raw.get("headers", {})).items()}
        bearer = self.secret("bearer_token", raw["bearer_token"]) if "bearer_token" in raw else None
        given = [what for what, present in (
            ("bearer_token", bearer is not None), ("basic_auth", "basic_auth" in raw),
            ("credentials in url", url_auth is not None),
            ("an Authorization header", any(k.lower() == "authorization" for k in headers)),
        ) if present]
        if len(given) > 1:
            raise BackendConfigError(f"backend {self.backend}: {' and '.join(given)} are both "
                                     "set; keep only one way to log in", backend=self.backend)
        basic = self.basic_auth(raw["basic_auth"]) if "basic_auth" in raw else url_auth
        timeout = self.duration("timeout", raw.get("timeout", 30.0))
        on_warnings = self.choice("on_warnings", raw.get("on_warnings", "fail"), _ON_WARNINGS)
        ui = self.choice("ui", raw.get("ui", "prometheus"), UI_CHOICES)
        params = {"partial_response": "false", **self.strings("params", raw.get("params", {}))}
        freshness = raw.get("freshness", {})
        if not isinstance(freshness, Mapping):
            raise self.fail("freshness", "must be a mapping with max_age")
        self.known(freshness, "freshness.", ("max_age",))
        return PrometheusConfig(url, headers, bearer, basic, *self.tls(raw.get("tls", {})),
                                timeout, params, on_warnings,
                                self.positive_int(raw.get("max_concurrency", 8)), ui,
                                self.boolean("check_metrics", raw.get("check_metrics", True)),
                                self.duration("metric_lookback", raw.get("metric_lookback", "7d")),
                                self.boolean("check_freshness", raw.get("check_freshness", True)),
                                self.duration("freshness.max_age",
                                              freshness.get("max_age", DEFAULT_MAX_AGE)))

    def boolean(self, key: str, value: object) -> bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"  # from ${env:...}
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def duration(self, key: str, value: object) -> float:
        try:
            seconds = parse_duration(value)
        except QuantityError as exc:
            raise self.fail(key, str(exc)) from None
        if seconds <= 0:
            raise self.fail(key, "must be longer than 0s")
        return seconds

    def known(self, raw: Mapping[str, Any], prefix: str, keys: tuple[str, ...]) -> None:
        for key in raw:
            if key not in keys:
                raise self.fail(f"{prefix}{key}", "is unknown; expected one of " +
                                ", ".join(k for k in keys if k != "type"))

    def choice(self, key: str, value: object, choices: tuple[_Choice, ...]) -> _Choice:
        for choice in choices:
            if value == choice:
                return choice
        expected = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise self.fail(key, f"is {value!r}; expected {expected}")

    def string(self, key: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        if has_control_character(value):  # e.g. from ${env:...}: refused, never quoted
            raise self.fail(key, CONTROL_CHARACTER)
        return value

    def secret(self, key: str, value: object) -> str:
        """A credential: a line break or control character (a secret file's trailing
        newline, usually) would be quoted back by requests' header check, so refuse it."""
        text = self.string(key, value)
        if text != text.strip():
            raise self.fail(key, "has surrounding spaces (often a trailing newline in the "
                                 "secret); remove them")
        return self.latin1(key, text)

    def latin1(self, key: str, text: str) -> str:
        """HTTP header values are Latin-1: requests would fail on other characters with an
        error that is not about the setting."""
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise self.fail(key, "has a character outside Latin-1, which an HTTP header "
                                 "cannot carry (the value is not shown)") from None
        return text

    def url(self, value: object) -> tuple[str, tuple[str, str] | None]:
        text = self.string("url", value).strip()
        # Without a scheme urlsplit finds no credentials to strip: hide all before the '@'.
        shown = (strip_url_credentials(text) if "://" in text
                 else "***@" + text.rsplit("@", 1)[1] if "@" in text else text)
        parts = urlsplit(text)
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
            if has_control_character(name) or has_control_character(str(item)):
                raise self.fail(f"{key}.{name!r}" if has_control_character(name)
                                else f"{key}.{name}", CONTROL_CHARACTER)
            result[name] = str(item)
        return result

    def basic_auth(self, value: object) -> tuple[str, str]:
        if not isinstance(value, Mapping) or "username" not in value or "password" not in value:
            raise self.fail("basic_auth", "must be a mapping with username and password")
        self.known(value, "basic_auth.", ("username", "password"))
        username = self.string("basic_auth.username", value["username"])
        return (self.latin1("basic_auth.username", username),
                self.secret("basic_auth.password", value["password"]))

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


def check_settings(backend: str, settings: Mapping[str, Any], spec_dir: Path) -> PrometheusConfig:
    """Check env-resolved settings and coerce them; raise BackendConfigError if unusable."""
    return _Checker(backend, spec_dir).config(settings)


__all__ = ["SETTINGS", "UI_CHOICES", "PrometheusConfig", "UiKind", "check_settings"]
