"""Spec loading: the SPEC-V1 model, and one test per kind of spec mistake.

Error cases mark the line the error must name with a trailing ``# <-- here`` comment, so the
expected line number is visible in the YAML itself.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_rollout_slo.backends.base import BackendType
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.sqlite import SQLITE
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import Bounds, Objective, Spec, load_spec

BACKEND_TYPES: Mapping[str, BackendType] = {"sqlite": SQLITE, "prometheus": PROMETHEUS}
MARK = "# <-- here"

FULL_SPEC = """\
version: 1
service: conflict-resolver
description: Rollout gates for the Conflict Resolver agent

backends:
  metrics:
    type: prometheus
    url: ${env:PROMETHEUS_URL_FOR_SPEC_TESTS}
  events:
    type: sqlite
    path: ../examples/quickstart/events.db

variables:
  feature: conflict_resolver
  window: 1h

stages:
  internal:
    description: GitLab team members only
  beta:
    description: 10% -> 25% -> 50% of users
    variables: {window: 6h}
  ga:
    variables: {window: 24h}

objectives:
  - name: error_rate
    description: Agent requests that end in an error
    backend: metrics
    ratio:
      numerator: sum(increase(agent_errors_total{feature="${feature}"}[${window}]))
      denominator: sum(increase(agent_requests_total{feature="${feature}"}[${window}]))
      min_denominator: 50
    max: 5%
    thresholds:
      ga: {max: 2%}

  - name: tool_call_latency_p95
    query: histogram_quantile(0.95, sum by (le) (rate(x_bucket{feature="${feature}"}[${window}])))
    max: 10s

  - name: positive_ratings
    backend: events
    ratio:
      numerator: SELECT count(*) FROM ratings WHERE thumbs = 'up' AND ts >= :window_start
      denominator: SELECT count(*) FROM ratings WHERE ts >= :window_start
      min_denominator: 20
    min: 60%
    stages: [ga, beta]
    thresholds:
      ga: {min: 70%}
    on_no_data: skip

  - name: open_incidents
    query: count(incident{service="${service}", stage="${stage}", note="$${literal}"})
    max: 3

  - name: queue_depth
    query: max(queue_depth)
    unit: seconds
    min: 0
    max: 120
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.slo.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str) -> Spec:
    return load_spec(_write(tmp_path, text), BACKEND_TYPES)


def _error(tmp_path: Path, text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text)
    return info.value


def _marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), start=1)
             if MARK in line]
    assert len(lines) == 1, "each error case marks exactly one line"
    return lines[0]


def _objective(spec: Spec, name: str) -> Objective:
    return next(o for o in spec.objectives if o.name == name)


def _assert_error(tmp_path: Path, text: str, key: str | None, phrase: str) -> SpecError:
    error = _error(tmp_path, text)
    assert error.path == tmp_path / "spec.slo.yaml"
    assert (error.line, error.key) == (_marked_line(text), key), str(error)
    assert phrase in error.message
    return error


# -- the valid model ---------------------------------------------------------------------------


@pytest.fixture
def full_spec(tmp_path: Path) -> Spec:
    return _load(tmp_path, FULL_SPEC)


def test_full_spec_top_level(full_spec: Spec, tmp_path: Path) -> None:
    assert full_spec.path == tmp_path / "spec.slo.yaml"
    assert full_spec.service == "conflict-resolver"
    assert full_spec.description == "Rollout gates for the Conflict Resolver agent"
    assert full_spec.variables == {"feature": "conflict_resolver", "window": "1h"}
    assert [o.name for o in full_spec.objectives] == [
        "error_rate", "tool_call_latency_p95", "positive_ratings", "open_incidents",
        "queue_depth"]


def test_backends_keep_file_order_and_settings(full_spec: Spec) -> None:
    assert list(full_spec.backends) == ["metrics", "events"]
    metrics, events = full_spec.backends["metrics"], full_spec.backends["events"]
    assert (metrics.type, events.type) == ("prometheus", "sqlite")
    assert dict(events.settings) == {"path": "../examples/quickstart/events.db"}
    assert (metrics.line, events.line) == (7, 10)


