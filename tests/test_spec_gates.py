"""Spec keys of issue 4: warn, sustained, baseline, quantile, histogram_quantile, burn_rate
and matrix. Each mistake names the file, the line and the key; each accepted form parses to
the model the gates use.

Error cases mark the line the error must name with a trailing ``# <-- here`` comment.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from specdata import SPEC_HEADER

from pytest_rollout_slo.backends.base import BackendType
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.sqlite import SQLITE
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import (
    NO_BOUNDS,
    Baseline,
    Bounds,
    BurnAlert,
    BurnRate,
    Change,
    Objective,
    Spec,
    Sustained,
)

BACKEND_TYPES: Mapping[str, BackendType] = {"sqlite": SQLITE, "prometheus": PROMETHEUS}
MARK = "# <-- here"

HEADER = SPEC_HEADER

RATIO = """\
- name: x
  ratio:
    numerator: sum(increase(errors[${window}]))
    denominator: sum(increase(requests[${window}]))
"""


def with_ratio(rest: str) -> str:
    """Objective ``x`` measuring an error ratio over ``${window}``, then ``rest``."""
    return RATIO + textwrap.indent(textwrap.dedent(rest), "  ")


def spec_text(objectives: str, top: str = "") -> str:
    return HEADER + textwrap.dedent(top) + "objectives:\n" + textwrap.dedent(objectives)


def load(tmp_path: Path, objectives: str, top: str = "") -> Spec:
    path = tmp_path / "spec.slo.yaml"
    path.write_text(spec_text(objectives, top), encoding="utf-8")
    return load_spec(path, BACKEND_TYPES)


def only(spec: Spec) -> Objective:
    (objective,) = spec.objectives
    return objective


def assert_error(tmp_path: Path, objectives: str, key: str, phrase: str, top: str = ""
                 ) -> SpecError:
    text = spec_text(objectives, top)
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(marked) == 1, "each error case marks exactly one line"
    with pytest.raises(SpecError) as info:
        load(tmp_path, objectives, top)
    error = info.value
    assert error.path == tmp_path / "spec.slo.yaml"
    assert (error.line, error.key) == (marked[0], key), str(error)
    assert phrase in error.message, error.message
    assert str(error).startswith(f"{error.path}:{marked[0]}: {key}: ")
    return error


# -- unknown keys inside the new sections ------------------------------------------------------


@pytest.mark.parametrize(("objectives", "key"), [
    pytest.param("""\
        - name: x
          query: up
          max: 1
          sustained: {over: 2d, step: 1h, limit: 2}  # <-- here
        """, "objectives.x.sustained.limit", id="sustained"),
    pytest.param("""\
        - name: x
          query: up
          baseline:
            variables: {cohort: control}
            max_increase: 10%
            cohort: control  # <-- here
        """, "objectives.x.baseline.cohort", id="baseline"),
    pytest.param(with_ratio("""\
          burn_rate:
            target: 99%
            alerts: [{long: 1h, short: 5m, factor: 14.4}]
            window: 1h  # <-- here
        """), "objectives.x.burn_rate.window", id="burn_rate"),
    pytest.param(with_ratio("""\
          burn_rate:
            target: 99%
            alerts:
              - {long: 1h, short: 5m, factor: 14.4}
              - {long: 6h, short: 30m, factor: 6, severity: page}  # <-- here
        """), "objectives.x.burn_rate.alerts[1].severity", id="burn_rate-alert"),
    pytest.param("""\
        - name: x
          backend: db
          quantile:
            q: 0.95
            values: SELECT v FROM t
            method: exclusive  # <-- here
          max: 1
        """, "objectives.x.quantile.method", id="quantile"),
    pytest.param("""\
        - name: x
          histogram_quantile:
            metric: latency_seconds
            quantile: 0.95
            le: 0.5  # <-- here
          max: 1s
        """, "objectives.x.histogram_quantile.le", id="histogram_quantile"),
    pytest.param("""\
        - name: x
          query: up
          max: 5%
          warn: {maximum: 3%}  # <-- here
        """, "objectives.x.warn.maximum", id="warn"),
    pytest.param("""\
        - name: x
          query: up
          max: 5%
          thresholds:
            ga:
              max: 2%
              warn: {max: 1%, level: high}  # <-- here
        """, "objectives.x.thresholds.ga.warn.level", id="stage-warn"),
    pytest.param("""\
        - name: x
          query: up
          max: 5%
          thresholds:
            ga: {max: 2%, warning: 1%}  # <-- here
        """, "objectives.x.thresholds.ga.warning", id="stage-thresholds"),
])
def test_unknown_key_in_a_new_section(tmp_path: Path, objectives: str, key: str) -> None:
    error = assert_error(tmp_path, objectives, key, "unknown key")
    assert "accepted keys here:" in error.message


# -- sustained ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sustained", "key", "phrase"), [
    ("{over: 1h, step: 2h}", "step", "longer than over 1h"),
    ("{over: 2d, step: 1h, max_violations: -1}", "max_violations", "whole number >= 0"),
    ("{over: 2d, step: 1h, max_violations: 1.5}", "max_violations", "whole number >= 0"),
    ("{over: 2d, step: 1h, max_violations: true}", "max_violations", "whole number >= 0"),
    ("{over: 2 days, step: 1h}", "over", "duration"),
    ("{over: 2d, step: 0s}", "step", "longer than 0s"),
    ("{step: 1h}", "over", "required"),
    ("{over: 2d}", "step", "required"),
    ("{over: 30d, step: 1s}", "step", "more than"),
])
def test_sustained_errors(tmp_path: Path, sustained: str, key: str, phrase: str) -> None:
    assert_error(tmp_path, f"""\
        - name: x
          query: up
          max: 1
          sustained: {sustained}  # <-- here
        """, f"objectives.x.sustained.{key}", phrase)


def test_sustained_not_a_mapping(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up
          max: 1
          sustained: 2d  # <-- here
        """, "objectives.x.sustained", "must be a mapping")


