"""Reading the nodes of a spec file: the shape checks every section shares, and their errors.

:class:`SpecReader` is what the loaders of the sections (the file in :mod:`.load`, the
objectives in :mod:`.objectives`, the gates in :mod:`.gates`) use to check a node's kind and
keys and to raise a :class:`SpecError` with file, line and key. The name rules that several
sections apply live here too, once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.quantity import QuantityError, parse_duration, quote
from pytest_rollout_slo.spec.model import Scalar
from pytest_rollout_slo.spec.settings import BackendSchema, QueryCheck
from pytest_rollout_slo.spec.yamlload import YamlList, YamlMap

# Variable and matrix names: what a ${name} placeholder and an SQL :name parameter accept.
# Always matched whole (fullmatch): `$` would also match before a final newline.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
BUILTIN_VARIABLES = ("stage", "service", "at", "window_start", "window_end")
_KEY_LIMIT = 120


class SpecReader:
    """The file being read, the backend types it may name, and the checks on its nodes."""

    def __init__(self, path: Path, backend_types: Mapping[str, BackendSchema]) -> None:
        self.path = path
        self.backend_types = backend_types
        self.query_checks: dict[str, QueryCheck] = {}
        """The query check of each backend of the file whose type has one, by backend name."""

    def error(self, line: int | None, key: str | None, message: str) -> SpecError:
        # A key path holds names from the file; a name can be as long as the file.
        if key is not None and len(key) > _KEY_LIMIT:
            key = f"{key[:_KEY_LIMIT // 2]}...{key[-_KEY_LIMIT // 2:]}"
        return SpecError(self.path, line, key, message)

    # -- generic shape checks -------------------------------------------------------------

    def mapping(self, value: Any, line: int, key: str) -> YamlMap:
        if not isinstance(value, YamlMap):
            raise self.error(line, key,
                             f"must be a mapping (key: value lines), got {kind_of(value)}")
        return value

    def keys(self, node: YamlMap, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.error(node.line_of(key), f"{where}{key}" if where else key,
                                 f"unknown key; accepted keys here: {', '.join(allowed)}")

    def required(self, node: YamlMap, key: str, where: str) -> Any:
        if key not in node:
            raise self.error(node.line, f"{where}{key}", "is required but missing")
        return node[key]

    def string(self, node: YamlMap, key: str, where: str, *, required: bool = False,
               default: str = "") -> str:
        if key not in node:
            if required:
                self.required(node, key, where)
            return default
        value = node[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.error(node.line_of(key), f"{where}{key}",
                             f"must be a non-empty string, got {kind_of(value)}")
        return value

    def variables(self, value: Any, line: int, where: str) -> dict[str, Scalar]:
        if value is None:
            return {}
        node = self.mapping(value, line, where)
        result: dict[str, Scalar] = {}
        for name, item in node.items():
            key = f"{where}.{name}"
            if not VARIABLE_NAME.fullmatch(name) or name in BUILTIN_VARIABLES:
                raise self.error(node.line_of(name), key,
                                 "variable names are letters, digits and _ (not starting with "
                                 "a digit, at most 64) and may not be the built-ins "
                                 f"{', '.join(BUILTIN_VARIABLES)}")
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise self.error(node.line_of(name), key,
                                 f"must be a string or a number, got {kind_of(item)}")
            if isinstance(item, float) and not math.isfinite(item):
                raise self.error(node.line_of(name), key,
                                 f"must be a finite number, got {quote(item)}")
            if name == "window":
                self.window(item, node.line_of(name), key)
            result[name] = item
        return result

    def window(self, value: Any, line: int, key: str) -> float:
        """A ``window`` variable's value, which every query of its objective is evaluated over."""
        try:
            seconds = parse_duration(value)
        except QuantityError as exc:
            raise self.error(line, key, f"window is a duration: {exc}") from exc
        if seconds <= 0:
            raise self.error(line, key, "window is a duration longer than 0s")
        return seconds


def listing(names: Iterable[str], limit: int = 12) -> str:
    """``a, b, c``: names from the file for a message, at most ``limit`` of them shown."""
    names = list(names)
    shown = ", ".join(quote(name, limit=40, bare=True) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def kind_of(value: Any, *, shown: bool = True) -> str:
    """``a number (5)``: the type of a value, and the value itself unless it must not be shown."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, YamlMap):
        return "a mapping"
    if isinstance(value, YamlList):
        return "a list"
    if isinstance(value, bool):
        kind, text = "a boolean", str(value).lower()
    elif isinstance(value, (int, float)):
        kind, text = "a number", quote(value)
    elif isinstance(value, str):
        kind, text = "a string", quote(value)
    else:
        kind, text = f"a {type(value).__name__}", quote(value)  # a date, say
    return f"{kind} ({text})" if shown else kind


__all__ = ["BUILTIN_VARIABLES", "VARIABLE_NAME", "SpecReader", "kind_of", "listing"]