def test_env_placeholder_in_backend_setting_is_kept_unresolved(full_spec: Spec) -> None:
    # The variable is not set: loading must still work (collection stays offline).
    assert full_spec.backends["metrics"].settings["url"] == "${env:PROMETHEUS_URL_FOR_SPEC_TESTS}"


def test_objective_without_backend_uses_the_first(full_spec: Spec) -> None:
    assert _objective(full_spec, "tool_call_latency_p95").backend == "metrics"
    assert _objective(full_spec, "positive_ratings").backend == "events"


def test_stages_in_promotion_order(full_spec: Spec) -> None:
    assert list(full_spec.stages) == ["internal", "beta", "ga"]
    assert full_spec.stages["internal"].description == "GitLab team members only"
    assert full_spec.stages["ga"].description == ""
    assert full_spec.stages["beta"].line == 20


def test_stage_variables_override_file_variables(full_spec: Spec) -> None:
    assert full_spec.variables_for("internal")["window"] == "1h"
    assert full_spec.variables_for("beta")["window"] == "6h"
    assert full_spec.variables_for("ga")["window"] == "24h"
    assert full_spec.variables_for("ga")["feature"] == "conflict_resolver"


def test_builtin_variables(full_spec: Spec) -> None:
    variables = full_spec.variables_for("beta")
    assert (variables["stage"], variables["service"]) == ("beta", "conflict-resolver")


def test_thresholds_overrides_merged_per_stage(full_spec: Spec) -> None:
    assert _objective(full_spec, "error_rate").bounds == {
        "internal": Bounds(None, 0.05), "beta": Bounds(None, 0.05), "ga": Bounds(None, 0.02)}
    assert _objective(full_spec, "queue_depth").bounds["beta"] == Bounds(0.0, 120.0)


def test_objective_stages_restriction_in_promotion_order(full_spec: Spec) -> None:
    ratings = _objective(full_spec, "positive_ratings")
    assert ratings.stages == ("beta", "ga")
    assert ratings.bounds == {"beta": Bounds(0.6, None), "ga": Bounds(0.7, None)}
    assert _objective(full_spec, "error_rate").stages == ("internal", "beta", "ga")


def test_units_from_threshold_form_or_unit_key(full_spec: Spec) -> None:
    units = {o.name: o.unit for o in full_spec.objectives}
    assert units == {"error_rate": "percent", "tool_call_latency_p95": "seconds",
                     "positive_ratings": "percent", "open_incidents": "number",
                     "queue_depth": "seconds"}


def test_on_no_data_defaults_to_fail(full_spec: Spec) -> None:
    assert _objective(full_spec, "error_rate").on_no_data == "fail"
    assert _objective(full_spec, "positive_ratings").on_no_data == "skip"


def test_ratio_and_objective_lines(full_spec: Spec) -> None:
    error_rate = _objective(full_spec, "error_rate")
    assert error_rate.ratio is not None and error_rate.query is None
    assert error_rate.ratio.min_denominator == 50.0
    assert error_rate.description == "Agent requests that end in an error"
    assert error_rate.line == 27
    assert _objective(full_spec, "tool_call_latency_p95").ratio is None


def test_resolve_substitutes_stage_then_file_variables(full_spec: Spec) -> None:
    resolved = full_spec.resolve(_objective(full_spec, "error_rate"), "beta")
    assert resolved.stage == "beta"
    assert resolved.bounds == Bounds(None, 0.05)
    assert resolved.queries == {
        "numerator": 'sum(increase(agent_errors_total{feature="conflict_resolver"}[6h]))',
        "denominator": 'sum(increase(agent_requests_total{feature="conflict_resolver"}[6h]))',
    }
    assert resolved.window == 6 * 3600.0
    assert full_spec.resolve(_objective(full_spec, "error_rate"), "ga").bounds == Bounds(None, 0.02)