def test_sustained_parsing(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: up
          max: 1
          sustained: {over: 2d, step: 1h, max_violations: 2}
        """))
    assert objective.sustained == Sustained(2 * 86400.0, 3600.0, 2, "2d", "1h")


def test_sustained_defaults_to_no_violation_and_step_may_equal_over(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: up
          max: 1
          sustained: {over: 90m, step: 90m}
        """))
    assert objective.sustained == Sustained(5400.0, 5400.0, 0, "90m", "90m")


# -- baseline -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("baseline", "key", "phrase"), [
    ("{variables: {cohort: control}, offset: 7d, max_increase: 10%}", "", "exactly one of"),
    ("{max_increase: 10%}", "", "exactly one of"),
    ("{variables: {cohort: control}, max_increase: -10%}", ".max_increase", ">= 0"),
    ("{offset: 7d, max_decrease: -0.5}", ".max_decrease", ">= 0"),
    ("{offset: 7d, max_increase: lots}", ".max_increase", "percentage"),
    ("{offset: 7 days, max_increase: 10%}", ".offset", "duration"),
    ("{offset: 0s, max_increase: 10%}", ".offset", "longer than 0s"),
    ("{variables: {}, max_increase: 10%}", ".variables", "at least one variable"),
    ("{variables: {stage: ga}, max_increase: 10%}", ".variables.stage", "built-ins"),
])
def test_baseline_errors(tmp_path: Path, baseline: str, key: str, phrase: str) -> None:
    assert_error(tmp_path, f"""\
        - name: x
          query: up
          max: 1
          baseline: {baseline}  # <-- here
        """, f"objectives.x.baseline{key}", phrase)


