"""What a spec file may say about a backend: the settings a backend type accepts.

A backend type declares its settings as :class:`Setting` values; the spec loader checks a
file's ``backends:`` against them offline, at collection, and the JSON Schema is built from
them. The loader knows backend types only through :class:`BackendSchema`, which the types
of ``pytest_rollout_slo.backends`` satisfy, so the spec layer never imports a backend.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

SettingKind = Literal["string", "integer", "number", "boolean", "duration", "mapping"]


@dataclass(frozen=True)
class Setting:
    """One accepted key of a backend's settings, used to validate spec files offline.

    ``kinds`` lists the accepted YAML types (``tls.verify`` takes a boolean or a path).
    For a ``mapping``, ``keys`` is the nested schema; ``None`` accepts any string keys with
    string values (``headers``, ``params``). ``secret`` marks a setting that holds or may
    hold a credential (a token, a password, ``basic_auth``, ``headers``, a url with a login):
    its value is never quoted in a message, whatever its type.
    """

    kinds: tuple[SettingKind, ...]
    required: bool = False
    choices: tuple[str, ...] = ()
    keys: Mapping[str, Setting] | None = None
    secret: bool = False
    help: str = ""
    minimum: int | None = None
    """The least value an ``integer`` or ``number`` setting takes (a duration is always
    longer than 0s)."""


class BackendSchema(Protocol):
    """A backend type as the spec loader sees it: its name in specs and its settings.

    A type may also set ``language = "promql"`` (or ``"sql"``): spec keys that expand to a
    query language, such as ``histogram_quantile``, are accepted only on a matching type.

    A type may also define ``query_check(settings) -> QueryCheck``: the loader calls it once
    per backend with the settings as written (``${env:...}`` unresolved) and runs the check
    on every query the backend's objectives resolve to, at every stage; a problem it names
    is a spec error on the query's line. ``query_check`` raises :class:`SettingProblem` when
    the settings alone say the queries cannot be checked.
    """

    name: str
    settings: Mapping[str, Setting]


QueryCheck = Callable[[str], "str | None"]
"""What is wrong with one resolved query text, or None when nothing is."""


class SettingProblem(Exception):
    """A backend setting that makes its queries impossible to check offline."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


CONTROL_CHARACTER = ("contains a control character (a line break, a tab or another character "
                     "that does not print, often the trailing newline of a secret file or "
                     "variable); remove it (the value is not shown, as it may be a secret)")
"""The message for :func:`has_control_character`: names the problem, never the value."""


_UNPRINTED = frozenset(("Cc", "Cf", "Zl", "Zp"))


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a character that does not print (Unicode's Cc, Cf, Zl, Zp).

    Such a setting value is refused rather than used: sent in an HTTP header it makes
    requests raise an error that quotes the whole value, a secret included.
    """
    return any(unicodedata.category(c) in _UNPRINTED for c in text)


class SettingValues(dict[str, Any]):
    """A backend's settings as written or resolved: a plain dict whose repr names the keys
    and hides every value, so a traceback, a log line or ``-l`` never shows a credential."""

    def __repr__(self) -> str:
        return f"SettingValues({', '.join(f'{k}=***' for k in self)})"

    __str__ = __repr__


__all__ = ["CONTROL_CHARACTER", "BackendSchema", "QueryCheck", "Setting", "SettingKind",
           "SettingProblem", "SettingValues", "has_control_character"]