def test_resolve_builtins_and_escaped_dollar(full_spec: Spec) -> None:
    resolved = full_spec.resolve(_objective(full_spec, "open_incidents"), "internal")
    assert resolved.queries == {
        "query": 'count(incident{service="conflict-resolver", stage="internal", '
                 'note="${literal}"})'}
    assert resolved.window == 3600.0


def test_resolve_leaves_sql_named_parameters_alone(full_spec: Spec) -> None:
    resolved = full_spec.resolve(_objective(full_spec, "positive_ratings"), "ga")
    assert resolved.queries["denominator"] == (
        "SELECT count(*) FROM ratings WHERE ts >= :window_start")
    assert resolved.variables["window"] == "24h"


def test_numeric_variable_substitution(tmp_path: Path) -> None:
    spec = _load(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        variables: {limit: 5, ratio: 0.5}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT ${limit} * ${ratio}
            max: 5
        """)
    assert spec.resolve(spec.objectives[0], "beta").queries == {"query": "SELECT 5 * 0.5"}
    assert spec.resolve(spec.objectives[0], "beta").window is None


def test_yaml_merge_key_may_override_merged_keys(tmp_path: Path) -> None:
    # `<<: *base` followed by an explicit key is how YAML spells "like base, but ...".
    spec = _load(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - &base
            name: rate
            query: SELECT 1
            max: 5%
          - <<: *base
            name: other_rate
        """)
    assert [o.name for o in spec.objectives] == ["rate", "other_rate"]
    assert spec.objectives[1].bounds == {"beta": Bounds(None, 0.05)}


@pytest.mark.parametrize(("setting", "key"), [
    ("bearer_token: 80517342996", "backends.prom.bearer_token"),
    ("basic_auth: {username: ci, password: 80517342996}", "backends.prom.basic_auth.password"),
])
def test_a_secret_of_the_wrong_type_is_named_but_never_shown(tmp_path: Path, setting: str,
                                                             key: str) -> None:
    # An all-digit token or password reads as a number in YAML; the error must still not
    # print it, since collection errors end up in CI logs.
    error = _assert_error(tmp_path, f"""\
        version: 1
        service: svc
        backends:
          prom:
            type: prometheus
            url: http://prometheus:9090
            {setting}  # <-- here
        """, key, "must be string, got a number")
    assert "80517342996" not in str(error)


def test_spec_error_str_names_path_line_and_key(tmp_path: Path) -> None:
    error = _error(tmp_path, """\
        version: 1
        service: 5
        """)
    assert str(error) == (f"{tmp_path / 'spec.slo.yaml'}:2: service: must be a non-empty "
                          "string, got a number (5)")


# -- spec errors ---------------------------------------------------------------------------------


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    error = _assert_error(tmp_path, """\
        version: 1
        service: svc: extra  # <-- here
        """, "service", "invalid YAML")
    assert "mapping values are not allowed" in error.message


@pytest.mark.parametrize(("text", "key", "first_line"), [
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        service: other  # <-- here
        """, "service", 2, id="top-level"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
            max: 2%  # <-- here
        """, "max", 8, id="in-objective"),
    pytest.param("""\
        version: 1
        service: svc
        backends:
          db:
            type: sqlite
            path: a.db
          db:  # <-- here
            type: sqlite
            path: b.db
        """, "db", 4, id="in-backends"),
])
def test_duplicate_mapping_key_names_the_first_line(tmp_path: Path, text: str, key: str,
                                                    first_line: int) -> None:
    error = _assert_error(tmp_path, text, key, "duplicate key")
    assert f"first defined on line {first_line}" in error.message