def test_baseline_with_variables_parsing(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: sum(rate(errors{cohort="${cohort}"}[${window}]))
          variables: {cohort: canary}
          max: 5%
          baseline:
            variables: {cohort: control}
            max_increase: 10%
        """))
    assert objective.baseline == Baseline({"cohort": "control"}, None, "",
                                          Change(0.1, True, "10%", "percent"), None)
    assert objective.baseline.describe() == "cohort=control"


def test_a_baseline_variable_no_query_uses_is_refused(tmp_path: Path) -> None:
    # Otherwise the baseline query is the objective's own: "unchanged", a pass every time.
    with pytest.raises(SpecError, match=r"no query of the objective uses \$\{cohort\}"):
        load(tmp_path, """\
            - name: x
              query: sum(rate(errors{cohort="canary"}[${window}]))
              baseline: {variables: {cohort: control}, max_increase: 10%}
            """)


def test_the_objective_s_own_query_must_resolve_without_the_baseline(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"undefined variable \$\{cohort\}"):
        load(tmp_path, """\
            - name: x
              query: sum(rate(errors{cohort="${cohort}"}[${window}]))
              baseline: {variables: {cohort: control}, max_increase: 10%}
            """)


def test_baseline_with_offset_parsing(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: histogram_quantile(0.9, sum by (le) (rate(x_bucket[${window}])))
          max: 2s
          baseline: {offset: 7d, max_increase: 0.5s, max_decrease: 20%}
        """))
    assert objective.baseline == Baseline({}, 7 * 86400.0, "7d",
                                          Change(0.5, False, "0.5s", "seconds"),
                                          Change(0.2, True, "20%", "percent"))
    assert objective.baseline.describe() == "7d earlier"


def test_baseline_variable_may_be_used_only_by_the_baseline(tmp_path: Path) -> None:
    # ${cohort} is defined by the matrix for the current value and by the baseline's variables.
    spec = load(tmp_path, """\
        - name: x
          query: sum(rate(errors{cohort="${cohort}"}[${window}]))
          max: 5%
          matrix: {cohort: [canary]}
          baseline: {variables: {cohort: control}, max_increase: 10%}
        """)
    resolved = spec.resolve(only(spec), "beta", (("cohort", "canary"),))
    queries, _ = resolved.with_variables({"cohort": "control"})
    assert resolved.queries["query"] == 'sum(rate(errors{cohort="canary"}[1h]))'
    assert queries["query"] == 'sum(rate(errors{cohort="control"}[1h]))'


def test_objective_bounded_only_by_its_change_is_accepted(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: up
          baseline: {offset: 1d, max_increase: 10%}
        """))
    assert objective.bounds == {"beta": NO_BOUNDS, "ga": NO_BOUNDS}


def test_objective_bounded_only_by_an_absolute_duration_change_shows_seconds(
        tmp_path: Path) -> None:
    # SPEC-V1: the form of a quantity sets how values are shown; 0.5s is the only one here.
    objective = only(load(tmp_path, """\
        - name: x
          query: up
          baseline: {offset: 1d, max_increase: 0.5s}
        """))
    assert objective.unit == "seconds"


def test_baseline_without_any_bound_still_needs_min_or_max(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no min or max"):
        load(tmp_path, """\
            - name: x
              query: up
              baseline: {offset: 1d}
            """)


# -- quantile and histogram_quantile ----------------------------------------------------------


@pytest.mark.parametrize(("q", "phrase"), [
    ("1.5", "between 0 and 1"),
    ("-0.1", "between 0 and 1"),
    ("150%", "between 0 and 1"),
    ("high", "percentage"),
])
def test_quantile_q_out_of_range(tmp_path: Path, q: str, phrase: str) -> None:
    assert_error(tmp_path, f"""\
        - name: x
          backend: db
          quantile:
            q: {q}  # <-- here
            values: SELECT v FROM t
          max: 1
        """, "objectives.x.quantile.q", phrase)


def test_quantile_without_values(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          backend: db
          quantile:
            q: 0.95  # <-- here
          max: 1
        """, "objectives.x.quantile.values", "required")


@pytest.mark.parametrize(("q", "expected"), [("0.95", 0.95), ("99%", 0.99), ("0", 0.0),
                                             ("1", 1.0)])
def test_quantile_values_query(tmp_path: Path, q: str, expected: float) -> None:
    spec = load(tmp_path, f"""\
        - name: x
          backend: db
          quantile:
            q: {q}
            values: SELECT duration FROM calls WHERE ts >= :window_start AND s = '${{stage}}'
          max: 3s
        """)
    objective = only(spec)
    assert objective.quantile == expected
    assert objective.query == ("SELECT duration FROM calls WHERE ts >= :window_start "
                               "AND s = '${stage}'")
    assert objective.ratio is None
    assert objective.templates == {"query": objective.query}
    assert spec.resolve(objective, "ga").queries["query"].endswith("s = 'ga'")


