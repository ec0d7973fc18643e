"""Validation of the gates that look beyond one instant, and of the ``matrix`` of items.

``sustained`` (a bound held over a range of points), ``baseline`` (a change against another
cohort or an earlier time), ``burn_rate`` (multi-window error-budget alerts) and ``matrix``
(one item per combination of values, in a file or an objective). Also the ``duration`` and
``fraction`` readers that these share with the objective's measures. Each function takes the
spec file's loader, for its error messages and its shape checks, and reads one mapping; every
mistake names the file, the line and the key. No pytest, no I/O.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

from pytest_rollout_slo.quantity import (
    QuantityError,
    format_value,
    parse_duration,
    parse_quantity,
    quote,
)
from pytest_rollout_slo.spec.model import (
    METHODS,
    Baseline,
    BurnAlert,
    BurnRate,
    Change,
    Confidence,
    Ratio,
    Scalar,
    Sustained,
    duration_text,
)
from pytest_rollout_slo.spec.reader import BUILTIN_VARIABLES, VARIABLE_NAME, SpecReader
from pytest_rollout_slo.spec.yamlload import YamlList, YamlMap

_MAX_POINTS = 10_000
MAX_COMBINATIONS = 10_000
Matrix = tuple[tuple[str, tuple[Scalar, ...]], ...]


def sustained(loader: SpecReader, node: YamlMap, where: str) -> Sustained:
    key = f"{where}sustained"
    body = loader.mapping(node["sustained"], node.line_of("sustained"), key)
    loader.keys(body, ("over", "step", "max_violations"), f"{key}.")
    (over, over_text), (step, step_text) = nested_durations(loader, body, "over", "step",
                                                            f"{key}.")
    if over / step > _MAX_POINTS:
        raise loader.error(body.line_of("step"), f"{key}.step",
                           f"{over_text} in steps of {step_text} is more than {_MAX_POINTS} "
                           "points; use a longer step")
    violations = body.get("max_violations", 0)
    if isinstance(violations, bool) or not isinstance(violations, int) or violations < 0:
        raise loader.error(body.line_of("max_violations"), f"{key}.max_violations",
                           f"must be a whole number >= 0, got {quote(violations)}")
    return Sustained(over, step, violations, over_text, step_text)


def baseline(loader: SpecReader, node: YamlMap, where: str) -> Baseline:
    key = f"{where}baseline"
    body = loader.mapping(node["baseline"], node.line_of("baseline"), key)
    loader.keys(body, ("variables", "offset", "max_increase", "max_decrease"), f"{key}.")
    if ("variables" in body) == ("offset" in body):
        raise loader.error(body.line, key, "give exactly one of `variables` (another cohort: "
                                           "{cohort: control}) or `offset` (an earlier time: 7d)")
    variables: dict[str, Scalar] = {}
    offset: float | None = None
    offset_text = ""
    if "variables" in body:
        variables = loader.variables(body["variables"], body.line_of("variables"),
                                     f"{key}.variables")
        if not variables:
            raise loader.error(body.line_of("variables"), f"{key}.variables",
                               "name at least one variable that selects the baseline")
    else:
        offset, offset_text = duration(loader, body, "offset", f"{key}.")
    changes = [_change(loader, body, name, f"{key}.") for name in ("max_increase", "max_decrease")]
    return Baseline(variables, offset, offset_text, changes[0], changes[1])


def _change(loader: SpecReader, body: YamlMap, name: str, where: str) -> Change | None:
    if name not in body:
        return None
    try:
        value, unit = parse_quantity(body[name])
    except QuantityError as exc:
        raise loader.error(body.line_of(name), f"{where}{name}", str(exc)) from exc
    if value < 0:
        raise loader.error(body.line_of(name), f"{where}{name}",
                           "must be >= 0; it bounds the size of the change")
    return Change(value, unit == "percent", str(body[name]).strip(), unit)


def burn_rate(loader: SpecReader, node: YamlMap, where: str, ratio: Ratio | None) -> BurnRate:
    key = f"{where}burn_rate"
    if ratio is None:
        raise loader.error(node.line_of("burn_rate"), key,
                           "needs a `ratio` objective whose ratio is the error ratio "
                           "(bad events / all events)")
    for text in (ratio.numerator, ratio.denominator):
        if "${window}" not in text and ":window_start" not in text:
            raise loader.error(node.line_of("burn_rate"), key,
                               "both ratio queries must use ${window} (PromQL) or "
                               ":window_start (SQL): each alert evaluates them over its long "
                               "and short window")
    body = loader.mapping(node["burn_rate"], node.line_of("burn_rate"), key)
    loader.keys(body, ("target", "alerts"), f"{key}.")
    target = fraction(loader, body, "target", f"{key}.", required=True)
    if not 0 < target < 1:
        raise loader.error(body.line_of("target"), f"{key}.target",
                           "must lie strictly between 0% and 100% (99.5%)")
    alerts = body.get("alerts")
    if not isinstance(alerts, YamlList) or not alerts:
        raise loader.error(body.line_of("alerts"), f"{key}.alerts",
                           "must be a list of {long, short, factor}, e.g. "
                           "[{long: 1h, short: 5m, factor: 14.4}]")
    result = []
    for index, (alert, line) in enumerate(zip(alerts, alerts.item_lines, strict=True)):
        at = f"{key}.alerts[{index}]"
        alert_node = loader.mapping(alert, line, at)
        loader.keys(alert_node, ("long", "short", "factor"), f"{at}.")
        (long, long_text), (short, short_text) = nested_durations(
            loader, alert_node, "long", "short", f"{at}.")
        factor = alert_node.get("factor")
        if (isinstance(factor, bool) or not isinstance(factor, (int, float))
                or not math.isfinite(factor) or factor <= 0):
            raise loader.error(alert_node.line_of("factor"), f"{at}.factor",
                               f"must be a number > 0 (14.4), got {quote(factor)}")
        if factor * (1 - target) > 1 + 1e-9:  # 100 x (1 - 0.99) is 1.0000000000000009
            # The alert fires when the error ratio passes factor x budget; a ratio never
            # passes 1, so such an alert never fires and the gate could never fail.
            raise loader.error(alert_node.line_of("factor"), f"{at}.factor",
                               f"{quote(factor)} x the error budget "
                               f"{format_value(1 - target, 'percent')} is more than 100%: the "
                               "alert could never fire; at most "
                               f"{format_value(1 / (1 - target), 'number')} for this target")
        result.append(BurnAlert(long, short, float(factor), long_text, short_text))
    return BurnRate(target, tuple(result))


def parse_matrix(loader: SpecReader, value: Any, line: int, key: str) -> Matrix:
    """A ``matrix`` mapping, the file's or an objective's: variable name -> its values."""
    body = loader.mapping(value, line, key)
    if not body:
        raise loader.error(line, key, "name at least one variable and its values")
    result = []
    for name, values in body.items():
        if not VARIABLE_NAME.fullmatch(name) or name in BUILTIN_VARIABLES:
            raise loader.error(body.line_of(name), f"{key}.{name}",
                               "matrix names are variable names (letters, digits, _) and "
                               f"may not be the built-ins {', '.join(BUILTIN_VARIABLES)}")
        if (not isinstance(values, YamlList) or not values
                or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                           and (not isinstance(v, float) or math.isfinite(v))
                           for v in values)):
            raise loader.error(body.line_of(name), f"{key}.{name}",
                               "must be a non-empty list of strings or finite numbers ([eu, us])")
        if len(set(values)) != len(values):
            raise loader.error(body.line_of(name), f"{key}.{name}",
                               "lists a value twice; each combination is one item")
        if name == "window":
            for item, item_line in zip(values, values.item_lines, strict=True):
                loader.window(item, item_line, f"{key}.{name}")
        result.append((name, tuple(values)))
    return tuple(result)


def check_combinations(loader: SpecReader, matrix: Matrix, line: int, key: str) -> None:
    """An objective's matrix makes one item per combination: refuse a product past the limit."""
    count = math.prod(len(values) for _, values in matrix)
    if count > MAX_COMBINATIONS:
        raise loader.error(line, key, f"{count} combinations of values, one item each; at most "
                                      f"{MAX_COMBINATIONS} per objective")