@pytest.mark.parametrize(("text", "key", "phrase"), [
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages:
          beta: {}
          on: {}  # <-- here
        """, "True", "got bool True", id="on-is-a-boolean"),
    pytest.param("""\
        version: 1
        service: svc
        variables:
          1: one  # <-- here
        """, "1", "got int 1", id="number"),
])
def test_non_string_key(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    error = _assert_error(tmp_path, text, key, "keys must be strings")
    assert phrase in error.message
    assert "quote the key" in error.message


@pytest.mark.parametrize(("text", "key", "accepted"), [
    pytest.param("""\
        version: 1
        service: svc
        owner: team-a  # <-- here
        """, "owner", "version, service, description, backends, variables, stages, objectives",
        id="top-level"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            maximum: 5%  # <-- here
        """, "objectives.rate.maximum", "name, description, backend, query, ratio, quantile",
        id="objective"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages:
          beta:
            window: 6h  # <-- here
        """, "stages.beta.window", "description, variables", id="stage"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            ratio:
              numerator: SELECT 1
              denominator: SELECT 2
              min_count: 5  # <-- here
            max: 5%
        """, "objectives.rate.ratio.min_count", "numerator, denominator, min_denominator",
        id="ratio"),
    pytest.param("""\
        version: 1
        service: svc
        backends:
          db:
            type: sqlite
            path: e.db
            url: http://localhost  # <-- here
        """, "backends.db.url", "type, path, timeout", id="backend-setting"),
    pytest.param("""\
        version: 1
        service: svc
        backends:
          prom:
            type: prometheus
            url: http://prometheus:9090
            basic_auth:
              username: u
              pass: p  # <-- here
        """, "backends.prom.basic_auth.pass", "username, password", id="nested-backend-setting"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
            thresholds:
              beta: {max: 2%, maximum: 3%}  # <-- here
        """, "objectives.rate.thresholds.beta.maximum", "min, max", id="thresholds-stage"),
])
def test_unknown_key_lists_accepted_keys(tmp_path: Path, text: str, key: str,
                                         accepted: str) -> None:
    error = _assert_error(tmp_path, text, key, "unknown key")
    assert accepted in error.message


@pytest.mark.parametrize(("text", "key", "phrase"), [
    pytest.param("""\
        version: 1
        service: 5  # <-- here
        """, "service", "must be a non-empty string, got a number (5)", id="service-number"),
    pytest.param("""\
        version: 1
        service: ""  # <-- here
        """, "service", "must be a non-empty string", id="service-empty"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:  # <-- here
          name: rate
          query: SELECT 1
        """, "objectives", "must be a list with at least one objective", id="objectives-mapping"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives: []  # <-- here
        """, "objectives", "must be a list with at least one objective", id="objectives-empty"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {}  # <-- here
        """, "stages", "needs at least one stage", id="stages-empty"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: [beta, ga]  # <-- here
        """, "stages", "must be a mapping", id="stages-list"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {}  # <-- here
        """, "backends", "needs at least one backend", id="backends-empty"),
    pytest.param("""\
        version: 1
        service: svc
        backends:  # <-- here
        """, "backends", "must be a mapping (key: value lines), got nothing (null)",
        id="backends-null"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            ratio:
              numerator: SELECT 1
              denominator: SELECT 2
              min_denominator: -1  # <-- here
            max: 5%
        """, "objectives.rate.ratio.min_denominator", "must be a number >= 0, got -1",
        id="min-denominator-negative"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            ratio:
              numerator: SELECT 1
              denominator: SELECT 2
              min_denominator: many  # <-- here
            max: 5%
        """, "objectives.rate.ratio.min_denominator", "must be a number >= 0",
        id="min-denominator-string"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        variables:
          feature: [a, b]  # <-- here
        """, "variables.feature", "must be a string or a number, got a list", id="variable-list"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages:
          beta:
            variables: {feature: {a: b}}  # <-- here
        """, "stages.beta.variables.feature", "must be a string or a number, got a mapping",
        id="stage-variable-mapping"),
    pytest.param("""\
        version: 1
        service: svc
        backends:
          db:
            type: sqlite
            path: 42  # <-- here
        """, "backends.db.path", "must be string, got a number (42)", id="backend-setting-type"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
            on_no_data: ignore  # <-- here
        """, "objectives.rate.on_no_data", "accepted: fail, skip, pass", id="on-no-data"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - SELECT 1  # <-- here
        """, "objectives[0]", "must be a mapping", id="objective-not-mapping"),
])
def test_wrong_type(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    _assert_error(tmp_path, text, key, phrase)


@pytest.mark.parametrize(("text", "phrase"), [
    pytest.param("""\
        service: svc  # <-- here
        backends: {db: {type: sqlite, path: e.db}}
        """, "is required but missing", id="missing"),
    pytest.param("""\
        version: 2  # <-- here
        service: svc
        """, "unsupported version 2; the only version is 1", id="two"),
    pytest.param("""\
        version: "1"  # <-- here
        service: svc
        """, "unsupported version '1'; the only version is 1", id="string"),
    pytest.param("""\
        version: true  # <-- here
        service: svc
        """, "unsupported version True", id="boolean"),
])
def test_version(tmp_path: Path, text: str, phrase: str) -> None:
    _assert_error(tmp_path, text, "version", phrase)


def test_objective_name_with_uppercase(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: Error_Rate  # <-- here
            query: SELECT 1
            max: 5%
        """, "objectives.Error_Rate.name", "[a-z0-9_]+")


def test_duplicate_objective_names(tmp_path: Path) -> None:
    error = _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
          - name: rate  # <-- here
            query: SELECT 2
            max: 5%
        """, "objectives[1].name", "duplicate objective name 'rate'")
    assert "first on line 6" in error.message


@pytest.mark.parametrize(("text", "key"), [
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            ratio: {numerator: SELECT 1, denominator: SELECT 2}  # <-- here
            max: 5%
        """, "objectives.rate.ratio", id="both"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate  # <-- here
            max: 5%
        """, "objectives.rate.query", id="neither"),
])
def test_exactly_one_of_query_or_ratio(tmp_path: Path, text: str, key: str) -> None:
    _assert_error(tmp_path, text, key,
                  "exactly one of `query`, `ratio`, `quantile`, `histogram_quantile`")