def test_undefined_variable_in_quantile_values_points_at_the_values_line(
        tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          backend: db
          quantile:
            q: 0.5
            values: SELECT v FROM t WHERE f = '${nope}'  # <-- here
          max: 1
        """, "objectives.x.quantile", "undefined variable ${nope}")


def test_histogram_quantile_on_a_sql_backend(tmp_path: Path) -> None:
    error = assert_error(tmp_path, """\
        - name: x
          backend: db
          histogram_quantile: {metric: latency_seconds, quantile: 0.95}  # <-- here
          max: 1s
        """, "objectives.x.histogram_quantile", "PromQL")
    assert "sqlite" in error.message
    assert "quantile" in error.message


@pytest.mark.parametrize(("body", "key", "phrase"), [
    ("{metric: 'latency-seconds', quantile: 0.95}", "metric", "not a metric name"),
    ("{metric: '1latency', quantile: 0.95}", "metric", "not a metric name"),
    ("{metric: latency_seconds, quantile: 1.5}", "quantile", "between 0 and 1"),
    ("{metric: latency_seconds, quantile: 0.9, by: [le-bad]}", "by", "label name"),
    ("{quantile: 0.9}", "metric", "required"),
])
def test_histogram_quantile_errors(tmp_path: Path, body: str, key: str, phrase: str) -> None:
    assert_error(tmp_path, f"""\
        - name: x
          histogram_quantile: {body}  # <-- here
          max: 1s
        """, f"objectives.x.histogram_quantile.{key}", phrase)


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(
        """{metric: tool_call_duration_seconds, quantile: 0.95,
                               selector: 'feature="${feature}"', by: [region]}""",
        'histogram_quantile(0.95, sum by (le, region) (rate(tool_call_duration_seconds_bucket'
        '{feature="${feature}"}[${window}])))', id="full"),
    pytest.param(
        "{metric: latency_seconds_bucket, quantile: 99%}",
        "histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[${window}])))",
        id="bucket-suffix-and-percent"),
    pytest.param(
        """{metric: latency_seconds, quantile: 0.5, selector: '{job="api"}', by: pod}""",
        'histogram_quantile(0.5, sum by (le, pod) (rate(latency_seconds_bucket{job="api"}'
        '[${window}])))', id="braces-and-one-label"),
])
def test_histogram_quantile_expansion(tmp_path: Path, body: str, expected: str) -> None:
    spec = load(tmp_path, f"""\
        - name: x
          histogram_quantile: {body}
          max: 1s
        """)
    objective = only(spec)
    assert objective.query == expected
    assert objective.quantile is None
    resolved = spec.resolve(objective, "beta")
    assert resolved.queries["query"] == expected.replace("${window}", "1h").replace(
        "${feature}", "resolver")


# -- warn ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bounds", "key", "phrase"), [
    pytest.param("max: 5%\nwarn: {max: 6%}  # <-- here", "warn.max", "outside max",
                 id="warn-max-above-max"),
    pytest.param("min: 60%\nwarn: {min: 50%}  # <-- here", "warn.min", "outside min",
                 id="warn-min-below-min"),
    pytest.param("max: 5%\nwarn:\n  min: 4%  # <-- here\n  max: 3%", "warn.min",
                 "greater than warn.max", id="warn-min-above-warn-max"),
    pytest.param("max: 5%\nwarn: {}  # <-- here", "warn", "give min, max, or both",
                 id="warn-empty"),
    pytest.param("max: 5%\nwarn: {max: lots}  # <-- here", "warn.max", "percentage",
                 id="warn-bad-value"),
    pytest.param("max: 5%\nwarn: 3%  # <-- here", "warn", "must be a mapping",
                 id="warn-not-a-mapping"),
])
def test_warn_errors(tmp_path: Path, bounds: str, key: str, phrase: str) -> None:
    assert_error(tmp_path, "- name: x\n  query: up\n" + textwrap.indent(bounds, "  ") + "\n",
                 f"objectives.x.{key}", phrase)


def test_stage_warn_above_the_stage_max(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up
          max: 5%
          thresholds:
            ga:
              max: 2%
              warn: {max: 3%}  # <-- here
        """, "objectives.x.thresholds.ga.warn.max", "at stage 'ga'")


