"""The loader under hostile input (issue 11): each case of a crash, a meaningless value
accepted or a unit mistake that passed is now a spec error naming file, line and key, with
its message, or loads as meant.

Error cases mark the line the error must name with a trailing ``# <-- here`` comment.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from specdata import SPEC_HEADER

from pytest_rollout_slo.backends.registry import BUILTIN_TYPES
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Bounds, Change, Objective, Spec

TYPES = {t.name: t for t in BUILTIN_TYPES}
MARK = "# <-- here"
RATIO = """\
- name: x
  ratio:
    numerator: sum(increase(errors[${window}]))
    denominator: sum(increase(requests[${window}]))
"""


def spec_text(objectives: str, header: str = SPEC_HEADER) -> str:
    return header + "objectives:\n" + textwrap.dedent(objectives)


def with_ratio(rest: str) -> str:
    return RATIO + textwrap.indent(textwrap.dedent(rest), "  ")


def load(tmp_path: Path, objectives: str, header: str = SPEC_HEADER) -> Spec:
    path = tmp_path / "spec.slo.yaml"
    path.write_text(spec_text(objectives, header), encoding="utf-8")
    return load_spec(path, TYPES)


def only(spec: Spec) -> Objective:
    (objective,) = spec.objectives
    return objective


def assert_error(tmp_path: Path, objectives: str, key: str | None, message: str,
                 header: str = SPEC_HEADER) -> SpecError:
    """The error names the marked line and ``key``, and says ``message`` (all of it)."""
    text = spec_text(objectives, header)
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(marked) == 1, "each error case marks exactly one line"
    with pytest.raises(SpecError) as info:
        load(tmp_path, objectives, header)
    error = info.value
    assert (error.line, error.key) == (marked[0], key), str(error)
    assert error.message == message
    return error


# -- crashes that are spec errors now ---------------------------------------------------------

def test_a_mapping_in_an_objective_s_stages(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up
          max: 1
          stages: [{a: 1}]  # <-- here
        """, "objectives.x.stages", "lists a mapping, not a stage name; stages: beta, ga")


def test_the_readme_s_baseline_with_an_absolute_change_loads(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          query: sum(rate(errors[${window}]))
          max: 0.1
          baseline: {offset: 7d, max_increase: 0.005}
        """))
    assert objective.baseline is not None
    assert objective.baseline.max_increase == Change(0.005, False, "0.005", "number")


def test_a_huge_threshold_is_refused_not_rounded_to_infinity(tmp_path: Path) -> None:
    big = "9" * 320
    assert_error(tmp_path, f"""\
        - name: x
          query: up
          max: {big}%  # <-- here
        """, "objectives.x.max", "expected a number (0.05), a percentage (5%) or a duration "
                                 f"(250ms, 10s, 5m, 1h, 1d), got '{'9' * 60}'... (321 characters)")


def test_a_value_quoted_in_a_message_is_cut_short(tmp_path: Path) -> None:
    error = assert_error(tmp_path, f"""\
        - name: x
          query: up
          max: 1
          unit: {"s" * 100_000}  # <-- here
        """, "objectives.x.unit", f"got '{'s' * 60}'... (100000 characters); accepted: number, "
                                  "percent, seconds")
    assert len(str(error)) < 400


# -- meaningless values refused ---------------------------------------------------------------

@pytest.mark.parametrize(("factor", "message"), [
    (".nan", "must be a number > 0 (14.4), got NaN"),
    (".inf", "must be a number > 0 (14.4), got +Inf"),
    ("1.0e+300", "1e+300 x the error budget 1.00% is more than 100%: the alert could never fire; "
              "at most 100 for this target"),
    ("101", "101 x the error budget 1.00% is more than 100%: the alert could never fire; "
            "at most 100 for this target"),
])
def test_a_burn_rate_factor_that_could_never_fire(tmp_path: Path, factor: str,
                                                   message: str) -> None:
    assert_error(tmp_path, with_ratio(f"""\
        burn_rate:
          target: 99%
          alerts:
            - long: 1h
              short: 5m
              factor: {factor}  # <-- here
        """), "objectives.x.burn_rate.alerts[0].factor", message)


def test_a_burn_rate_factor_of_exactly_the_budget_loads(tmp_path: Path) -> None:
    objective = only(load(tmp_path, with_ratio("""\
        burn_rate: {target: 99%, alerts: [{long: 1h, short: 5m, factor: 100}]}
        """)))
    assert objective.burn_rate is not None and objective.burn_rate.alerts[0].factor == 100


@pytest.mark.parametrize(("value", "shown"), [(".nan", "NaN"), (".inf", "+Inf"),
                                              ("-1", "-1")])
def test_min_denominator_is_a_finite_number(tmp_path: Path, value: str, shown: str) -> None:
    assert_error(tmp_path, f"""\
        - name: x
          ratio:
            numerator: a
            denominator: b
            min_denominator: {value}  # <-- here
          max: 5%
        """, "objectives.x.ratio.min_denominator", f"must be a number >= 0, got {shown}")


def test_a_name_ending_in_a_newline(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: "x\\n"  # <-- here
          query: up
          max: 1
        """, "objectives.x\n.name", "objective names use lowercase letters, digits and _ "
                                    "([a-z0-9_]+, at most 100), got 'x\\n'")


