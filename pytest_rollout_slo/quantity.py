"""Quantities in spec files: ``5%``, ``250ms``, ``10s``, ``1h``, and how values are shown.

The form of a threshold sets its unit (a percentage is a ratio shown as ``6.20%``, a
duration is seconds shown as ``12.4s``), unless the objective sets ``unit:`` itself.
Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
import time
from typing import Literal

Unit = Literal["number", "percent", "seconds"]
UNITS: tuple[Unit, ...] = ("number", "percent", "seconds")

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_PERCENT_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*%$")

DURATION_HELP = "a duration such as 250ms, 10s, 5m, 1h, 1d or 1h30m"
QUANTITY_HELP = "a number (0.05), a percentage (5%) or a duration (250ms, 10s, 5m, 1h, 1d)"


class QuantityError(ValueError):
    """The text is not a quantity; the message says what is accepted."""


def parse_duration(value: object) -> float:
    """Seconds in a duration string (``1h30m`` -> 5400.0); bare numbers are seconds."""
    if isinstance(value, bool):
        raise QuantityError(f"expected {DURATION_HELP}, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise QuantityError(f"expected {DURATION_HELP}, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _DURATION_RE.match(text):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    raise QuantityError(f"expected {DURATION_HELP}, got {value!r}")


def parse_quantity(value: object) -> tuple[float, Unit]:
    """A threshold's value and the unit its form implies."""
    if isinstance(value, bool):
        raise QuantityError(f"expected {QUANTITY_HELP}, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else repr(value)
            raise QuantityError(f"expected {QUANTITY_HELP}, got {shown}")
        return float(value), "number"
    if isinstance(value, str):
        text = value.strip()
        match = _PERCENT_RE.match(text)
        if match:
            return float(match.group(1)) / 100.0, "percent"
        if _DURATION_RE.match(text):
            return parse_duration(text), "seconds"
    raise QuantityError(f"expected {QUANTITY_HELP}, got {value!r}")


def _trim(number: float, decimals: int) -> str:
    text = f"{number:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(value: float | None, unit: Unit) -> str:
    """``6.20%``, ``12.4s``, ``250ms``, ``62``; ``NaN`` and ``no value`` for missing data."""
    if value is None:
        return "no value"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit == "percent":
        return f"{value * 100:.2f}%"
    if unit == "seconds":
        if abs(value) < 1 and value != 0:
            return f"{_trim(value * 1000, 1)}ms"
        return f"{_trim(value, 2)}s"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return _trim(value, 4) if abs(value) >= 1e-4 else f"{value:.4g}"


def format_duration(seconds: float) -> str:
    """A window as people write it: ``6h``, ``90m``, ``1d``, ``30s``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return format_value(seconds, "seconds")


def format_time(at: float) -> str:
    """RFC 3339 in UTC, whole seconds unless the time has a fraction (milliseconds)."""
    millis = round(at * 1000)  # round first, so .9996 s becomes the next whole second
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    return f"{whole}.{millis % 1000:03d}Z" if millis % 1000 else f"{whole}Z"


def json_number(value: float | None) -> float | str | None:
    """A value for JSON, which has no NaN or infinity: strings keep them apart from None."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