def test_warn_levels_per_stage(tmp_path: Path) -> None:
    spec = load(tmp_path, """\
        - name: x
          query: up
          max: 5%
          warn: {max: 3%}
          thresholds:
            ga: {max: 2%, warn: {max: 1%, min: 0.1%}}
        """)
    objective = only(spec)
    assert objective.bounds == {"beta": Bounds(None, 0.05), "ga": Bounds(None, 0.02)}
    assert objective.warn["beta"] == Bounds(None, 0.03)
    assert objective.warn["ga"] == Bounds(0.001, 0.01)
    assert spec.resolve(objective, "ga").warn == Bounds(0.001, 0.01)
    assert objective.unit == "percent"


def test_warn_only_in_one_stage(tmp_path: Path) -> None:
    spec = load(tmp_path, """\
        - name: x
          query: up
          max: 10s
          thresholds:
            ga: {warn: {max: 5s}}
        """)
    objective = only(spec)
    assert spec.resolve(objective, "beta").warn == NO_BOUNDS
    assert spec.resolve(objective, "ga").warn == Bounds(None, 5.0)
    assert spec.resolve(objective, "ga").bounds == Bounds(None, 10.0)


def test_warn_equal_to_the_bound_is_accepted(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: up
          min: 1
          max: 5
          warn: {min: 1, max: 5}
        """))
    assert objective.warn["beta"] == Bounds(1.0, 5.0)


def test_warn_alone_is_not_a_bound(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no min or max"):
        load(tmp_path, """\
            - name: x
              query: up
              warn: {max: 3%}
            """)


# -- burn rate ----------------------------------------------------------------------------------

BURN = """\
          burn_rate:
            target: 99.5%
            alerts:
              - {long: 1h, short: 5m, factor: 14.4}
              - {long: 6h, short: 30m, factor: 6}
"""


def test_burn_rate_parsing(tmp_path: Path) -> None:
    spec = load(tmp_path, with_ratio(BURN))
    objective = only(spec)
    assert objective.burn_rate == BurnRate(0.995, (
        BurnAlert(3600.0, 300.0, 14.4, "1h", "5m"),
        BurnAlert(6 * 3600.0, 1800.0, 6.0, "6h", "30m")))
    assert objective.burn_rate.budget == pytest.approx(0.005)
    assert objective.bounds == {"beta": NO_BOUNDS, "ga": NO_BOUNDS}


def test_burn_rate_does_not_need_a_window_variable(tmp_path: Path) -> None:
    # Each alert sets ${window}; a file without a `window` variable must not be refused.
    path = tmp_path / "spec.slo.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        service: svc
        backends: {prom: {type: prometheus, url: "http://prometheus:9090"}}
        stages: {beta: {}}
        objectives:
          - name: x
            ratio:
              numerator: sum(increase(errors[${window}]))
              denominator: sum(increase(requests[${window}]))
            burn_rate:
              target: 99.9%
              alerts: [{long: 1h, short: 5m, factor: 14.4}]
        """), encoding="utf-8")
    spec = load_spec(path, BACKEND_TYPES)
    assert only(spec).burn_rate is not None


def test_burn_rate_with_sql_window_start(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          backend: db
          ratio:
            numerator: SELECT count(*) FROM e WHERE err AND ts >= :window_start
            denominator: SELECT count(*) FROM e WHERE ts >= :window_start
          burn_rate: {target: 0.99, alerts: [{long: 1h, short: 1h, factor: 1}]}
        """))
    assert objective.burn_rate == BurnRate(0.99, (BurnAlert(3600.0, 3600.0, 1.0, "1h", "1h"),))


def test_burn_rate_on_a_non_ratio_objective(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: sum(rate(errors[${window}]))
          burn_rate:  # <-- here
            target: 99%
            alerts: [{long: 1h, short: 5m, factor: 14.4}]
        """, "objectives.x.burn_rate", "ratio")


