"""The spec file format, version 1: loading, validation, and the frozen model it becomes.

Every mistake raises :class:`SpecError` naming the file, the line and the key, what is wrong
and what is accepted. Loading reads the file and nothing else: backends and their
``${env:...}`` settings are only checked for shape here, never contacted. No pytest here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.quantity import (
    QuantityError,
    parse_duration,
    parse_quantity,
    quote,
)
from pytest_rollout_slo.spec import gates as spec_gates
from pytest_rollout_slo.spec.exposure import parse_exposure, stage_exposure
from pytest_rollout_slo.spec.gates import Matrix, parse_matrix
from pytest_rollout_slo.spec.model import (
    ON_NO_DATA,
    BackendSpec,
    Bounds,
    DashboardSettings,
    Exposure,
    Objective,
    OnNoData,
    Ratio,
    ResolvedObjective,
    Rollout,
    Scalar,
    Spec,
    Stage,
    substitute,
)
from pytest_rollout_slo.spec.objectives import ObjectiveLoader
from pytest_rollout_slo.spec.reader import SpecReader, kind_of
from pytest_rollout_slo.spec.settings import (
    CONTROL_CHARACTER,
    BackendSchema,
    Setting,
    SettingProblem,
    has_control_character,
)
from pytest_rollout_slo.spec.yamlfast import load_yaml_fast
from pytest_rollout_slo.spec.yamlload import YamlList, YamlMap, YamlSyntaxError

__all__ = ["ON_NO_DATA", "BackendSpec", "Bounds", "Objective", "OnNoData", "Ratio",
           "ResolvedObjective", "Scalar", "Spec", "Stage", "load_spec", "substitute"]

_STAGE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # matched whole: `$` allows a final newline

_TOP_KEYS = ("version", "service", "description", "backends", "variables", "stages", "objectives",
             "matrix", "dashboard", "rollback_on", "exposure", "confidence")
_STAGE_KEYS = ("description", "variables", "rollout", "rollback_on", "exposure", "confidence")
_ROLLOUT_KEYS = ("api", "flag", "percent", "of", "users", "all", "environment", "actors",
                 "feature_group")
_DASHBOARD_KEYS = ("title", "stage_label")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A PromQL call of rate() or irate(): not a metric or label that merely ends in "rate".
_RATE_CALL = re.compile(r"(?<![\w:])(i?rate)\s*\(")
_APIS = ("project", "features")
# What a percentage counts, per flag system: Unleash stickiness can hash users, sessions or
# nothing (random: requests); Flipper has percentage_of_actors and percentage_of_time.
_OF = {"project": ("users", "sessions", "requests"), "features": ("users", "requests")}
ROLLBACK_VERDICTS = ("fail", "error", "no_data", "inconclusive", "warn")


def load_spec(path: Path, backend_types: Mapping[str, BackendSchema]) -> Spec:
    """Read and validate one spec file; raise SpecError on the first mistake."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(path, None, None, f"cannot read the spec file: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(path, line, None, f"byte {data[exc.start]:#04x} is not UTF-8 text; "
                                          "save the spec file as UTF-8") from exc
    try:
        document = load_yaml_fast(text)
    except YamlSyntaxError as exc:
        raise SpecError(path, exc.line, exc.key, exc.message) from exc
    return _Loader(path, backend_types).spec(document)