def test_unknown_backend_name(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}, prom: {type: prometheus, url: http://p}}
        stages: {beta: {}}
        objectives:
          - name: rate
            backend: metrics  # <-- here
            query: SELECT 1
            max: 5%
        """, "objectives.rate.backend", "unknown backend 'metrics'; this file defines: db, prom")


def test_unknown_backend_type_lists_accepted_types(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends:
          metrics:
            type: influxdb  # <-- here
            url: http://influx
        """, "backends.metrics.type",
        "unknown backend type 'influxdb'; accepted: prometheus, sqlite")


@pytest.mark.parametrize(("threshold", "shown"), [
    ("5 percent", "'5 percent'"),
    ("fast", "'fast'"),
    ("true", "True"),
    ("5%%", "'5%%'"),
    ("-5s", "'-5s'"),
    (".nan", "NaN"),
])
def test_bad_threshold(tmp_path: Path, threshold: str, shown: str) -> None:
    error = _assert_error(tmp_path, f"""\
        version: 1
        service: svc
        backends: {{db: {{type: sqlite, path: e.db}}}}
        stages: {{beta: {{}}}}
        objectives:
          - name: rate
            query: SELECT 1
            max: {threshold}  # <-- here
        """, "objectives.rate.max", "a percentage (5%)")
    assert f"got {shown}" in error.message


def test_min_greater_than_max(tmp_path: Path) -> None:
    error = _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            min: 10%  # <-- here
            max: 5%
        """, "objectives.rate.min", "is greater than max")
    assert "'beta'" in error.message


def test_min_greater_than_max_from_a_stage_override(tmp_path: Path) -> None:
    error = _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}, ga: {}}
        objectives:
          - name: ratings
            query: SELECT 1
            min: 60%
            thresholds:
              ga: {max: 50%}  # <-- here
        """, "objectives.ratings.thresholds.ga.max", "is greater than max")
    assert "at stage 'ga'" in error.message


