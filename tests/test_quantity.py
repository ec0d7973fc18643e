"""Quantities: parsing thresholds and durations, and showing values in their unit."""

from __future__ import annotations

import math

import pytest

from pytest_rollout_slo.quantity import (
    QuantityError,
    Unit,
    format_duration,
    format_time,
    format_value,
    parse_duration,
    parse_quantity,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25),
    ("1.5s", 1.5),
    ("10s", 10.0),
    ("5m", 300.0),
    ("1h", 3600.0),
    ("1h30m", 5400.0),
    ("1d", 86400.0),
    ("1w", 604800.0),
    ("2d12h", 216000.0),
    ("1m30s500ms", 90.5),
    ("0s", 0.0),
    (" 6h ", 21600.0),
    (90, 90.0),
    (0.5, 0.5),
])
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", [
    "-5s", -1, -0.5, "5", "5 s", "5S", "1h 30m", "1.s", "ms", "", "soon", "1y",
    True, False, None, math.nan, [], "5%",
])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(QuantityError, match="a duration such as 250ms"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "expected"), [
    (0.05, (0.05, "number")),
    (3, (3.0, "number")),
    (0, (0.0, "number")),
    (-2, (-2.0, "number")),
    ("5%", (0.05, "percent")),
    ("0%", (0.0, "percent")),
    ("100%", (1.0, "percent")),
    ("12.5%", (0.125, "percent")),
    ("-5%", (-0.05, "percent")),
    ("5 %", (0.05, "percent")),
    ("250ms", (0.25, "seconds")),
    ("1.5s", (1.5, "seconds")),
    ("10s", (10.0, "seconds")),
    ("1h30m", (5400.0, "seconds")),
    ("1d", (86400.0, "seconds")),
    ("1w", (604800.0, "seconds")),
])
def test_parse_quantity(value: object, expected: tuple[float, Unit]) -> None:
    assert parse_quantity(value) == expected


def test_parse_quantity_keeps_the_type_float() -> None:
    value, _ = parse_quantity(3)
    assert type(value) is float


@pytest.mark.parametrize("value", [
    True, False, math.nan, None, "5 percent", "fast", "5%%", "%", "five", "", "nan", "-5s",
    [5], {"max": 5},
])
def test_parse_quantity_rejects(value: object) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(value)
    assert "a number (0.05), a percentage (5%) or a duration" in str(info.value)


def test_parse_quantity_names_the_bad_value() -> None:
    with pytest.raises(QuantityError, match="got True"):
        parse_quantity(True)
    with pytest.raises(QuantityError, match="got NaN"):
        parse_quantity(math.nan)
    with pytest.raises(QuantityError, match="got '5 percent'"):
        parse_quantity("5 percent")


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (0.062, "percent", "6.20%"),
    (0.05, "percent", "5.00%"),
    (0.0, "percent", "0.00%"),
    (1.0, "percent", "100.00%"),
    (-0.01, "percent", "-1.00%"),
    (12.4, "seconds", "12.4s"),
    (10.0, "seconds", "10s"),
    (0.0, "seconds", "0s"),
    (0.25, "seconds", "250ms"),
    (0.0005, "seconds", "0.5ms"),
    (-0.25, "seconds", "-250ms"),
    (3600.0, "seconds", "3600s"),
    (62.0, "number", "62"),
    (0.0, "number", "0"),
    (-3.0, "number", "-3"),
    (0.5, "number", "0.5"),
    (0.123456, "number", "0.1235"),
    (0.00001, "number", "1e-05"),
])
def test_format_value(value: float, unit: Unit, shown: str) -> None:
    assert format_value(value, unit) == shown


@pytest.mark.parametrize("unit", ["number", "percent", "seconds"])
def test_format_value_of_missing_and_infinite_values(unit: Unit) -> None:
    assert format_value(None, unit) == "no value"
    assert format_value(math.nan, unit) == "NaN"
    assert format_value(math.inf, unit) == "+Inf"
    assert format_value(-math.inf, unit) == "-Inf"


@pytest.mark.parametrize(("seconds", "shown"), [
    (21600.0, "6h"),
    (5400.0, "90m"),
    (86400.0, "1d"),
    (172800.0, "2d"),
    (604800.0, "1w"),
    (3600.0, "1h"),
    (30.0, "30s"),
    (90.0, "90s"),
    (1.5, "1.5s"),
    (0.25, "250ms"),
    (0.2, "200ms"),
    (0.0, "0s"),
])
def test_format_duration(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize("text", ["250ms", "10s", "5m", "1h", "6h", "1d", "1w", "90m"])
def test_format_duration_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize(("at", "text"), [
    (1795694400.0, "2026-11-26T12:00:00Z"),
    (1795694400.25, "2026-11-26T12:00:00.250Z"),
    (1795694400.9996, "2026-11-26T12:00:01Z"),  # rounds into the next second, not .1000
])
def test_evaluation_times_are_shown_in_rfc_3339(at: float, text: str) -> None:
    assert format_time(at) == text
