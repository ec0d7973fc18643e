"""The spec file format, version 1: loading, validation, and the frozen model it becomes.

Every mistake raises :class:`SpecError` naming the file, the line and the key, what is wrong
and what is accepted. Loading reads the file and nothing else: backends and their
``${env:...}`` settings are only checked for shape here, never contacted. No pytest here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_rollout_slo.backends import BackendType, Setting
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.quantity import (
    UNITS,
    QuantityError,
    Unit,
    format_duration,
    format_value,
    parse_duration,
    parse_quantity,
)
from pytest_rollout_slo.yamlload import YamlList, YamlMap, YamlSyntaxError, load_yaml

OnNoData = Literal["fail", "skip", "pass"]
ON_NO_DATA: tuple[OnNoData, ...] = ("fail", "skip", "pass")

_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_STAGE_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `$${` writes a literal `${`; `${env:...}` is matched so it can be refused in queries.
_PLACEHOLDER_RE = re.compile(r"\$\$\{|\$\{(env:[^}]*|[^}]*)\}")

_TOP_KEYS = ("version", "service", "description", "backends", "variables", "stages", "objectives")
_STAGE_KEYS = ("description", "variables")
_OBJECTIVE_KEYS = ("name", "description", "backend", "query", "ratio", "min", "max", "unit",
                   "thresholds", "stages", "on_no_data")
_RATIO_KEYS = ("numerator", "denominator", "min_denominator")
_BOUND_KEYS = ("min", "max")
BUILTIN_VARIABLES = ("stage", "service")

Scalar = str | int | float


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds of one objective at one stage; at least one is set."""

    min: float | None
    max: float | None


@dataclass(frozen=True)
class Ratio:
    numerator: str
    denominator: str
    min_denominator: float


@dataclass(frozen=True)
class BackendSpec:
    name: str
    type: str
    settings: Mapping[str, Any]
    line: int


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    variables: Mapping[str, Scalar]
    line: int


@dataclass(frozen=True)
class Objective:
    name: str
    description: str
    backend: str
    query: str | None
    ratio: Ratio | None
    bounds: Mapping[str, Bounds]
    """Bounds per stage the objective applies to, overrides already merged."""
    unit: Unit
    on_no_data: OnNoData
    line: int

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.bounds)


@dataclass(frozen=True)
class ResolvedObjective:
    """An objective at one stage: queries with every ``${name}`` replaced, and its bounds."""

    objective: Objective
    stage: str
    bounds: Bounds
    queries: Mapping[str, str]
    """``{"query": ...}`` or ``{"numerator": ..., "denominator": ...}``."""
    variables: Mapping[str, Scalar]
    window: float | None
    window_text: str
    """The window as the spec wrote it (``24h``), for reports; empty without a window."""


@dataclass(frozen=True)
class Spec:
    path: Path
    service: str
    description: str
    backends: Mapping[str, BackendSpec]
    variables: Mapping[str, Scalar]
    stages: Mapping[str, Stage]
    objectives: tuple[Objective, ...]

    def variables_for(self, stage: str) -> dict[str, Scalar]:
        merged: dict[str, Scalar] = {"stage": stage, "service": self.service}
        merged.update(self.variables)
        merged.update(self.stages[stage].variables)
        return merged

    def resolve(self, objective: Objective, stage: str) -> ResolvedObjective:
        """The objective as it runs at ``stage``; validated at load, so it cannot fail."""
        variables = self.variables_for(stage)
        texts = ({"query": objective.query} if objective.query is not None else
                 {"numerator": objective.ratio.numerator,  # type: ignore[union-attr]
                  "denominator": objective.ratio.denominator})  # type: ignore[union-attr]
        queries = {part: substitute(text, variables)[0] for part, text in texts.items()}
        window = variables.get("window")
        return ResolvedObjective(
            objective=objective, stage=stage, bounds=objective.bounds[stage], queries=queries,
            variables=variables,
            window=parse_duration(window) if window is not None else None,
            window_text="" if window is None else (
                window.strip() if isinstance(window, str) else format_duration(window)),
        )


def substitute(text: str, variables: Mapping[str, Scalar]) -> tuple[str, list[str]]:
    """Replace ``${name}``; return the text and the names that were not defined."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name in variables:
            value = variables[name]
            return str(value) if not isinstance(value, float) else repr(value)
        missing.append(name)
        return match.group(0)

    return _PLACEHOLDER_RE.sub(replace, text), missing


def load_spec(path: Path, backend_types: Mapping[str, BackendType]) -> Spec:
    """Read and validate one spec file; raise SpecError on the first mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, None, f"cannot read the spec file: {exc}") from exc
    try:
        data = load_yaml(text)
    except YamlSyntaxError as exc:
        raise SpecError(path, exc.line, exc.key, exc.message) from exc
    return _Loader(path, backend_types).spec(data)