def duration(loader: SpecReader, body: YamlMap, name: str, where: str) -> tuple[float, str]:
    """A required duration longer than 0s: (seconds, the text as written)."""
    if name not in body:
        raise loader.error(body.line, f"{where}{name}", "is required but missing")
    try:
        seconds = parse_duration(body[name])
    except QuantityError as exc:
        raise loader.error(body.line_of(name), f"{where}{name}", str(exc)) from exc
    if seconds <= 0:
        raise loader.error(body.line_of(name), f"{where}{name}", "must be longer than 0s")
    return seconds, duration_text(body[name])


def nested_durations(loader: SpecReader, body: YamlMap, outer: str, inner: str, where: str
                     ) -> tuple[tuple[float, str], tuple[float, str]]:
    """Two durations where the ``inner`` one (a step, a short window) fits in the other."""
    outer_value = duration(loader, body, outer, where)
    inner_value = duration(loader, body, inner, where)
    if inner_value[0] > outer_value[0]:
        raise loader.error(body.line_of(inner), f"{where}{inner}",
                           f"{inner} {inner_value[1]} is longer than {outer} {outer_value[1]}")
    return outer_value, inner_value


def confidence(loader: SpecReader, node: YamlMap, where: str) -> Confidence:
    """``confidence: 95%`` or ``confidence: {level: 95%, method: wilson}``, in a file, a stage
    or an objective; SciPy must be installed (the ``stats`` extra)."""
    key = f"{where}confidence"
    raw = node["confidence"]
    method = "clopper-pearson"
    body = node
    name = "confidence"
    if isinstance(raw, YamlMap):
        body, name = raw, "level"
        loader.keys(raw, ("level", "method"), f"{key}.")
        method = loader.string(raw, "method", f"{key}.", default=method)
        if method not in METHODS:
            raise loader.error(raw.line_of("method"), f"{key}.method",
                               f"got {quote(method)}; accepted: {', '.join(METHODS)} (default "
                               "clopper-pearson, exact: never covers less than the level)")
        key = f"{key}."
    else:
        key = where
    level = fraction(loader, body, name, key, required=True)
    if not 0.5 <= level < 1:
        raise loader.error(body.line_of(name), f"{key}{name}",
                           f"must be at least 50% and below 100% (95% is usual), got "
                           f"{quote(body[name])}")
    if not scipy_installed():
        raise loader.error(node.line_of("confidence"), f"{where}confidence",
                           "needs SciPy, which is not installed: "
                           "pip install 'pytest-rollout-slo[stats]'")
    return Confidence(level, method)  # type: ignore[arg-type]  # checked against METHODS


def scipy_installed() -> bool:
    """Whether SciPy can be imported, without importing it (collection stays fast)."""
    try:
        return importlib.util.find_spec("scipy") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["scipy"] is None
        return False


def fraction(loader: SpecReader, body: YamlMap, name: str, where: str, *, required: bool) -> float:
    """A number between 0 and 1, written as one (0.95) or as a percentage (95%)."""
    if name not in body:
        raise loader.error(body.line, f"{where}{name}", "is required but missing")
    raw = body[name]
    try:
        value, unit = parse_quantity(raw)
    except QuantityError:
        value, unit = math.nan, "number"
    if unit == "seconds" or not 0 <= value <= 1:
        raise loader.error(body.line_of(name), f"{where}{name}",
                           "must be a fraction between 0 and 1, as a number (0.95) or a "
                           f"percentage (95%), got {quote(raw)}")
    return value
