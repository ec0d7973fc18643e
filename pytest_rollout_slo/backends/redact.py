"""What a backend may show: secrets masked, urls without credentials, foreign text tamed.

A backend knows its secrets (a bearer token, a basic-auth password, credentials embedded in
its url) and builds one :class:`Redactor` from them; every text it hands to the outside
world, above all the text of a ``requests`` exception, which may quote the url it called,
goes through that redactor first. :func:`strip_url_credentials` makes a url fit to show;
:func:`printable` and :func:`exception_text` turn a body or an exception chain into a short
line a person can read in a failure message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

MASK = "***"

# Any ``scheme://userinfo@`` in free text: a url quoted by an exception may carry credentials
# even when the backend never learned them as a setting (a redirect target, for instance).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"<>]+@")


def strip_url_credentials(url: str) -> str:
    """``https://user:pass@host/p`` -> ``https://host/p``; other urls are returned unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def url_credentials(url: str) -> tuple[str, str] | None:
    """The decoded ``(username, password)`` embedded in ``url``, or None when there are none."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def basic_auth_token(username: str, password: str) -> str:
    """The base64 text an ``Authorization: Basic`` header carries, itself a secret."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class Redactor:
    """Replace every known secret in a text with ``***``.

    Each secret is also matched in its url-encoded forms, because exception texts quote urls
    the way they were sent. Longer secrets are replaced first so that a secret containing
    another is not left half visible.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            forms.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
        self._secrets = tuple(sorted(forms, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)

    def __repr__(self) -> str:
        # Never the secrets themselves: a repr ends up in tracebacks and debug logs.
        return f"Redactor(<{len(self._secrets)} secret forms>)"


def printable(data: bytes | str, limit: int = 120) -> str:
    """The first ``limit`` bytes of a body, quoted, on one line, with ``...`` when cut."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw:
        return "an empty body"
    text = raw[:limit].decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f'"{text}..."' if len(raw) > limit else f'"{text}"'


def root_cause(exc: BaseException) -> BaseException:
    """The innermost error: requests wraps urllib3's MaxRetryError, which wraps the OSError."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or getattr(exc, "reason", None)
        if inner is None and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")


def exception_text(exc: BaseException) -> str:
    """The root cause's message without urllib3's ``<... object at 0x...>`` noise."""
    root = root_cause(exc)
    return _OBJECT_REPR.sub("", str(root)).strip() or type(root).__name__


__all__ = [
    "MASK",
    "Redactor",
    "basic_auth_token",
    "exception_text",
    "printable",
    "root_cause",
    "strip_url_credentials",
    "url_credentials",
]
