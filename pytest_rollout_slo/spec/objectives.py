"""Validation of one objective of a spec file: what it measures, its bounds, and its stages.

The part of the loader that knows the objective keys: ``query`` / ``ratio`` / ``quantile`` /
``histogram_quantile``, ``min`` / ``max`` / ``warn`` with per-stage ``thresholds``, ``stages``,
and the placeholders its queries use. The gates beyond one instant (``sustained``,
``baseline``, ``burn_rate``) and ``matrix`` are read by :mod:`pytest_rollout_slo.spec.gates`;
this module decides which of them apply and how they constrain the bounds.
Every mistake names the file, the line and the key. No pytest, no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pytest_rollout_slo.quantity import (
    UNITS,
    QuantityError,
    Unit,
    format_value,
    parse_quantity,
    quote,
)
from pytest_rollout_slo.spec import gates as spec_gates
from pytest_rollout_slo.spec.gates import Matrix
from pytest_rollout_slo.spec.model import (
    NO_ALERT,
    NO_BOUNDS,
    ON_INCONCLUSIVE,
    ON_NO_DATA,
    AlertSettings,
    Baseline,
    Bounds,
    Buckets,
    BurnRate,
    Confidence,
    Objective,
    Ratio,
    Scalar,
    Spec,
    placeholders,
    substitute,
)
from pytest_rollout_slo.spec.reader import VARIABLE_NAME, SpecReader, kind_of, listing
from pytest_rollout_slo.spec.yamlload import YamlList, YamlMap

# Matched whole (fullmatch): `$` would also match before a final newline.
_NAME_RE = re.compile(r"[a-z0-9_]{1,100}")
_METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# SQL text a `:name` parameter cannot be inside: quoted strings and identifiers, comments.
# The first alternative skips plain text in one step, the last one a lone `-`, `/` or `:`.
_SQL_PARAMETER = re.compile(
    r"[^'\"`\[/:-]+|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*"
    r"|/\*.*?(?:\*/|\Z)|(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)|.", re.DOTALL)
_TIME_PARAMETERS = ("window_start", "window_end")
OBJECTIVE_KEYS = ("name", "description", "backend", "query", "ratio", "quantile",
                  "histogram_quantile", "min", "max", "warn", "unit", "thresholds", "stages",
                  "on_no_data", "sustained", "baseline", "burn_rate", "matrix", "variables",
                  "track", "alert", "confidence", "on_inconclusive")
_MEASURES = ("query", "ratio", "quantile", "histogram_quantile")
_GATES = ("sustained", "baseline", "burn_rate")
_RATIO_KEYS = ("numerator", "denominator", "min_denominator")
_THRESHOLD_KEYS = ("min", "max", "warn")
_ALERT_KEYS = ("for", "labels", "runbook")
# What a tracked objective may not have: it is reported, never judged.
_JUDGING_KEYS = ("min", "max", "warn", "thresholds", "sustained", "baseline", "burn_rate",
                 "alert", "on_no_data", "confidence", "on_inconclusive")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Bounds found in one mapping: key ("min", "warn.max") -> (value, line, key path) or None.
_Found = dict[str, tuple[float, int, str] | None]
# Every bound and absolute change of an objective as written: (text, value, form, line, key).
_Read = list[tuple[Any, float, Unit, int, str]]
_SECONDS_METRIC = re.compile(r".*_seconds(?:_bucket)?")


class ObjectiveLoader:
    """Validates one ``objectives[i]`` entry against the rest of its spec file."""

    def __init__(self, loader: SpecReader, spec: Spec, file_matrix: Matrix) -> None:
        self.loader = loader
        self.spec = spec
        self.file_matrix = file_matrix
        self.error = loader.error
        self.read: _Read = []

    def load(self, item: Any, line: int, index: int) -> Objective:
        loader = self.loader
        node = loader.mapping(item, line, f"objectives[{index}]")
        name = loader.string(node, "name", f"objectives[{index}].", required=True)
        where = f"objectives.{name}."
        if not _NAME_RE.fullmatch(name):
            raise self.error(node.line_of("name"), f"{where}name",
                             "objective names use lowercase letters, digits and _ ([a-z0-9_]+, "
                             f"at most 100), got {quote(name)}")
        loader.keys(node, OBJECTIVE_KEYS, where)
        backend = loader.string(node, "backend", where, default=next(iter(self.spec.backends)))
        if backend not in self.spec.backends:
            raise self.error(node.line_of("backend"), f"{where}backend",
                             f"unknown backend {quote(backend)}; this file defines: "
                             f"{listing(self.spec.backends)}")
        query, ratio, quantile, buckets = self.measure(node, where, backend)
        unit = loader.string(node, "unit", where) or None
        if unit is not None and unit not in UNITS:
            raise self.error(node.line_of("unit"), f"{where}unit",
                             f"got {quote(unit)}; accepted: {', '.join(UNITS)}")
        on_no_data = loader.string(node, "on_no_data", where, default="fail")
        if on_no_data not in ON_NO_DATA:
            raise self.error(node.line_of("on_no_data"), f"{where}on_no_data",
                             f"got {quote(on_no_data)}; accepted: {', '.join(ON_NO_DATA)}")
        on_inconclusive = loader.string(node, "on_inconclusive", where, default="fail")
        if on_inconclusive not in ON_INCONCLUSIVE:
            raise self.error(node.line_of("on_inconclusive"), f"{where}on_inconclusive",
                             f"got {quote(on_inconclusive)}; accepted: "
                             f"{', '.join(ON_INCONCLUSIVE)}")
        track = self.track(node, where)
        gates = [key for key in _GATES if key in node]
        if len(gates) > 1:
            raise self.error(node.line_of(gates[1]), f"{where}{gates[1]}",
                             f"combine at most one of {', '.join(_GATES)} in one objective; "
                             "write a second objective for the other")
        sustained = spec_gates.sustained(loader, node, where) if "sustained" in node else None
        baseline = spec_gates.baseline(loader, node, where) if "baseline" in node else None
        burn_rate = (spec_gates.burn_rate(loader, node, where, ratio) if "burn_rate" in node
                     else None)
        matrix = self.matrix(node, where)
        variables = loader.variables(node.get("variables"), node.line_of("variables"),
                                     f"{where}variables")
        stages = self.stages(node, where)
        measures = self.measures(node, ratio, unit)
        bounds, warn, units = self.thresholds(node, where, stages, baseline, burn_rate, measures,
                                              track)
        # A ratio with no threshold to take the form from (only a baseline change or burn
        # rates) is a share of events: show it as a percentage; a histogram of seconds, as
        # seconds.
        shown: Unit = ("percent" if ratio is not None and not units
                       else "seconds" if measures[0] == "seconds" else "number")
        for candidate in units:
            if candidate != "number":
                shown = candidate
                break
        objective = Objective(
            name=name, description=loader.string(node, "description", where), backend=backend,
            query=query, ratio=ratio, bounds=bounds, unit=unit or shown,
            on_no_data=on_no_data, line=node.line, warn=warn,
            quantile=quantile, sustained=sustained, baseline=baseline, burn_rate=burn_rate,
            matrix=matrix, variables=variables, track=track,
            alert=self.alert(node, where) if "alert" in node else NO_ALERT,
            on_inconclusive=on_inconclusive, buckets=buckets,
            confidence=self.confidence(node, where, ratio, baseline))
        self.check_placeholders(node, where, objective)
        self.check_queries(node, where, objective)
        return objective

    def confidence(self, node: YamlMap, where: str, ratio: Ratio | None,
                   baseline: Baseline | None) -> Confidence | None:
        if "confidence" not in node:
            return None
        line, key = node.line_of("confidence"), f"{where}confidence"
        if "quantile" in node and baseline is None:
            raise self.error(line, key, "confidence on a quantile compares its raw samples "
                             "with a baseline's (a rank test); add baseline: {...}, or drop "
                             "confidence")
        if ratio is None and "quantile" not in node and "histogram_quantile" not in node:
            raise self.error(line, key, "confidence judges a ratio by its counts, a "
                             "histogram_quantile by its bucket counts, or a quantile's raw "
                             "samples against a baseline; it is for ratio objectives, "
                             "histogram_quantile, and quantile: {q, values} with a baseline")
        for gate in ("sustained", "burn_rate"):
            if gate in node:
                raise self.error(line, key, f"confidence does not combine with {gate}, which "
                                 "judges values over time; use one or the other")
        if baseline is not None and ratio is not None:
            for side, change in (("max_increase", baseline.max_increase),
                                 ("max_decrease", baseline.max_decrease)):
                if change is not None and not change.relative:
                    raise self.error(node["baseline"].line_of(side), f"{where}baseline.{side}",
                                     "with confidence a baseline is judged by the ratio of the "
                                     "rates: write the change as a percentage (20%)")
        return spec_gates.confidence(self.loader, node, where)

    # -- what is measured -------------------------------------------------------------------

    def measure(self, node: YamlMap, where: str, backend: str
                ) -> tuple[str | None, Ratio | None, float | None, Buckets | None]:
        given = [key for key in _MEASURES if key in node]
        if len(given) != 1:
            raise self.error(node.line_of(given[1]) if len(given) > 1 else node.line,
                             f"{where}{given[1] if len(given) > 1 else 'query'}",
                             f"give exactly one of {', '.join(f'`{k}`' for k in _MEASURES)}")
        key = given[0]
        loader = self.loader
        if key == "query":
            return loader.string(node, "query", where, required=True), None, None, None
        if key == "quantile":
            body = loader.mapping(node[key], node.line_of(key), f"{where}quantile")
            loader.keys(body, ("q", "values"), f"{where}quantile.")
            q = spec_gates.fraction(loader, body, "q", f"{where}quantile.", required=True)
            return (loader.string(body, "values", f"{where}quantile.", required=True), None, q,
                    None)
        if key == "histogram_quantile":
            query, buckets = self.histogram_quantile(node, where, backend)
            return query, None, None, buckets
        ratio = loader.mapping(node["ratio"], node.line_of("ratio"), f"{where}ratio")
        loader.keys(ratio, _RATIO_KEYS, f"{where}ratio.")
        numerator = loader.string(ratio, "numerator", f"{where}ratio.", required=True)
        denominator = loader.string(ratio, "denominator", f"{where}ratio.", required=True)
        minimum = ratio.get("min_denominator", 0)
        if (isinstance(minimum, bool) or not isinstance(minimum, (int, float))
                or not math.isfinite(minimum) or minimum < 0):
            raise self.error(ratio.line_of("min_denominator"), f"{where}ratio.min_denominator",
                             f"must be a number >= 0, got {quote(minimum)}")
        return None, Ratio(numerator, denominator, float(minimum)), None, None

    def histogram_quantile(self, node: YamlMap, where: str, backend: str
                           ) -> tuple[str, Buckets]:
        """The ``histogram_quantile`` query, and the bucket counts behind it (for
        ``confidence``: see :mod:`pytest_rollout_slo.verdict.buckets`)."""
        key = f"{where}histogram_quantile"
        backend_type = self.loader.backend_types[self.spec.backends[backend].type]
        if getattr(backend_type, "language", "") != "promql":
            raise self.error(node.line_of("histogram_quantile"), key,
                             f"needs a PromQL backend; backend {quote(backend)} is "
                             f"{backend_type.name}; use `quantile: {{q, values}}` there")
        body = self.loader.mapping(node["histogram_quantile"], node.line_of("histogram_quantile"),
                                   key)
        self.loader.keys(body, ("metric", "quantile", "selector", "by"), f"{key}.")
        metric = self.loader.string(body, "metric", f"{key}.", required=True).strip()
        if not _METRIC_RE.fullmatch(metric):
            raise self.error(body.line_of("metric"), f"{key}.metric",
                             f"{quote(metric)} is not a metric name")
        q = spec_gates.fraction(self.loader, body, "quantile", f"{key}.", required=True)
        selector = self.loader.string(body, "selector", f"{key}.").strip()
        if selector and not selector.startswith("{"):
            selector = "{" + selector + "}"
        by = body.get("by", [])
        if isinstance(by, str):
            by = [by]
        if not isinstance(by, list) or not all(isinstance(b, str) and VARIABLE_NAME.fullmatch(b)
                                                for b in by):
            raise self.error(body.line_of("by"), f"{key}.by",
                             "must be a label name or a list of label names")
        bucket = metric if metric.endswith("_bucket") else f"{metric}_bucket"
        group = ", ".join(["le", *by])
        counts = f"sum by ({group}) (increase({bucket}{selector}[${{window}}]))"
        return (f"histogram_quantile({q:g}, sum by ({group}) "
                f"(rate({bucket}{selector}[${{window}}])))", Buckets(counts, q))

    # -- bounds -----------------------------------------------------------------------------

    def track(self, node: YamlMap, where: str) -> bool:
        if "track" not in node:
            return False
        if node["track"] is not True and node["track"] is not False:
            raise self.error(node.line_of("track"), f"{where}track",
                             f"must be true or false, got {kind_of(node['track'])}")
        if node["track"]:
            for key in _JUDGING_KEYS:
                if key in node:
                    raise self.error(node.line_of(key), f"{where}{key}",
                                     "a tracked objective (track: true) is reported, never "
                                     "judged; remove min, max, warn, thresholds, sustained, "
                                     "baseline, burn_rate, alert, on_no_data, confidence and "
                                     "on_inconclusive, or track: true")
        return bool(node["track"])

    def alert(self, node: YamlMap, where: str) -> AlertSettings:
        key = f"{where}alert"
        loader = self.loader
        body = loader.mapping(node["alert"], node.line_of("alert"), key)
        loader.keys(body, _ALERT_KEYS, f"{key}.")
        for_seconds: float | None = None
        for_text = ""
        if "for" in body:
            for_seconds, for_text = spec_gates.duration(loader, body, "for", f"{key}.")
        labels: dict[str, str] = {}
        if "labels" in body:
            table = loader.mapping(body["labels"], body.line_of("labels"), f"{key}.labels")
            for name, value in table.items():
                if not _LABEL_NAME.match(name) or name.startswith("__"):
                    raise self.error(table.line_of(name), f"{key}.labels.{name}",
                                     "a Prometheus label name: letters, digits and _, not "
                                     "starting with a digit or __")
                if name in ("alertname", "objective", "service"):
                    raise self.error(table.line_of(name), f"{key}.labels.{name}",
                                     "set by the generator; choose another label name")
                if not isinstance(value, str) or not value.strip():
                    raise self.error(table.line_of(name), f"{key}.labels.{name}",
                                     f"must be a non-empty string, got {kind_of(value)}")
                labels[name] = value
        runbook = loader.string(body, "runbook", f"{key}.", required="runbook" in body)
        return AlertSettings(for_seconds, for_text, labels, runbook)

    @staticmethod
    def measures(node: YamlMap, ratio: Ratio | None, unit: str | None) -> tuple[str | None, str]:
        """What the objective's value is, as far as the spec says, and why we think so:
        ``fraction`` (a share, 0..1), ``seconds``, or None (a number of any kind)."""
        if unit is not None:
            return {"percent": "fraction", "seconds": "seconds"}.get(unit), f"unit: {unit}"
        if ratio is not None:
            return "fraction", "a ratio"
        body = node.get("histogram_quantile")
        metric = body.get("metric") if isinstance(body, YamlMap) else None
        if isinstance(metric, str) and _SECONDS_METRIC.fullmatch(metric.strip()):
            return "seconds", f"a quantile of {metric.strip()}"
        return None, ""

    def check_units(self, read: _Read, measures: tuple[str | None, str]) -> None:
        """Each bound in the unit of what is measured, and all in one unit."""
        expected, why = measures
        escape = ("" if why.startswith("unit:") else
                  "; if it is not a share of events, set `unit: number` (or `unit: seconds`)")
        for raw, value, form, line, key in read:
            if expected == "fraction":
                if form == "seconds":
                    raise self.error(line, key,
                                     f"{quote(raw)} is a duration, but this objective measures "
                                     f"{why}, a share of events from 0 to 1: write a percentage "
                                     f"(5%) or a fraction (0.05){escape}")
                if not 0 <= value <= 1:
                    shown = quote(raw, bare=True)
                    hint = (f", so {shown} would be {format_value(value, 'percent')}; write "
                            f"{shown}%" if form == "number" and 1 < value <= 100 else
                            f" and {shown} is outside; write a percentage from 0% to 100% or "
                            "a fraction (0.05)")
                    raise self.error(line, key, f"{why} lies in 0..1{hint}{escape}")
            elif expected == "seconds" and form == "percent":
                raise self.error(line, key,
                                 f"{quote(raw)} is a percentage, but this objective measures "
                                 f"seconds ({why}): write a duration (250ms, 2s) or plain "
                                 "seconds (0.25)")
        forms = {form: (raw, key) for raw, _, form, _, key in read if form != "number"}
        if len(forms) > 1:
            later = next(item for item in read if item[2] == "seconds")
            earlier = forms["percent"]
            raise self.error(later[3], later[4],
                             f"{quote(later[0])} is a duration, but {earlier[1].rsplit('.', 1)[-1]}"
                             f" {quote(earlier[0])} is a percentage; the bounds of one objective "
                             "measure one thing: write them in one unit")

    def thresholds(self, node: YamlMap, where: str, stages: tuple[str, ...],
                   baseline: Baseline | None, burn_rate: BurnRate | None,
                   measures: tuple[str | None, str] = (None, ""), track: bool = False
                   ) -> tuple[dict[str, Bounds], dict[str, Bounds], list[Unit]]:
        if burn_rate is not None:
            for key in ("min", "max", "warn", "thresholds"):
                if key in node:
                    raise self.error(node.line_of(key), f"{where}{key}",
                                     "an objective with burn_rate is judged by its alerts; "
                                     "remove min, max, warn and thresholds")
        units: list[Unit] = []
        read: _Read = []
        self.read = read
        if baseline is not None:
            # An absolute change bound (0.5s) says how values are shown when nothing else does.
            body = node["baseline"]
            for side, change in (("max_increase", baseline.max_increase),
                                 ("max_decrease", baseline.max_decrease)):
                if change is not None and not change.relative:
                    units.append(change.unit)
                    read.append((change.text, change.amount, change.unit, body.line_of(side),
                                 f"{where}baseline.{side}"))
        base = self.bound_values(node, where, units)
        overrides: dict[str, tuple[_Found, YamlMap]] = {}
        if "thresholds" in node:
            table = self.loader.mapping(node["thresholds"], node.line_of("thresholds"),
                                        f"{where}thresholds")
            for stage, body in table.items():
                key = f"{where}thresholds.{stage}"
                if stage not in self.spec.stages:
                    raise self.error(table.line_of(stage), key,
                                     f"unknown stage {quote(stage)}; stages: "
                                     f"{listing(self.spec.stages)}")
                if stage not in stages:
                    raise self.error(table.line_of(stage), key,
                                     f"the objective does not apply to stage {quote(stage)} "
                                     f"(its stages: {listing(stages)})")
                body_node = self.loader.mapping(body, table.line_of(stage), key)
                self.loader.keys(body_node, _THRESHOLD_KEYS, f"{key}.")
                overrides[stage] = (self.bound_values(body_node, f"{key}.", units), body_node)
        self.check_units(read, measures)
        shown: Unit = next((u for u in units if u != "number"), "number")
        needs_bound = burn_rate is None and not track and not (
            baseline is not None and (baseline.max_increase or baseline.max_decrease))
        bounds: dict[str, Bounds] = {}
        warns: dict[str, Bounds] = {}
        # Every stage without an override has the objective's own bounds: worked out (and
        # checked, naming the first such stage, as a stage-by-stage check would) once.
        common: tuple[Bounds, Bounds] | None = None
        for stage in stages:
            if stage in overrides:
                values, source = overrides[stage]
                hard, warn = self.stage_bounds(stage, values, base, source, where, shown,
                                               needs_bound)
            elif common is None:
                hard, warn = common = self.stage_bounds(stage, {}, base, node, where, shown,
                                                        needs_bound)
            else:
                hard, warn = common
            bounds[stage] = hard
            if warn is not NO_BOUNDS:
                warns[stage] = warn
        return bounds, warns, units

    def stage_bounds(self, stage: str, values: _Found, base: _Found, source: YamlMap,
                     where: str, shown: Unit, needs_bound: bool) -> tuple[Bounds, Bounds]:
        """The hard and warn bounds at ``stage``: its override's values over the base ones."""
        # Each found bound is (value, line, key path); the lines and keys serve the errors.
        low_at = values.get("min") or base["min"]
        high_at = values.get("max") or base["max"]
        warn_low_at = values.get("warn.min") or base["warn.min"]
        warn_high_at = values.get("warn.max") or base["warn.max"]
        low = low_at[0] if low_at else None
        high = high_at[0] if high_at else None
        warn_low = warn_low_at[0] if warn_low_at else None
        warn_high = warn_high_at[0] if warn_high_at else None
        if low is None and high is None and needs_bound:
            raise self.error(source.line, f"{where}max",
                             f"no min or max for stage {quote(stage)}; give min, max, or both "
                             "(on the objective or in thresholds)")
        for lo_at, hi_at, label in ((low_at, high_at, ""), (warn_low_at, warn_high_at, "warn.")):
            if lo_at is not None and hi_at is not None and lo_at[0] > hi_at[0]:
                # Point at a stage override when one made it so (the max's, when both
                # are), else at the min.
                culprit = hi_at if ".thresholds." in hi_at[2] else lo_at
                raise self.error(culprit[1], culprit[2],
                                 f"{label}min {format_value(lo_at[0], shown)} is greater than "
                                 f"{label}max {format_value(hi_at[0], shown)} at stage "
                                 f"{quote(stage)}")
        # A warn bound outside the hard bound could never be reached before the hard one fails.
        for side, value_at, limit in (("min", warn_low_at, low), ("max", warn_high_at, high)):
            if value_at is None or limit is None:
                continue
            value = value_at[0]
            if value < limit if side == "min" else value > limit:
                raise self.error(value_at[1], value_at[2],
                                 f"warn.{side} {format_value(value, shown)} lies outside {side} "
                                 f"{format_value(limit, shown)} at stage {quote(stage)}; a warning "
                                 "level sits between the bounds")
        warn = (NO_BOUNDS if warn_low is None and warn_high is None
                else Bounds(warn_low, warn_high))
        return Bounds(low, high), warn

    def bound_values(self, node: YamlMap, where: str, units: list[Unit]) -> _Found:
        """``min``/``max``/``warn.min``/``warn.max`` of one mapping: (value, line, key)."""
        found: _Found = dict.fromkeys(
            ("min", "max", "warn.min", "warn.max"))
        sources: list[tuple[YamlMap, str, str]] = [(node, "", where)]
        if "warn" in node:
            warn = self.loader.mapping(node["warn"], node.line_of("warn"), f"{where}warn")
            self.loader.keys(warn, ("min", "max"), f"{where}warn.")
            if not warn:
                raise self.error(warn.line, f"{where}warn", "give min, max, or both")
            sources.append((warn, "warn.", f"{where}warn."))
        for source, prefix, key_prefix in sources:
            for key in ("min", "max"):
                if key not in source:
                    continue
                try:
                    value, unit = parse_quantity(source[key])
                except QuantityError as exc:
                    raise self.error(source.line_of(key), f"{key_prefix}{key}", str(exc)) from exc
                units.append(unit)
                found[f"{prefix}{key}"] = (value, source.line_of(key), f"{key_prefix}{key}")
                self.read.append((source[key], value, unit, source.line_of(key),
                                  f"{key_prefix}{key}"))
        return found

    # -- helpers ----------------------------------------------------------------------------

    def matrix(self, node: YamlMap, where: str) -> Matrix:
        """The file's matrix with the objective's own variables added or replaced."""
        own = spec_gates.parse_matrix(self.loader, node.get("matrix"), node.line_of("matrix"),
                                      f"{where}matrix") if "matrix" in node else ()
        merged = dict(self.file_matrix)
        merged.update(own)
        spec_gates.check_combinations(self.loader, tuple(merged.items()),
                                      node.line_of("matrix"), f"{where}matrix")
        return tuple(merged.items())

    def stages(self, node: YamlMap, where: str) -> tuple[str, ...]:
        if "stages" not in node:
            return tuple(self.spec.stages)
        value = node["stages"]
        if not isinstance(value, YamlList) or not value:
            raise self.error(node.line_of("stages"), f"{where}stages",
                             "must be a list of stage names")
        for stage, line in zip(value, value.item_lines, strict=True):
            if not isinstance(stage, str):
                raise self.error(line, f"{where}stages",
                                 f"lists {kind_of(stage)}, not a stage name; stages: "
                                 f"{listing(self.spec.stages)}")
            if stage not in self.spec.stages:
                raise self.error(line, f"{where}stages",
                                 f"unknown stage {quote(stage)}; stages: "
                                 f"{listing(self.spec.stages)}")
        # Promotion order, whatever order the list was written in (names, checked above).
        return tuple(s for s in self.spec.stages if s in value)

    def check_placeholders(self, node: YamlMap, where: str, objective: Objective) -> None:
        extra: dict[str, Scalar] = {}
        if objective.burn_rate is not None:
            # Each alert supplies its own windows, so `${window}` needs no variable here.
            extra["window"] = objective.burn_rate.alerts[0].long_text
        backend_type = self.loader.backend_types[self.spec.backends[objective.backend].type]
        sql = getattr(backend_type, "language", "") == "sql"
        parameters = {part: sql_parameters(text) if sql else []
                      for part, text in objective.templates.items()}
        if objective.baseline is not None:
            # A baseline variable no query uses would compare the objective with itself:
            # "unchanged", a pass every time. Whole names: `:cohort_id` does not use cohort.
            names_used = {name for text in objective.templates.values()
                          for name in placeholders(text)}
            names_used.update(name for names in parameters.values() for name in names)
            for name in objective.baseline.variables:
                if name not in names_used:
                    raise self.error(node["baseline"].line_of("variables"),
                                     f"{where}baseline.variables.{name}",
                                     f"no query of the objective uses ${{{name}}} (or :{name} "
                                     "in SQL), so the baseline would be the objective itself")
        # The names each query uses are the same at every stage; only what is defined differs.
        used = [(part, names) for part, text in objective.templates.items()
                if (names := placeholders(text))]
        bound = [(part, names) for part, names in parameters.items() if names]
        if not used and not bound:
            return
        combination = next(objective.combinations(), ())
        for stage in objective.stages:
            # The objective's own queries must resolve without the baseline's variables.
            variables = {**self.spec.variables_for(stage, combination, objective), **extra}
            self.check_parameters(node, where, stage, variables, bound)
            for part, names in used:
                missing = [name for name in names if name not in variables]
                if not missing:
                    continue
                line = self.part_line(node, part)
                for name in missing:
                    if name.startswith("env:"):
                        raise self.error(line, f"{where}{self.part_key(node, part)}",
                                         f"${{{quote(name, bare=True)}}} is not allowed in "
                                         "queries; environment "
                                         "variables belong in backend settings only")
                    raise self.error(line, f"{where}{self.part_key(node, part)}",
                                     f"undefined variable ${{{quote(name, bare=True)}}} at "
                                     f"stage {quote(stage)}; "
                                     f"defined: {listing(sorted(variables), 30)}")

    def check_parameters(self, node: YamlMap, where: str, stage: str,
                         variables: dict[str, Scalar], bound: list[tuple[str, list[str]]]
                         ) -> None:
        """Every SQL ``:name`` a query uses is bound at ``stage`` (as the SQL backends bind)."""
        names = {*variables, "at"}
        if "window" in variables:
            names.update(_TIME_PARAMETERS)
        for part, parameters in bound:
            for name in parameters:
                if name in names:
                    continue
                hint = (" (:window_start and :window_end need a `window` variable)"
                        if name in _TIME_PARAMETERS else "")
                raise self.error(self.part_line(node, part), f"{where}{self.part_key(node, part)}",
                                 f"the query uses :{name}, which is not bound at stage "
                                 f"{quote(stage)}{hint}; bound: "
                                 f"{listing((f':{n}' for n in sorted(names)), 30)}")

    def check_queries(self, node: YamlMap, where: str, objective: Objective) -> None:
        """Every text the objective's queries resolve to passes the backend's query check.

        Resolved texts, not templates: a variable's value is part of the SQL that runs. The
        baseline's and the burn-rate windows' texts are checked by the backend before it runs
        them.
        """
        check = self.loader.query_checks.get(objective.backend)
        if check is None:
            return
        extra: dict[str, Scalar] = {}
        if objective.burn_rate is not None:
            extra["window"] = objective.burn_rate.alerts[0].long_text
        checked: set[str] = set()
        for stage in objective.stages:
            for combination in objective.combinations():
                variables = {**self.spec.variables_for(stage, combination, objective), **extra}
                for part, template in objective.templates.items():
                    text = substitute(template, variables)[0]
                    if text in checked:
                        continue
                    checked.add(text)
                    problem = check(text)
                    if problem is None:
                        continue
                    if text != template:
                        problem += f" (the query as resolved at stage {stage!r})"
                    raise self.error(self.part_line(node, part),
                                     f"{where}{self.part_key(node, part)}", problem)

    @staticmethod
    def part_key(node: YamlMap, part: str) -> str:
        if part in ("numerator", "denominator"):
            return f"ratio.{part}"
        return next(k for k in _MEASURES if k in node)

    def part_line(self, node: YamlMap, part: str) -> int:
        if part in ("numerator", "denominator"):
            return int(node["ratio"].line_of(part))
        key = self.part_key(node, part)
        if key == "quantile":
            return int(node[key].line_of("values"))
        return node.line_of(key)


def sql_parameters(text: str) -> list[str]:
    """The ``:name`` parameters of an SQL text, outside quotes and comments, in order.

    Hand-written: sqlite3 names a statement's parameters only once it runs against the
    tables, and an SQL parser (sqlglot) would be a runtime dependency for this one scan.
    """
    if ":" not in text:
        return []
    return [match.group(1) for match in _SQL_PARAMETER.finditer(text) if match.group(1)]