def test_a_variable_that_is_not_a_finite_number(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up{a="${limit}"}
          max: 1
          variables:
            limit: .nan  # <-- here
        """, "objectives.x.variables.limit", "must be a finite number, got NaN")


def test_version_is_exactly_the_integer_1(tmp_path: Path) -> None:
    header = SPEC_HEADER.replace("version: 1\n", "version: 1.0  # <-- here\n")
    assert_error(tmp_path, "- {name: x, query: up, max: 1}\n", "version",
                 "unsupported version 1.0; the only version is 1", header)


def test_an_empty_rollout_environment(tmp_path: Path) -> None:
    header = SPEC_HEADER.replace(
        "  ga: {}\n", "  ga:\n    rollout: {flag: f, all: true, environment: ''}  # <-- here\n")
    assert_error(tmp_path, "- {name: x, query: up, max: 1}\n", "stages.ga.rollout.environment",
                 "must be a non-empty string, got a string ('')", header)


@pytest.mark.parametrize(("setting", "message"), [
    ("timeout: -5", "expected a duration such as 250ms, 10s, 5m, 1h, 1d or 1h30m, got -5"),
    ("timeout: 0s", "must be longer than 0s, got '0s'"),
    ("timeout: 3651d", "expected a duration such as 250ms, 10s, 5m, 1h, 1d or 1h30m of at "
                       "most 3650d (ten years), got '3651d'"),
    ("max_concurrency: 0", "must be at least 1, got 0"),
])
def test_numeric_backend_settings_are_range_checked(tmp_path: Path, setting: str,
                                                     message: str) -> None:
    header = SPEC_HEADER.replace(
        '  prom: {type: prometheus, url: "http://prometheus:9090"}\n',
        f'  prom: {{type: prometheus, url: "http://prometheus:9090", {setting}}}  # <-- here\n')
    assert_error(tmp_path, "- {name: x, query: up, max: 1}\n",
                 f"backends.prom.{setting.split(':')[0]}", message, header)


def test_a_matrix_of_too_many_combinations(tmp_path: Path) -> None:
    values = ", ".join(str(n) for n in range(101))
    assert_error(tmp_path, f"""\
        - name: x
          query: up{{a="${{a}}", b="${{b}}"}}
          max: 1
          matrix: {{a: [{values}], b: [{values}]}}  # <-- here
        """, "objectives.x.matrix", "10201 combinations of values, one item each; at most "
                                    "10000 per objective")


def test_percentages_are_read_exactly(tmp_path: Path) -> None:
    objective = only(load(tmp_path, with_ratio("min: 99.9%\nmax: 99.99%\n")))
    assert objective.bounds["beta"] == Bounds(0.999, 0.9999)


def test_digits_of_other_scripts_are_not_numbers(tmp_path: Path) -> None:
    assert_error(tmp_path, with_ratio("max: \uff15%  # <-- here\n"), "objectives.x.max",
                 "expected a number (0.05), a percentage (5%) or a duration (250ms, 10s, 5m, 1h, "
                 "1d), got '\uff15%'")


# -- SQL parameters and baseline variables ----------------------------------------------------

def test_an_sql_parameter_that_is_never_bound(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          backend: db
          query: SELECT count(*) FROM t WHERE region = :regoin AND n != ':no'  # <-- here
          max: 1
        """, "objectives.x.query",
        "the query uses :regoin, which is not bound at stage 'beta'; bound: :at, :feature, "
        ":service, :stage, :window, :window_end, :window_start")