def test_min_equal_to_max_is_accepted(tmp_path: Path) -> None:
    spec = _load(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            min: 5%
            max: 5%
        """)
    assert spec.objectives[0].bounds == {"beta": Bounds(0.05, 0.05)}


def test_stage_with_no_bound(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}, ga: {}}
        objectives:
          - name: rate  # <-- here
            query: SELECT 1
            thresholds:
              ga: {max: 2%}
        """, "objectives.rate.max", "no min or max for stage 'beta'")


def test_thresholds_for_an_undefined_stage(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}, ga: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
            thresholds:
              prod: {max: 2%}  # <-- here
        """, "objectives.rate.thresholds.prod", "unknown stage 'prod'; stages: beta, ga")


def test_thresholds_for_a_stage_the_objective_does_not_apply_to(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}, ga: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
            stages: [ga]
            thresholds:
              beta: {max: 2%}  # <-- here
        """, "objectives.rate.thresholds.beta", "does not apply to stage 'beta'")


def test_objective_stages_naming_an_undefined_stage(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}, ga: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
            stages:
              - beta
              - prod  # <-- here
        """, "objectives.rate.stages", "unknown stage 'prod'; stages: beta, ga")


def test_undefined_variable_in_a_query(tmp_path: Path) -> None:
    error = _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        variables: {feature: x}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT ${nope} FROM t  # <-- here
            max: 5%
        """, "objectives.rate.query", "undefined variable ${nope}")
    assert "feature, service, stage" in error.message


def test_undefined_variable_in_a_ratio_points_at_its_line(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            ratio:
              numerator: SELECT 1
              denominator: SELECT ${nope}  # <-- here
            max: 5%
        """, "objectives.rate.ratio.denominator", "undefined variable ${nope}")


def test_variable_defined_only_for_some_stages(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages:
          beta: {variables: {cohort: b}}
          ga: {}
        objectives:
          - name: rate
            query: SELECT '${cohort}'  # <-- here
            max: 5%
        """, "objectives.rate.query", "undefined variable ${cohort} at stage 'ga'")


@pytest.mark.parametrize("placeholder", ["${env:X}", "${env:X:-fallback}"])
def test_env_placeholder_in_a_query_is_refused(tmp_path: Path, placeholder: str) -> None:
    _assert_error(tmp_path, f"""\
        version: 1
        service: svc
        backends: {{db: {{type: sqlite, path: e.db}}}}
        stages: {{beta: {{}}}}
        objectives:
          - name: rate
            query: SELECT '{placeholder}'  # <-- here
            max: 5%
        """, "objectives.rate.query", f"{placeholder} is not allowed in queries")