class _Loader:
    def __init__(self, path: Path, backend_types: Mapping[str, BackendType]) -> None:
        self.path = path
        self.backend_types = backend_types

    def error(self, line: int | None, key: str | None, message: str) -> SpecError:
        return SpecError(self.path, line, key, message)

    # -- generic shape checks -------------------------------------------------------------

    def mapping(self, value: Any, line: int, key: str) -> YamlMap:
        if not isinstance(value, YamlMap):
            raise self.error(line, key, f"must be a mapping (key: value lines), got {_kind(value)}")
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
                             f"must be a non-empty string, got {_kind(value)}")
        return value

    # -- sections ---------------------------------------------------------------------------

    def spec(self, data: Any) -> Spec:
        if data is None:
            raise self.error(1, None, "the spec file is empty; it needs version, service, "
                                      "backends, stages and objectives")
        root = self.mapping(data, 1, "(top level)")
        self.keys(root, _TOP_KEYS, "")
        version = self.required(root, "version", "")
        if version != 1 or isinstance(version, bool):
            raise self.error(root.line_of("version"), "version",
                             f"unsupported version {version!r}; the only version is 1")
        service = self.string(root, "service", "", required=True)
        description = self.string(root, "description", "")
        backends = self.backends(self.required(root, "backends", ""), root.line_of("backends"))
        variables = self.variables(root.get("variables"), root.line_of("variables"), "variables")
        stages = self.stages(self.required(root, "stages", ""), root.line_of("stages"))
        names = dict(variables)
        spec = Spec(self.path, service, description, backends, names, stages, ())
        objectives = self.objectives(self.required(root, "objectives", ""),
                                     root.line_of("objectives"), spec)
        return Spec(self.path, service, description, backends, variables, stages, objectives)

    def backends(self, value: Any, line: int) -> dict[str, BackendSpec]:
        node = self.mapping(value, line, "backends")
        if not node:
            raise self.error(line, "backends", "needs at least one backend")
        result: dict[str, BackendSpec] = {}
        for name, body in node.items():
            where = f"backends.{name}"
            body_node = self.mapping(body, node.line_of(name), where)
            type_name = self.string(body_node, "type", f"{where}.", required=True)
            backend_type = self.backend_types.get(type_name)
            if backend_type is None:
                raise self.error(body_node.line_of("type"), f"{where}.type",
                                 f"unknown backend type {type_name!r}; accepted: "
                                 f"{', '.join(sorted(self.backend_types))}")
            settings = {k: v for k, v in body_node.items() if k != "type"}
            self.settings(body_node, settings, backend_type.settings, f"{where}.", skip=("type",))
            result[name] = BackendSpec(name, type_name, settings, body_node.line)
        return result

    def settings(self, node: YamlMap, values: Mapping[str, Any], schema: Mapping[str, Setting],
                 where: str, skip: tuple[str, ...] = ()) -> None:
        self.keys(node, (*skip, *schema), where)
        for key, setting in schema.items():
            if key not in values:
                if setting.required:
                    self.required(node, key, where)
                continue
            self.setting(values[key], node.line_of(key), f"{where}{key}", setting)

    def setting(self, value: Any, line: int, key: str, setting: Setting) -> None:
        if isinstance(value, str) and "${env:" in value:
            return  # checked once resolved, at run time: collection stays offline
        ok = any(_is_kind(value, kind) for kind in setting.kinds)
        if not ok:
            raise self.error(line, key, f"must be {' or '.join(setting.kinds)}, got {_kind(value)}")
        if setting.choices and value not in setting.choices:
            raise self.error(line, key, f"got {value!r}; accepted: {', '.join(setting.choices)}")
        if isinstance(value, YamlMap):
            if setting.keys is not None:
                self.settings(value, value, setting.keys, f"{key}.")
            else:
                for inner, inner_value in value.items():
                    if not isinstance(inner_value, (str, int, float)) or isinstance(inner_value,
                                                                                   bool):
                        raise self.error(value.line_of(inner), f"{key}.{inner}",
                                         f"must be a string, got {_kind(inner_value)}")
        if "duration" in setting.kinds and isinstance(value, str):
            try:
                parse_duration(value)
            except QuantityError as exc:
                raise self.error(line, key, str(exc)) from exc

    def variables(self, value: Any, line: int, where: str) -> dict[str, Scalar]:
        if value is None:
            return {}
        node = self.mapping(value, line, where)
        result: dict[str, Scalar] = {}
        for name, item in node.items():
            key = f"{where}.{name}"
            if not _VAR_NAME_RE.match(name) or name in BUILTIN_VARIABLES:
                raise self.error(node.line_of(name), key,
                                 "variable names are letters, digits and _ (not starting with "
                                 "a digit) and may not be the built-ins "
                                 f"{', '.join(BUILTIN_VARIABLES)}")
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise self.error(node.line_of(name), key,
                                 f"must be a string or a number, got {_kind(item)}")
            if name == "window":
                try:
                    parse_duration(item)
                except QuantityError as exc:
                    raise self.error(node.line_of(name), key, f"window is a duration: {exc}"
                                     ) from exc
            result[name] = item
        return result

    def stages(self, value: Any, line: int) -> dict[str, Stage]:
        node = self.mapping(value, line, "stages")
        if not node:
            raise self.error(line, "stages", "needs at least one stage, in promotion order")
        result: dict[str, Stage] = {}
        for name, body in node.items():
            where = f"stages.{name}"
            if not _STAGE_RE.match(name):
                raise self.error(node.line_of(name), where,
                                 "stage names use letters, digits, '_', '.' and '-'")
            body_node = YamlMap() if body is None else self.mapping(body, node.line_of(name), where)
            if body is None:
                body_node.line, body_node.key_lines = node.line_of(name), {}
            self.keys(body_node, _STAGE_KEYS, f"{where}.")
            variables = self.variables(body_node.get("variables"),
                                       body_node.line_of("variables"), f"{where}.variables")
            result[name] = Stage(name, self.string(body_node, "description", f"{where}."),
                                 variables, node.line_of(name))
        return result

    def objectives(self, value: Any, line: int, spec: Spec) -> tuple[Objective, ...]:
        if not isinstance(value, YamlList) or not value:
            raise self.error(line, "objectives", "must be a list with at least one objective "
                                                 f"(- name: ...), got {_kind(value)}")
        seen: dict[str, int] = {}
        result = []
        for index, (item, item_line) in enumerate(zip(value, value.item_lines, strict=False)):
            objective = self.objective(item, item_line, index, spec)
            if objective.name in seen:
                raise self.error(objective.line, f"objectives[{index}].name",
                                 f"duplicate objective name {objective.name!r} (first on line "
                                 f"{seen[objective.name]}); names are unique in a file")
            seen[objective.name] = objective.line
            result.append(objective)
        return tuple(result)

    def objective(self, item: Any, line: int, index: int, spec: Spec) -> Objective:
        node = self.mapping(item, line, f"objectives[{index}]")
        name = self.string(node, "name", f"objectives[{index}].", required=True)
        where = f"objectives.{name}."
        if not _NAME_RE.match(name):
            raise self.error(node.line_of("name"), f"{where}name".rstrip("."),
                             "objective names use lowercase letters, digits and _ ([a-z0-9_]+)")
        self.keys(node, _OBJECTIVE_KEYS, where)
        backend = self.string(node, "backend", where, default=next(iter(spec.backends)))
        if backend not in spec.backends:
            raise self.error(node.line_of("backend"), f"{where}backend",
                             f"unknown backend {backend!r}; this file defines: "
                             f"{', '.join(spec.backends)}")
        query, ratio = self.query_or_ratio(node, where)
        unit = self.string(node, "unit", where) or None
        if unit is not None and unit not in UNITS:
            raise self.error(node.line_of("unit"), f"{where}unit",
                             f"got {unit!r}; accepted: {', '.join(UNITS)}")
        on_no_data = self.string(node, "on_no_data", where, default="fail")
        if on_no_data not in ON_NO_DATA:
            raise self.error(node.line_of("on_no_data"), f"{where}on_no_data",
                             f"got {on_no_data!r}; accepted: {', '.join(ON_NO_DATA)}")
        stages = self.objective_stages(node, where, spec)
        base, units = self.bounds(node, where, node)
        overrides: dict[str, tuple[dict[str, float], list[Unit]]] = {}
        override_nodes: dict[str, YamlMap] = {}
        if "thresholds" in node:
            table = self.mapping(node["thresholds"], node.line_of("thresholds"),
                                 f"{where}thresholds")
            for stage, body in table.items():
                key = f"{where}thresholds.{stage}"
                if stage not in spec.stages:
                    raise self.error(table.line_of(stage), key,
                                     f"unknown stage {stage!r}; stages: {', '.join(spec.stages)}")
                if stage not in stages:
                    raise self.error(table.line_of(stage), key,
                                     f"the objective does not apply to stage {stage!r} "
                                     f"(its stages: {', '.join(stages)})")
                body_node = self.mapping(body, table.line_of(stage), key)
                self.keys(body_node, _BOUND_KEYS, f"{key}.")
                overrides[stage] = self.bounds(body_node, f"{key}.", body_node)
                override_nodes[stage] = body_node
        all_units = [*units, *(u for _, us in overrides.values() for u in us)]
        shown: Unit = unit or next((u for u in all_units if u != "number"), "number")  # type: ignore[assignment]
        bounds: dict[str, Bounds] = {}
        for stage in stages:
            merged = dict(base)
            merged.update(overrides.get(stage, ({}, []))[0])
            low, high = merged.get("min"), merged.get("max")
            if low is None and high is None:
                at_line = override_nodes[stage].line if stage in override_nodes else node.line
                raise self.error(at_line, f"{where}max",
                                 f"no min or max for stage {stage!r}; give min, max, or both "
                                 "(on the objective or in thresholds)")
            if low is not None and high is not None and low > high:
                # Point at the override that made it so, else at the objective's own min.
                source = override_nodes.get(stage)
                if source is None or not ({"min", "max"} & set(source)):
                    source = node
                bound = "min" if "min" in source else "max"
                key = f"{where}thresholds.{stage}.{bound}" if source is not node else f"{where}min"
                raise self.error(source.line_of(bound), key,
                                 f"min {format_value(low, shown)} is greater than max "
                                 f"{format_value(high, shown)} at stage {stage!r}")
            bounds[stage] = Bounds(low, high)
            self.check_placeholders(node, where, query, ratio, spec, stage)
        return Objective(name, self.string(node, "description", where), backend, query, ratio,
                         bounds, shown, on_no_data, node.line)

    def query_or_ratio(self, node: YamlMap, where: str) -> tuple[str | None, Ratio | None]:
        if ("query" in node) == ("ratio" in node):
            raise self.error(node.line, f"{where}query",
                             "give exactly one of `query` or `ratio`")
        if "query" in node:
            return self.string(node, "query", where, required=True), None
        ratio = self.mapping(node["ratio"], node.line_of("ratio"), f"{where}ratio")
        self.keys(ratio, _RATIO_KEYS, f"{where}ratio.")
        numerator = self.string(ratio, "numerator", f"{where}ratio.", required=True)
        denominator = self.string(ratio, "denominator", f"{where}ratio.", required=True)
        minimum = ratio.get("min_denominator", 0)
        if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or minimum < 0:
            raise self.error(ratio.line_of("min_denominator"), f"{where}ratio.min_denominator",
                             f"must be a number >= 0, got {minimum!r}")
        return None, Ratio(numerator, denominator, float(minimum))

    def objective_stages(self, node: YamlMap, where: str, spec: Spec) -> tuple[str, ...]:
        if "stages" not in node:
            return tuple(spec.stages)
        value = node["stages"]
        if not isinstance(value, YamlList) or not value:
            raise self.error(node.line_of("stages"), f"{where}stages",
                             f"must be a list of stage names, got {_kind(value)}")
        for stage, line in zip(value, value.item_lines, strict=False):
            if stage not in spec.stages:
                raise self.error(line, f"{where}stages",
                                 f"unknown stage {stage!r}; stages: {', '.join(spec.stages)}")
        # Promotion order, whatever order the list was written in.
        return tuple(s for s in spec.stages if s in value)

    def bounds(self, node: YamlMap, where: str, source: YamlMap
               ) -> tuple[dict[str, float], list[Unit]]:
        result: dict[str, float] = {}
        units: list[Unit] = []
        for key in _BOUND_KEYS:
            if key not in source:
                continue
            try:
                value, unit = parse_quantity(source[key])
            except QuantityError as exc:
                raise self.error(source.line_of(key), f"{where}{key}", str(exc)) from exc
            result[key] = value
            units.append(unit)
        return result, units

    def check_placeholders(self, node: YamlMap, where: str, query: str | None,
                           ratio: Ratio | None, spec: Spec, stage: str) -> None:
        variables = spec.variables_for(stage)
        parts = ({"query": query} if query is not None else
                 {"ratio.numerator": ratio.numerator,  # type: ignore[union-attr]
                  "ratio.denominator": ratio.denominator})  # type: ignore[union-attr]
        for part, text in parts.items():
            _, missing = substitute(text, variables)
            line = (node["ratio"].line_of(part.split(".")[1]) if part.startswith("ratio.")
                    else node.line_of(part))
            for name in missing:
                if name.startswith("env:"):
                    raise self.error(line, f"{where}{part}",
                                     f"${{{name}}} is not allowed in queries; environment "
                                     "variables belong in backend settings only")
                defined = sorted({*variables})
                raise self.error(line, f"{where}{part}",
                                 f"undefined variable ${{{name}}} at stage {stage!r}; defined: "
                                 f"{', '.join(defined)}")


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "duration":
        return isinstance(value, str) or (isinstance(value, (int, float))
                                          and not isinstance(value, bool))
    if kind == "mapping":
        return isinstance(value, YamlMap)
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, YamlMap):
        return "a mapping"
    if isinstance(value, YamlList):
        return "a list"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return type(value).__name__