def test_window_parameters_need_a_window(tmp_path: Path) -> None:
    header = SPEC_HEADER.replace("variables: {window: 1h, feature: resolver}\n", "")
    assert_error(tmp_path, """\
        - name: x
          backend: db
          query: SELECT count(*) FROM t WHERE ts >= :window_start  # <-- here
          max: 1
        """, "objectives.x.query",
        "the query uses :window_start, which is not bound at stage 'beta' (:window_start and "
        ":window_end need a `window` variable); bound: :at, :service, :stage", header)


def test_parameters_in_comments_and_strings_are_not_parameters(tmp_path: Path) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          backend: db
          query: >-
            SELECT count(*) FROM t -- :ignored
            WHERE note = 'at :noon' AND "col:umn" = 1 /* :also */ AND ts >= :window_start
          max: 1
        """))
    assert objective.query is not None and ":window_start" in objective.query


def test_a_baseline_variable_is_used_by_its_whole_name(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          backend: db
          query: SELECT count(*) FROM t WHERE cohort_id = :cohort_id
          variables: {cohort_id: 1}
          max: 5
          baseline:
            variables: {cohort: control}  # <-- here
            max_increase: 10%
        """, "objectives.x.baseline.variables.cohort",
        "no query of the objective uses ${cohort} (or :cohort in SQL), so the baseline would "
        "be the objective itself")


# -- units checked against what is measured ---------------------------------------------------

@pytest.mark.parametrize(("bound", "message"), [
    ("max: 5", "a ratio lies in 0..1, so 5 would be 500.00%; write 5%; if it is not a share of "
               "events, set `unit: number` (or `unit: seconds`)"),
    ("max: 150%", "a ratio lies in 0..1 and 150% is outside; write a percentage from 0% to "
                  "100% or a fraction (0.05); if it is not a share of events, set `unit: number` "
                  "(or `unit: seconds`)"),
    ("min: -0.1", "a ratio lies in 0..1 and -0.1 is outside; write a percentage from 0% to "
                  "100% or a fraction (0.05); if it is not a share of events, set `unit: number` "
                  "(or `unit: seconds`)"),
    ("max: 250ms", "'250ms' is a duration, but this objective measures a ratio, a share of "
                   "events from 0 to 1: write a percentage (5%) or a fraction (0.05); if it is "
                   "not a share of events, set `unit: number` (or `unit: seconds`)"),
])
def test_a_ratio_s_bounds_are_fractions(tmp_path: Path, bound: str, message: str) -> None:
    assert_error(tmp_path, with_ratio(f"{bound}  # <-- here\n"),
                 f"objectives.x.{bound.split(':')[0]}", message)


def test_a_ratio_s_stage_override_and_warn_level_are_checked_too(tmp_path: Path) -> None:
    assert_error(tmp_path, with_ratio("""\
        max: 5%
        thresholds:
          ga: {max: 2}  # <-- here
        """), "objectives.x.thresholds.ga.max",
        "a ratio lies in 0..1, so 2 would be 200.00%; write 2%; if it is not a share of "
        "events, set `unit: number` (or `unit: seconds`)")
    assert_error(tmp_path, with_ratio("""\
        max: 5%
        warn: {max: 3}  # <-- here
        """), "objectives.x.warn.max",
        "a ratio lies in 0..1, so 3 would be 300.00%; write 3%; if it is not a share of "
        "events, set `unit: number` (or `unit: seconds`)")


def test_a_ratio_s_absolute_baseline_change_is_a_fraction(tmp_path: Path) -> None:
    assert_error(tmp_path, with_ratio("""\
        max: 5%
        baseline:
          offset: 7d
          max_increase: 2s  # <-- here
        """), "objectives.x.baseline.max_increase",
        "'2s' is a duration, but this objective measures a ratio, a share of events from 0 to 1: "
        "write a percentage (5%) or a fraction (0.05); if it is not a share of events, set "
        "`unit: number` (or `unit: seconds`)")