def test_burn_rate_queries_without_window(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          ratio:
            numerator: sum(increase(errors[1h]))
            denominator: sum(increase(requests[1h]))
          burn_rate:  # <-- here
            target: 99%
            alerts: [{long: 1h, short: 5m, factor: 14.4}]
        """, "objectives.x.burn_rate", "${window}")


@pytest.mark.parametrize("bound", ["max", "min"])
def test_burn_rate_with_min_or_max(tmp_path: Path, bound: str) -> None:
    assert_error(tmp_path, with_ratio(f"""\
          {bound}: 1%  # <-- here
          burn_rate:
            target: 99%
            alerts: [{{long: 1h, short: 5m, factor: 14.4}}]
        """), f"objectives.x.{bound}", "burn_rate")


def test_burn_rate_with_thresholds(tmp_path: Path) -> None:
    assert_error(tmp_path, with_ratio("""\
          thresholds:  # <-- here
            ga: {max: 1%}
          burn_rate:
            target: 99%
            alerts: [{long: 1h, short: 5m, factor: 14.4}]
        """), "objectives.x.thresholds", "burn_rate")


def test_burn_rate_with_warn(tmp_path: Path) -> None:
    # judge_burn_rate never reads warn levels: accepting one would silently ignore it.
    assert_error(tmp_path, with_ratio("""\
          warn: {max: 1%}  # <-- here
          burn_rate:
            target: 99%
            alerts: [{long: 1h, short: 5m, factor: 14.4}]
        """), "objectives.x.warn", "burn_rate")


@pytest.mark.parametrize(("alert", "key", "phrase"), [
    ("{long: 5m, short: 1h, factor: 14.4}", "short", "longer than long 5m"),
    ("{long: 1h, short: 5m, factor: 0}", "factor", "> 0"),
    ("{long: 1h, short: 5m, factor: -2}", "factor", "> 0"),
    ("{long: 1h, short: 5m, factor: fast}", "factor", "> 0"),
    ("{long: 1h, short: 5m}", "factor", "> 0"),
    ("{short: 5m, factor: 2}", "long", "required"),
    ("{long: 1 hour, short: 5m, factor: 2}", "long", "duration"),
])
def test_burn_rate_alert_errors(tmp_path: Path, alert: str, key: str, phrase: str) -> None:
    assert_error(tmp_path, with_ratio(f"""\
          burn_rate:
            target: 99%
            alerts:
              - {alert}  # <-- here
        """), f"objectives.x.burn_rate.alerts[0].{key}", phrase)


@pytest.mark.parametrize(("target", "phrase"), [
    ("100%", "strictly between"),
    ("0%", "strictly between"),
    ("1", "strictly between"),
    ("101%", "between 0 and 1"),
    ("high", "percentage"),
])
def test_burn_rate_target_errors(tmp_path: Path, target: str, phrase: str) -> None:
    assert_error(tmp_path, with_ratio(f"""\
          burn_rate:
            target: {target}  # <-- here
            alerts: [{{long: 1h, short: 5m, factor: 14.4}}]
        """), "objectives.x.burn_rate.target", phrase)


@pytest.mark.parametrize("alerts", ["[]", "{long: 1h}", "1h"])
def test_burn_rate_alerts_must_be_a_list(tmp_path: Path, alerts: str) -> None:
    assert_error(tmp_path, with_ratio(f"""\
          burn_rate:
            target: 99%
            alerts: {alerts}  # <-- here
        """), "objectives.x.burn_rate.alerts", "must be a list")


# -- one gate per objective ----------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "key"), [
    ("sustained: {over: 2d, step: 1h}", "baseline: {offset: 7d, max_increase: 10%}",
     "baseline"),
    ("baseline: {offset: 7d, max_increase: 10%}",
     "burn_rate: {target: 99%, alerts: [{long: 1h, short: 5m, factor: 2}]}", "burn_rate"),
])
def test_two_gates_in_one_objective(tmp_path: Path, first: str, second: str, key: str) -> None:
    assert_error(tmp_path, with_ratio(f"""\
          max: 1%
          {first}
          {second}  # <-- here
        """), f"objectives.x.{key}", "at most one of")


# -- matrix -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("matrix", "key", "phrase"), [
    ("{}", "", "at least one variable"),
    ("{region: []}", ".region", "non-empty list"),
    ("{region: eu}", ".region", "non-empty list"),
    ("{region: [eu, {a: b}]}", ".region", "non-empty list"),
    ("{region: [eu, true]}", ".region", "non-empty list"),
    ("{region: [eu, us, eu]}", ".region", "twice"),
    ("{Region-1: [eu]}", ".Region-1", "variable names"),
    ("{stage: [eu]}", ".stage", "may not be the built-ins stage, service, at, window_start"),
    ("{service: [eu]}", ".service", "may not be the built-ins"),
    ("{at: [1, 2]}", ".at", "may not be the built-ins"),
    ("{window_start: [1]}", ".window_start", "may not be the built-ins"),
    ("{window: [1h, soon]}", ".window", "window is a duration: expected a duration such as"),
    ("{window: [1h, 0s]}", ".window", "window is a duration longer than 0s"),
    ("{region: [eu, .nan]}", ".region", "non-empty list of strings or finite numbers"),
    ("[eu, us]", "", "must be a mapping"),
])
def test_matrix_errors(tmp_path: Path, matrix: str, key: str, phrase: str) -> None:
    assert_error(tmp_path, f"""\
        - name: x
          query: up{{region="${{region}}"}}
          max: 1
          matrix: {matrix}  # <-- here
        """, f"objectives.x.matrix{key}", phrase)


def test_file_level_matrix_errors_name_the_top_level_key(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up
          max: 1
        """, "matrix.region", "twice", top="matrix: {region: [eu, eu]}  # <-- here\n")


