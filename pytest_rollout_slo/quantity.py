"""Quantities in spec files: ``5%``, ``250ms``, ``10s``, ``1h``, and how values are shown.

The form of a threshold sets its unit (a percentage is a ratio shown as ``6.20%``, a
duration is seconds shown as ``12.4s``), unless the objective sets ``unit:`` itself.
Pure functions, no I/O. Texts are read as exact decimals (``99.9%`` is 0.999, not
0.9990000000000001), only in ASCII digits, and only as long and as large as a person means.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

Unit = Literal["number", "percent", "seconds"]
UNITS: tuple[Unit, ...] = ("number", "percent", "seconds")

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# ASCII digits only: `\d` would also take full-width and other scripts' digits.
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_DURATION_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d|w))+")
_PERCENT_RE = re.compile(r"([+-]?[0-9]+(?:\.[0-9]+)?)\s*%")
_MAX_TEXT = 40
MAX_DURATION = 3650 * 86400.0
"""Ten years: a window or an offset longer than that is a typo, and far past what a time
series database keeps."""

DURATION_HELP = "a duration such as 250ms, 10s, 5m, 1h, 1d or 1h30m"
QUANTITY_HELP = "a number (0.05), a percentage (5%) or a duration (250ms, 10s, 5m, 1h, 1d)"
_QUOTE_LIMIT = 60


class QuantityError(ValueError):
    """The text is not a quantity; the message says what is accepted."""


def quote(value: object, *, limit: int = _QUOTE_LIMIT, bare: bool = False) -> str:
    """A value as an error message shows it: its repr cut to about ``limit`` characters.

    A mapping or a list is named, never shown (an alias can make it huge), and a string is
    cut before its repr is taken. ``bare`` shows a string without quotes (a key in a path).
    """
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "a list"
    if isinstance(value, str):
        cut = value[:limit]
        shown = cut if bare else repr(cut)
        return shown if len(value) <= limit else f"{shown}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def parse_duration(value: object) -> float:
    """Seconds in a duration string (``1h30m`` -> 5400.0); bare numbers are seconds.

    At most :data:`MAX_DURATION`; never negative, NaN or infinite.
    """
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _finite(value)
    elif isinstance(value, str) and len(value) <= _MAX_TEXT:
        text = value.strip()
        if _DURATION_RE.fullmatch(text):
            seconds = float(sum(Decimal(n) * Decimal(repr(_DURATION_UNITS[u]))
                                for n, u in _DURATION_PART.findall(text)))
    if seconds is None or seconds < 0:
        raise QuantityError(f"expected {DURATION_HELP}, got {quote(value)}")
    if seconds > MAX_DURATION:
        raise QuantityError(f"expected {DURATION_HELP} of at most 3650d (ten years), "
                            f"got {quote(value)}")
    return seconds


def parse_quantity(value: object) -> tuple[float, Unit]:
    """A threshold's value and the unit its form implies; always a finite number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _finite(value)
        if number is None:
            raise QuantityError(f"expected {QUANTITY_HELP}, got {quote(value)}")
        return number, "number"
    if isinstance(value, str) and len(value) <= _MAX_TEXT:
        text = value.strip()
        match = _PERCENT_RE.fullmatch(text)
        if match:
            # Exactly: float("99.9") / 100 is 0.9990000000000001, a bound of 99.9% off by one
            # part in 10**16 that a report would show and a comparison could trip on.
            return float(Decimal(match.group(1)) / 100), "percent"
        if _DURATION_RE.fullmatch(text):
            return parse_duration(text), "seconds"
    raise QuantityError(f"expected {QUANTITY_HELP}, got {quote(value)}")


def _finite(value: int | float) -> float | None:
    """``value`` as a float, or None when it is NaN, infinite or too large to be one."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _trim(number: float, decimals: int) -> str:
    if abs(number) >= 1e15:  # fixed-point would write every digit of 1e300
        return f"{number:.6g}"
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
        return f"{_trim(value * 100, 2) if abs(value) >= 1e13 else f'{value * 100:.2f}'}%"
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


@functools.lru_cache(maxsize=1024)  # a run formats its one evaluation time thousands of times
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
