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
from typing import Any
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
    """The base64 text an ``Authorization: Basic`` header carries, itself a secret.

    Encoded as requests encodes it, in Latin-1 (UTF-8 only for what Latin-1 cannot hold):
    a password with an accented letter would otherwise give another text than the one sent.
    """
    pair = f"{username}:{password}"
    try:
        raw = pair.encode("latin-1")
    except UnicodeEncodeError:
        raw = pair.encode()
    return base64.b64encode(raw).decode("ascii")


class Redactor:
    """Replace every known secret in a text with ``***``.

    Each secret is also matched in its url-encoded forms, because exception texts quote urls
    the way they were sent. Longer secrets are replaced first so that a secret containing
    another is not left half visible, and the replacing is repeated until no secret is left
    (a mask next to a secret's first letters can spell it again).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not secret or set(secret) <= set(MASK):
                continue  # a secret of mask characters only could never be masked away
            forms.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
        self._secrets = tuple(sorted(forms, key=len, reverse=True))

    @property
    def active(self) -> bool:
        """Whether there is any secret to mask (the url-credentials rule applies anyway)."""
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        for _ in range(8):
            before = text
            for secret in self._secrets:
                text = text.replace(secret, MASK)
            if text == before:
                break
        if "@" not in text:  # no userinfo to mask: the common case, once per item and link
            return text
        return _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where secrets (and url credentials) are in ``text``, overlapping ones included."""
        found = [(m.start(), m.end()) for m in _URL_USERINFO.finditer(text)]
        for secret in self._secrets:
            start = text.find(secret)
            while start >= 0:
                found.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
        return found

    def cut(self, text: str, limit: int) -> str:
        """The first ``limit`` characters of ``text``, redacted, and never a secret's first
        letters: a cut that would fall inside a secret falls before it instead.

        Redacting after cutting would leave the head of a secret that the cut divided; so
        the spans are found in the whole text first.
        """
        end = limit
        for start, stop in sorted(self.spans(text), reverse=True):
            if start < end < stop:
                end = start
        return self(text[:end])

    def deep(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, tuples, strings) with every string redacted,
        keys included."""
        if isinstance(value, str):
            return self(value) if self._secrets or "@" in value else value
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.deep(v) for v in value)
        return value

    @property
    def longest(self) -> int:
        """Characters in the longest secret form: how far past a cut a secret may reach."""
        return len(self._secrets[0]) if self._secrets else 0

    def __repr__(self) -> str:
        # Never the secrets themselves: a repr ends up in tracebacks and debug logs.
        return f"Redactor(<{len(self._secrets)} secret forms>)"


def printable(data: bytes | str, limit: int = 120, redact: Redactor | None = None) -> str:
    """The first ``limit`` bytes of a body, quoted, on one line, with ``...`` when cut.

    With ``redact``, secrets are masked before the cut, so that a cut through a secret
    cannot show its first characters.
    """
    raw = data.encode() if isinstance(data, str) else data
    if not raw:
        return "an empty body"
    cut = len(raw[:limit].decode("utf-8", "replace"))
    if redact is None:
        text = raw[:limit].decode("utf-8", "replace")
    else:  # up to 4 bytes a character: the window holds any secret that starts before the cut
        text = redact.cut(raw[:limit + 4 * redact.longest + 64].decode("utf-8", "replace"), cut)
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