@pytest.mark.parametrize(("text", "key"), [
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        variables:
          window: soon  # <-- here
        """, "variables.window", id="file-variable"),
    pytest.param("""\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages:
          beta:
            variables: {window: 6 hours}  # <-- here
        """, "stages.beta.variables.window", id="stage-variable"),
])
def test_window_not_a_duration(tmp_path: Path, text: str, key: str) -> None:
    _assert_error(tmp_path, text, key, "window is a duration")


def test_backend_setting_duration_is_checked(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends:
          db:
            type: sqlite
            path: e.db
            timeout: a while  # <-- here
        """, "backends.db.timeout", "a duration such as")


def test_env_placeholders_in_backend_settings_are_accepted_at_load(tmp_path: Path) -> None:
    spec = _load(tmp_path, """\
        version: 1
        service: svc
        backends:
          db:
            type: sqlite
            path: ${env:SLO_TEST_UNSET_DB_PATH}
            timeout: ${env:SLO_TEST_UNSET_TIMEOUT:-5s}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
        """)
    assert dict(spec.backends["db"].settings) == {
        "path": "${env:SLO_TEST_UNSET_DB_PATH}", "timeout": "${env:SLO_TEST_UNSET_TIMEOUT:-5s}"}


def test_required_backend_setting_missing(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends:
          db:
            type: sqlite  # <-- here
            timeout: 5s
        """, "backends.db.path", "is required but missing")


def test_backend_without_type(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends:
          db:
            path: e.db  # <-- here
        """, "backends.db.type", "is required but missing")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    error = _error(tmp_path, text)
    assert (error.line, error.key) == (1, None)
    assert "the spec file is empty" in error.message


def test_file_that_is_a_yaml_list(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        - version: 1  # <-- here
        - service: svc
        """, "(top level)", "must be a mapping (key: value lines), got a list")


def test_a_file_that_is_not_utf8_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "spec.slo.yaml"
    path.write_bytes(b"version: 1\nservice: \xff\xfe\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, BACKEND_TYPES)
    assert info.value.line == 2
    assert info.value.message == "byte 0xff is not UTF-8 text; save the spec file as UTF-8"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path, BACKEND_TYPES)  # a directory
    assert info.value.line is None
    assert "cannot read the spec file" in info.value.message


# -- objective variables -------------------------------------------------------------------------

def test_objective_variables_override_stage_and_file_but_not_the_matrix(tmp_path: Path) -> None:
    spec = _load(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        variables: {window: 1h, region: all, cohort: canary}
        stages:
          beta: {variables: {window: 2d}}
        objectives:
          - name: rate
            query: SELECT '${window} ${region} ${cohort}'
            variables: {window: 6h, region: eu}
            matrix: {region: [us]}
            max: 5%
        """)
    objective = spec.objectives[0]
    resolved = spec.resolve(objective, "beta", next(objective.combinations()))
    assert resolved.queries["query"] == "SELECT '6h us canary'"
    assert (resolved.window, resolved.window_text) == (6 * 3600, "6h")


def test_objective_variables_are_checked_like_the_file_s(tmp_path: Path) -> None:
    _assert_error(tmp_path, """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}}
        stages: {beta: {}}
        objectives:
          - name: rate
            query: SELECT 1
            variables: {window: soon}  # <-- here
            max: 5%
        """, "objectives.rate.variables.window", "window is a duration")


# -- rollout and rollback_on -------------------------------------------------------------------

ROLLOUT_SPEC = """\
version: 1
service: s
backends: {db: {type: sqlite, path: events.db}}
rollback_on: [fail, no_data]
stages:
  internal:
    rollout: {api: features, flag: f, actors: [User:15, User:1], feature_group: team}
  beta:
    rollout: {api: features, flag: f, percent: 10, of: requests}
    rollback_on: [fail, error]
  ga:
    rollout: {flag: f, percent: 100%, of: sessions}
objectives:
  - {name: x, query: SELECT 1, max: 2}
"""


def test_rollout_keys_and_rollback_on(tmp_path: Path) -> None:
    spec = _load(tmp_path, ROLLOUT_SPEC)
    internal, beta, ga = (spec.stages[s].rollout for s in ("internal", "beta", "ga"))
    assert internal is not None and beta is not None and ga is not None
    assert (internal.api, internal.actors, internal.feature_group, internal.percent) == \
        ("features", ("User:1", "User:15"), "team", None)
    assert (beta.api, beta.percent, beta.of) == ("features", 10.0, "requests")
    assert (ga.api, ga.percent, ga.of, ga.environment) == ("project", 100.0, "sessions",
                                                           "production")
    assert spec.rollback_verdicts("internal") == ("fail", "no_data")
    assert spec.rollback_verdicts("beta") == ("fail", "error")


def test_rollback_on_defaults_to_fail(tmp_path: Path) -> None:
    spec = _load(tmp_path, ROLLOUT_SPEC.replace("rollback_on: [fail, no_data]\n", ""))
    assert spec.rollback_verdicts("ga") == ("fail",)


@pytest.mark.parametrize("value", ["[breach]", "fail", "[]"])
def test_rollback_on_names_the_accepted_verdicts(tmp_path: Path, value: str) -> None:
    text = ROLLOUT_SPEC.replace("rollback_on: [fail, error]",
                                f"rollback_on: {value}  # {MARK}")
    _assert_error(tmp_path, text, "stages.beta.rollback_on",
                  "must be a list of verdicts out of fail, error, no_data, inconclusive, warn "
                  "(default [fail])")