class _Loader(SpecReader):
    """The sections of a spec file; the objectives and gates have loaders of their own."""

    # -- sections ---------------------------------------------------------------------------

    def spec(self, data: Any) -> Spec:
        if data is None:
            raise self.error(1, None, "the spec file is empty; it needs version, service, "
                                      "backends, stages and objectives")
        root = self.mapping(data, 1, "(top level)")
        self.keys(root, _TOP_KEYS, "")
        version = self.required(root, "version", "")
        if type(version) is not int or version != 1:  # not 1.0, not true
            raise self.error(root.line_of("version"), "version",
                             f"unsupported version {quote(version)}; the only version is 1")
        service = self.string(root, "service", "", required=True)
        description = self.string(root, "description", "")
        backends = self.backends(self.required(root, "backends", ""), root.line_of("backends"))
        variables = self.variables(root.get("variables"), root.line_of("variables"), "variables")
        exposure = (parse_exposure(self, root["exposure"], root.line_of("exposure"), "exposure",
                                   backends) if "exposure" in root else None)
        stages = self.stages(self.required(root, "stages", ""), root.line_of("stages"),
                             _Context(service, variables, backends, exposure))
        names = dict(variables)
        confidence = spec_gates.confidence(self, root, "") if "confidence" in root else None
        spec = Spec(self.path, service, description, backends, names, stages, (),
                    confidence=confidence)
        matrix = (parse_matrix(self, root["matrix"], root.line_of("matrix"), "matrix")
                  if "matrix" in root else ())
        objectives = self.objectives(self.required(root, "objectives", ""),
                                     root.line_of("objectives"), spec, matrix)
        dashboard = (self.dashboard(root["dashboard"], root.line_of("dashboard"))
                     if "dashboard" in root else DashboardSettings())
        rollback_on = self.rollback_on(root, "") or ("fail",)
        spec = Spec(self.path, service, description, backends, variables, stages, objectives,
                    dashboard=dashboard, rollback_on=rollback_on, confidence=confidence)
        self.check_confidence(spec, root)
        return spec

    def check_confidence(self, spec: Spec, root: YamlMap) -> None:
        """A confidence a file or stage gives a baseline objective needs relative changes:
        counts tell a rate ratio, not a difference in points (an objective's own is checked
        where it is read). And on PromQL, a ratio judged by confidence must count events:
        ``rate()`` gives events per second, which would read as a handful of events."""
        for objective in spec.objectives:
            self.check_counts(spec, objective)
            baseline = objective.baseline
            if baseline is None or objective.confidence is not None or objective.ratio is None:
                continue
            absolute = [n for n, c in (("max_increase", baseline.max_increase),
                                       ("max_decrease", baseline.max_decrease))
                        if c is not None and not c.relative]
            for stage in objective.stages if absolute else ():
                if spec.confidence_for(objective, stage) is not None:
                    source = ("stages." + stage) if spec.stages[stage].confidence else "(top level)"
                    raise self.error(objective.line, f"objectives.{objective.name}.baseline."
                                     f"{absolute[0]}",
                                     f"the confidence of {source} judges this baseline by "
                                     "significance, which compares rates: write the change as "
                                     "a percentage (20%), or give the objective a confidence "
                                     "of its own")

    def check_counts(self, spec: Spec, objective: Objective) -> None:
        ratio = objective.ratio
        if ratio is None:
            return
        # The text first: almost every ratio calls no rate(), and then nothing else is read.
        calls = [(part, found) for part, text in (("numerator", ratio.numerator),
                                                  ("denominator", ratio.denominator))
                 if (found := _RATE_CALL.search(text))]
        backend_type = self.backend_types.get(spec.backends[objective.backend].type)
        if not calls or getattr(backend_type, "language", "") != "promql":
            return
        judged = [stage for stage in objective.stages if spec.confidence_for(objective, stage)]
        if judged:
            part, found = calls[0]
            raise self.error(objective.line, f"objectives.{objective.name}.ratio.{part}",
                             f"confidence (at stage {judged[0]}) reads the ratio's parts as "
                             f"counts of events, but {found.group(1)}() gives events per "
                             "second, far fewer than were counted; use "
                             "increase(...[${window}])")

    def dashboard(self, value: Any, line: int) -> DashboardSettings:
        node = self.mapping(value, line, "dashboard")
        self.keys(node, _DASHBOARD_KEYS, "dashboard.")
        title = self.string(node, "title", "dashboard.", required="title" in node)
        label = self.string(node, "stage_label", "dashboard.", default="stage")
        if not _LABEL_NAME.match(label) or label.startswith("__"):
            raise self.error(node.line_of("stage_label"), "dashboard.stage_label",
                             f"{label!r} is not a Prometheus label name (letters, digits and "
                             "_, not starting with a digit or __)")
        if label in ("service", "objective", "severity", "alertname"):
            raise self.error(node.line_of("stage_label"), "dashboard.stage_label",
                             f"{label!r} is a label the generated rules set themselves; "
                             "choose another (default: stage)")
        return DashboardSettings(title, label)

    def rollback_on(self, node: YamlMap, where: str) -> tuple[str, ...] | None:
        if "rollback_on" not in node:
            return None
        value, line, key = node["rollback_on"], node.line_of("rollback_on"), f"{where}rollback_on"
        if not isinstance(value, YamlList) or not value or not all(
                isinstance(v, str) and v in ROLLBACK_VERDICTS for v in value):
            raise self.error(line, key, "must be a list of verdicts out of "
                             f"{', '.join(ROLLBACK_VERDICTS)} (default [fail]), got "
                             f"{kind_of(value) if not isinstance(value, YamlList) else value!r}")
        return tuple(dict.fromkeys(value))

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
                                 f"unknown backend type {quote(type_name)}; accepted: "
                                 f"{', '.join(sorted(self.backend_types))}")
            settings = {k: v for k, v in body_node.items() if k != "type"}
            self.settings(body_node, settings, backend_type.settings, f"{where}.", skip=("type",))
            query_check = getattr(backend_type, "query_check", None)
            if query_check is not None:
                try:
                    self.query_checks[name] = query_check(settings)
                except SettingProblem as exc:
                    raise self.error(body_node.line_of(exc.key) if exc.key in body_node
                                     else body_node.line, f"{where}.{exc.key}",
                                     exc.message) from exc
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
        if isinstance(value, str) and has_control_character(value):
            raise self.error(line, key, CONTROL_CHARACTER)
        if isinstance(value, str) and "${env:" in value:
            return  # checked once resolved, at run time: collection stays offline
        ok = any(_iskind_of(value, kind) for kind in setting.kinds)
        if not ok:
            # A secret written with the wrong type (an all-digit password reads as a number,
            # `basic_auth: "u:pass"` as a string) is still a secret: name its type only.
            got = kind_of(value, shown=not setting.secret)
            raise self.error(line, key, f"must be {' or '.join(setting.kinds)}, got {got}")
        if setting.choices and value not in setting.choices:
            got = kind_of(value, shown=False) if setting.secret else quote(value)
            raise self.error(line, key, f"got {got}; accepted: {', '.join(setting.choices)}")
        if isinstance(value, YamlMap):
            if setting.keys is not None:
                self.settings(value, value, setting.keys, f"{key}.")
            else:
                for inner, inner_value in value.items():
                    if isinstance(inner_value, str) and has_control_character(inner_value):
                        raise self.error(value.line_of(inner), f"{key}.{inner}",
                                         CONTROL_CHARACTER)
                    if not isinstance(inner_value, (str, int, float)) or isinstance(inner_value,
                                                                                   bool):
                        got = kind_of(inner_value, shown=not setting.secret)
                        raise self.error(value.line_of(inner), f"{key}.{inner}",
                                         f"must be a string, got {got}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(line, key, f"must be a finite number, got {quote(value)}")
        if "duration" in setting.kinds and not isinstance(value, (bool, YamlMap)):
            try:
                seconds = parse_duration(value)
            except QuantityError as exc:
                raise self.error(line, key, str(exc)) from exc
            if seconds <= 0:
                raise self.error(line, key, f"must be longer than 0s, got {quote(value)}")
        elif (setting.minimum is not None and isinstance(value, (int, float))
              and not isinstance(value, bool) and value < setting.minimum):
            raise self.error(line, key, f"must be at least {setting.minimum}, got {quote(value)}")

    def stages(self, value: Any, line: int, context: _Context) -> dict[str, Stage]:
        node = self.mapping(value, line, "stages")
        if not node:
            raise self.error(line, "stages", "needs at least one stage, in promotion order")
        result: dict[str, Stage] = {}
        for name, body in node.items():
            where = f"stages.{name}"
            if not _STAGE_RE.fullmatch(name):
                raise self.error(node.line_of(name), where,
                                 "stage names use letters, digits, '_', '.' and '-' (at most 64)")
            body_node = YamlMap() if body is None else self.mapping(body, node.line_of(name), where)
            if body is None:
                body_node.line, body_node.key_lines = node.line_of(name), {}
            self.keys(body_node, _STAGE_KEYS, f"{where}.")
            variables = self.variables(body_node.get("variables"),
                                       body_node.line_of("variables"), f"{where}.variables")
            rollout = (self.rollout(body_node["rollout"], body_node.line_of("rollout"),
                                    f"{where}.rollout") if "rollout" in body_node else None)
            result[name] = Stage(name, self.string(body_node, "description", f"{where}."),
                                 variables, node.line_of(name), rollout,
                                 self.rollback_on(body_node, f"{where}."),
                                 self.exposure(body_node, where, name, rollout, variables,
                                               context),
                                 spec_gates.confidence(self, body_node, f"{where}.")
                                 if "confidence" in body_node else None)
        return result

    def exposure(self, node: YamlMap, where: str, stage: str, rollout: Rollout | None,
                 variables: dict[str, Scalar], context: _Context) -> Exposure | None:
        """The stage's own ``exposure`` or the file's, when its rollout states a percent."""
        source, key = context.exposure, "exposure"
        if "exposure" in node:
            key = f"{where}.exposure"
            source = parse_exposure(self, node["exposure"], node.line_of("exposure"), key,
                                    context.backends)
            if rollout is None or rollout.percent is None:
                raise self.error(node.line_of("exposure"), key,
                                 "needs rollout.percent: the share the canary is promised")
        if source is None or rollout is None or rollout.percent is None:
            return None
        backend = context.backends[str(source["backend"])]
        language = getattr(self.backend_types.get(backend.type), "language", "")
        merged = {"stage": stage, "service": context.service, **context.variables, **variables}
        return stage_exposure(self, source, key, rollout, stage, merged, language == "sql")

    def rollout(self, value: Any, line: int, where: str) -> Rollout:
        node = self.mapping(value, line, where)
        self.keys(node, _ROLLOUT_KEYS, f"{where}.")
        flag = self.string(node, "flag", f"{where}.", required=True)
        api = self.string(node, "api", f"{where}.", default="project")
        if api not in _APIS:
            raise self.error(node.line_of("api"), f"{where}.api",
                             f"got {api!r}; accepted: features (GitLab's development feature "
                             "flags, instance Features API) or project (a project's feature "
                             "flags, the default)")
        percent = self.percent(node, where) if "percent" in node else None
        of = self.string(node, "of", f"{where}.", default="users")
        if of not in _OF[api]:
            raise self.error(node.line_of("of"), f"{where}.of",
                             f"got {of!r}; with api: {api} a percentage is of "
                             f"{' or '.join(_OF[api])}")
        if "of" in node and percent is None:
            raise self.error(node.line_of("of"), f"{where}.of", "only goes with percent")
        if "all" in node and node["all"] is not True:
            raise self.error(node.line_of("all"), f"{where}.all",
                             "must be true (the flag is on for every user)")
        if api == "features":
            return self._features_rollout(node, where, flag, percent, of)
        for key in ("actors", "feature_group"):
            if key in node:
                raise self.error(node.line_of(key), f"{where}.{key}",
                                 f"{key} are Flipper gates of GitLab's development feature "
                                 "flags; add api: features, or use users: for a project flag")
        given = [key for key in ("percent", "users", "all") if key in node]
        if len(given) != 1:
            raise self.error(node.line, where,
                             "give exactly one of percent (10 or 10%), users (a GitLab user list "
                             "name, or ids:1,2,3) or all: true")
        users = self.string(node, "users", f"{where}.", required="users" in node) or None
        environment = self.string(node, "environment", f"{where}.", default="production",
                                  required="environment" in node)
        return Rollout(flag, percent, users, "all" in node, environment, of=of)

    def percent(self, node: YamlMap, where: str) -> float:
        raw = node["percent"]
        try:
            value_, unit = parse_quantity(raw)
        except QuantityError as exc:
            raise self.error(node.line_of("percent"), f"{where}.percent", str(exc)) from exc
        percent = value_ * 100 if unit == "percent" else value_
        if unit == "seconds" or not 0 <= percent <= 100:
            raise self.error(node.line_of("percent"), f"{where}.percent",
                             f"must be a share of users from 0 to 100 (10 or 10%), got "
                             f"{quote(raw)}")
        return percent

    def _features_rollout(self, node: YamlMap, where: str, flag: str, percent: float | None,
                          of: str) -> Rollout:
        for key, why in (("users", "Flipper has no user lists; name the users as actors "
                                   "(User:1) or the team as feature_group"),
                         ("environment", "the Features API has no environments: staging and "
                                         "production are separate GitLab instances, so point "
                                         "--slo-gitlab-url at the instance instead")):
            if key in node:
                raise self.error(node.line_of(key), f"{where}.{key}", why)
        actors: tuple[str, ...] = ()
        if "actors" in node:
            raw = node["actors"]
            if not isinstance(raw, YamlList) or not raw or not all(
                    isinstance(a, str) and re.fullmatch(r"[A-Za-z:]+:\d+", a) for a in raw):
                raise self.error(node.line_of("actors"), f"{where}.actors",
                                 "must be a list of Flipper actor ids as GET /features shows "
                                 "them (User:1, Project:278964, Group:9970)")
            actors = tuple(sorted(set(raw)))
        group = self.string(node, "feature_group", f"{where}.") or None
        if "all" in node and (percent is not None or actors or group):
            raise self.error(node.line, where, "all: true is the boolean gate, on for everyone; "
                             "it takes no percent, actors or feature_group")
        if "all" not in node and percent is None and not actors and not group:
            raise self.error(node.line, where,
                             "with api: features give percent (of users or requests), actors "
                             "and/or feature_group (the internal stage), or all: true")
        return Rollout(flag, percent, None, "all" in node, "", api="features", of=of,
                       actors=actors, feature_group=group)

    def objectives(self, value: Any, line: int, spec: Spec, matrix: Matrix
                   ) -> tuple[Objective, ...]:
        objectives = ObjectiveLoader(self, spec, matrix)
        if not isinstance(value, YamlList) or not value:
            raise self.error(line, "objectives", "must be a list with at least one objective "
                                                 f"(- name: ...), got {kind_of(value)}")
        seen: dict[str, int] = {}
        result = []
        for index, (item, item_line) in enumerate(zip(value, value.item_lines, strict=False)):
            objective = objectives.load(item, item_line, index)
            if objective.name in seen:
                raise self.error(objective.line, f"objectives[{index}].name",
                                 f"duplicate objective name {quote(objective.name)} (first on line "
                                 f"{seen[objective.name]}); names are unique in a file")
            seen[objective.name] = objective.line
            result.append(objective)
        return tuple(result)


@dataclass(frozen=True)
class _Context:
    """What a stage's ``exposure`` is checked against: the file's settings around it."""

    service: str
    variables: Mapping[str, Scalar]
    backends: Mapping[str, BackendSpec]
    exposure: YamlMap | None


def _iskind_of(value: Any, kind: str) -> bool:
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