def test_matrix_variable_is_defined_in_queries(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up{region="${region}", tier="${tier}"}  # <-- here
          max: 1
          matrix: {region: [eu]}
        """, "objectives.x.query", "undefined variable ${tier}")


def test_file_level_matrix_merges_with_the_objective_matrix(tmp_path: Path) -> None:
    spec = load(tmp_path, """\
        - name: both
          query: up{region="${region}", tier="${tier}"}
          max: 1
          matrix: {tier: [free, paid]}
        - name: file_only
          query: up{region="${region}"}
          max: 1
        - name: overridden
          query: up{region="${region}"}
          max: 1
          matrix: {region: [ap]}
        """, top="matrix: {region: [eu, us]}\n")
    both, file_only, overridden = spec.objectives
    assert both.matrix == (("region", ("eu", "us")), ("tier", ("free", "paid")))
    assert file_only.matrix == (("region", ("eu", "us")),)
    assert overridden.matrix == (("region", ("ap",)),)
    assert list(both.combinations()) == [
        (("region", "eu"), ("tier", "free")), (("region", "eu"), ("tier", "paid")),
        (("region", "us"), ("tier", "free")), (("region", "us"), ("tier", "paid"))]
    resolved = spec.resolve(both, "beta", (("region", "us"), ("tier", "free")))
    assert resolved.title == "both[beta-region=us-tier=free]"
    assert resolved.queries["query"] == 'up{region="us", tier="free"}'
    assert resolved.variables["region"] == "us"


def test_matrix_numbers_and_no_matrix(tmp_path: Path) -> None:
    spec = load(tmp_path, """\
        - name: shards
          query: up{shard="${shard}"}
          max: 1
          matrix: {shard: [2, 1, 3]}
        - name: plain
          query: up
          max: 1
        """)
    shards, plain = spec.objectives
    assert [c[0][1] for c in shards.combinations()] == [2, 1, 3]
    assert spec.resolve(shards, "ga", (("shard", 1),)).title == "shards[ga-shard=1]"
    assert spec.resolve(shards, "ga", (("shard", 1),)).queries["query"] == 'up{shard="1"}'
    assert list(plain.combinations()) == [()]
    assert spec.resolve(plain, "ga").title == "plain[ga]"