def test_unit_overrides_what_a_ratio_measures(tmp_path: Path) -> None:
    latency = only(load(tmp_path, with_ratio("unit: seconds\nmax: 250ms\n")))
    assert (latency.unit, latency.bounds["beta"]) == ("seconds", Bounds(None, 0.25))
    per_request = only(load(tmp_path, with_ratio("unit: number\nmax: 5000\n")))
    assert (per_request.unit, per_request.bounds["beta"]) == ("number", Bounds(None, 5000.0))


def test_unit_percent_makes_an_opaque_query_a_ratio(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: sum(rate(errors[5m])) / sum(rate(requests[5m]))
          unit: percent
          max: 5  # <-- here
        """, "objectives.x.max",
        "unit: percent lies in 0..1, so 5 would be 500.00%; write 5%")


def test_a_quantile_of_a_seconds_histogram_takes_no_percentage(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          histogram_quantile: {metric: http_request_duration_seconds, quantile: 0.95}
          max: 5%  # <-- here
        """, "objectives.x.max",
        "'5%' is a percentage, but this objective measures seconds (a quantile of "
        "http_request_duration_seconds): write a duration (250ms, 2s) or plain seconds (0.25)")


def test_a_quantile_of_a_seconds_histogram_in_plain_seconds_shows_seconds(tmp_path: Path
                                                                          ) -> None:
    objective = only(load(tmp_path, """\
        - name: x
          histogram_quantile: {metric: http_request_duration_seconds_bucket, quantile: 0.95}
          max: 0.25
        """))
    assert (objective.unit, objective.bounds["beta"]) == ("seconds", Bounds(None, 0.25))


def test_unit_seconds_refuses_a_percentage(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: max(latency)
          unit: seconds
          max: 5%  # <-- here
        """, "objectives.x.max",
        "'5%' is a percentage, but this objective measures seconds (unit: seconds): write a "
        "duration (250ms, 2s) or plain seconds (0.25)")


def test_one_objective_s_bounds_share_one_unit(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up
          min: 5%
          max: 10s  # <-- here
        """, "objectives.x.max",
        "'10s' is a duration, but min '5%' is a percentage; the bounds of one objective measure "
        "one thing: write them in one unit")


def test_a_quantile_q_is_a_fraction_not_a_duration(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          backend: db
          quantile:
            q: 500ms  # <-- here
            values: SELECT v FROM t
          max: 1
        """, "objectives.x.quantile.q",
        "must be a fraction between 0 and 1, as a number (0.95) or a percentage (95%), got "
        "'500ms'")


def test_a_long_spec_of_hostile_values_is_refused_quickly(tmp_path: Path) -> None:
    # Every check is linear in the file: a file of 2,000 objectives with a bad last one.
    body = "".join(f"- {{name: o{n}, query: up, max: 1}}\n" for n in range(2000))
    started = time.perf_counter()
    assert_error(tmp_path, body + "- {name: last, query: up, max: !!float x}  # <-- here\n",
                 "objectives[2000].max", "explicit YAML tags (!!float) are not accepted; write "
                                         "the value plainly (in quotes for a string)")
    assert time.perf_counter() - started < 5


def test_a_huge_bound_is_shown_short(tmp_path: Path) -> None:
    assert_error(tmp_path, """\
        - name: x
          query: up
          min: 1.0e+300  # <-- here
          max: 1
        """, "objectives.x.min", "min 1e+300 is greater than max 1 at stage 'beta'")


def test_lists_and_names_in_a_message_are_bounded(tmp_path: Path) -> None:
    many = ", ".join(f"v{n}: 1" for n in range(500))
    path = tmp_path / "spec.slo.yaml"
    path.write_text(spec_text(f"""\
        - name: x
          query: up{{a="${{{"n" * 10_000}}}"}}
          variables: {{{many}}}
          max: 1
        """), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path, TYPES)
    assert info.value.message.startswith(f"undefined variable ${{{'n' * 60}... (10000 "
                                         "characters)} at stage 'beta'; defined: feature, "
                                         "service, stage, v0, v1, v10, v100, v101")
    assert info.value.message.endswith(" and 474 more")
    assert len(info.value.message) < 500
