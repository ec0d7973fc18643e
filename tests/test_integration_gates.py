"""The gates beyond one instant, feature by feature, against real Prometheus (and, for the
range queries of sustained objectives, VictoriaMetrics).

Each test writes a small spec over the quickstart's simulated Conflict Resolver traffic (the
servers of conftest.py hold it, backfilled every 300 s), gates one stage at the simulator's
``AT`` through pytester, and holds the verdict and the key numbers against ``expected.py``,
which computes them from the raw events: the violations of a sustained objective at each of
its points, the canary's and the control's error rates, the same window a day earlier, the
histogram interpolation per stage, the 90th percentile of hourly error ratios, the burn rate
of each alert window. Every window and step is a multiple of 300 s and ends on a sample, so
the engines' counts are exact and the comparison can be exact too.

Engine notes, as met here: both engines answer the sustained objectives' range queries with
the same 49 hourly points and the same exact counts. Prometheus 2.x range selectors and
subqueries are closed on the left, so ``[2d:1h]`` at ``AT`` holds 49 points (Prometheus 3.x,
left-open, would hold 48); VictoriaMetrics gives the same 49 here. Off the 300 s sample grid
(an ``--slo-at`` between samples) the engines part, so the same sustained gate can count
differently: Prometheus extrapolates ``increase`` to the window edges (3h of beta requests
ending 1234 s before ``AT``: 104.91), VictoriaMetrics subtracts the samples before each edge
(102, a whole count).
"""

from __future__ import annotations

import json
import textwrap

import pytest
import requests
from expected import (
    Histogram,
    Ratio,
    burn_rate,
    expected_error_rate,
    expected_error_rate_steps,
    expected_histogram_quantile,
    expected_histogram_quantile_steps,
    percentile,
    step_times,
)
from servers import PrometheusServer
from simulate import AT_UNIX, STAGES, Events
from test_integration_prometheus import DAY, HOUR, OWN_FILTERS, TIMEOUT, Case, run_spec

from pytest_rollout_slo.quantity import format_time, format_value

pytest_plugins = ["pytester"]

HEADER = """\
version: 1
service: conflict-resolver
backends:
  metrics: {type: prometheus, url: "${env:PROMETHEUS_URL}"}
variables: {feature: conflict_resolver, cohort: canary, window: 24h}
stages:
  internal: {}
  beta: {variables: {window: 2d}}
  ga: {}
objectives:
"""
STAGE_WINDOW = {"internal": DAY, "beta": 2 * DAY, "ga": DAY}
SELECT = 'feature="${feature}", stage="${stage}", cohort="${cohort}"'
ERRORS = f"sum(increase(agent_errors_total{{{SELECT}}}[${{window}}])) or vector(0)"
REQUESTS = f"sum(increase(agent_requests_total{{{SELECT}}}[${{window}}]))"


def spec(*objectives: str) -> str:
    """A spec file of ``objectives``, each a YAML list entry written at column 0."""
    return HEADER + "".join(textwrap.indent(textwrap.dedent(o), "  ") for o in objectives)


def _keys(extra: str) -> str:
    return textwrap.indent(textwrap.dedent(extra), "  ")


def ratio(name: str, numerator: str, denominator: str, extra: str, *,
          min_denominator: int = 100) -> str:
    """A ratio objective, plus the objective keys in ``extra``."""
    return (f"- name: {name}\n"
            "  ratio:\n"
            f"    numerator: '{numerator}'\n"
            f"    denominator: '{denominator}'\n"
            f"    min_denominator: {min_denominator}\n") + _keys(extra)


def error_rate(name: str, extra: str, *, min_denominator: int = 100) -> str:
    """The canary's error rate of the stage, plus the objective keys in ``extra``."""
    return ratio(name, ERRORS, REQUESTS, extra, min_denominator=min_denominator)


def latency(name: str, extra: str, *, by: str = "", selector: str = SELECT) -> str:
    """Tool call p95 through ``histogram_quantile:``, plus the keys in ``extra``."""
    return (f"- name: {name}\n"
            "  histogram_quantile:\n"
            "    metric: tool_call_duration_seconds\n"
            "    quantile: 0.95\n"
            f"    selector: '{selector}'\n"
            + (f"    by: [{by}]\n" if by else "")) + _keys(extra)


@pytest.fixture
def prometheus(prometheus_server: PrometheusServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The suite's Prometheus; the specs' ``${env:PROMETHEUS_URL}`` points at it."""
    monkeypatch.setenv("PROMETHEUS_URL", prometheus_server.url)
    return prometheus_server.url


@pytest.fixture(params=["prometheus", "victoriametrics"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Prometheus, then VictoriaMetrics, both holding the same backfill."""
    url: str = request.getfixturevalue(f"{request.param}_server").url
    monkeypatch.setenv("PROMETHEUS_URL", url)
    return url


def pct(value: float) -> str:
    return format_value(value, "percent")


def secs(value: float) -> str:
    return format_value(value, "seconds")


def verdicts(cases: dict[str, Case]) -> dict[str, tuple[str, str]]:
    return {name: (c.props["slo.verdict"], c.props["slo.value"]) for name, c in cases.items()}


def value_of(counts: Ratio, min_denominator: int) -> float | None:
    """The plugin's reading of a ratio: no data below ``min_denominator`` (or at 0)."""
    if counts.denominator == 0 or counts.denominator < min_denominator:
        return None
    return counts.numerator / counts.denominator


def change_text(now: float, before: float, unit: str) -> str:
    """``up 55.1% (1.14 points)``: README, "Baselines", with the change computed here."""
    delta = now - before
    word = "up" if delta > 0 else "down"
    absolute = f"{abs(delta) * 100:.2f} points" if unit == "percent" else secs(abs(delta))
    return f"{word} {abs(delta) / before * 100:.1f}% ({absolute})"


# -- warn -------------------------------------------------------------------------------------

WARN_SPEC = spec(
    error_rate("error_rate", "max: 5%\nwarn: {max: 3%}\n"),
    latency("tool_call_latency_p95", "max: 10s\nwarn: {max: 5s}\n"),
    ratio("tool_call_success_rate",
          f'sum(increase(tool_calls_total{{outcome="success", {SELECT}}}[${{window}}]))',
          f"sum(increase(tool_calls_total{{{SELECT}}}[${{window}}]))",
          "min: 80%\nwarn: {min: 90%}\nthresholds: {ga: {warn: {min: 95%}}}\n"),
)


def expect_warn(events: Events, stage: str) -> dict[str, tuple[str, str]]:
    window = STAGE_WINDOW[stage]
    errors = expected_error_rate(events, stage, window=window).value
    p95 = expected_histogram_quantile(events, stage, "tool_call_duration_seconds", 0.95,
                                      window=window)
    calls = [c for c in events.tool_calls
             if c.stage == stage and AT_UNIX - window <= c.ts < AT_UNIX]
    success = sum(c.success for c in calls) / len(calls)
    assert errors is not None and p95 is not None
    success_warn = 0.95 if stage == "ga" else 0.90
    return {
        f"error_rate[{stage}]": ("fail" if errors > 0.05 else "warn" if errors > 0.03
                                 else "pass", pct(errors)),
        f"tool_call_latency_p95[{stage}]": ("fail" if p95 > 10 else "warn" if p95 > 5
                                            else "pass", secs(p95)),
        f"tool_call_success_rate[{stage}]": ("fail" if success < 0.8 else "warn"
                                             if success < success_warn else "pass",
                                             pct(success)),
    }


@OWN_FILTERS
@pytest.mark.parametrize("stage", ["internal", "ga"])
def test_warn_between_the_alert_threshold_and_the_target(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str
) -> None:
    want = expect_warn(quickstart_events, stage)
    # The data put every verdict where the test means it: internal warns on all three, ga
    # warns only through its own, stricter warn level on the tool call success rate.
    assert [v for v, _ in want.values()] == (["warn"] * 3 if stage == "internal"
                                             else ["pass", "pass", "warn"])
    result, cases = run_spec(pytester, WARN_SPEC, stage)
    assert verdicts(cases) == want
    warned = [name for name, (verdict, _) in want.items() if verdict == "warn"]
    result.assert_outcomes(passed=3, warnings=len(warned))
    assert result.ret == 0
    for name in warned:
        value = want[name][1]
        assert f"SloWarning: {name} WARN: {value} " in result.stdout.str()
        assert cases[name].system_out.startswith(f"{name} WARN: {value}")
        assert cases[name].outcome == "passed"
    assert cases[f"tool_call_success_rate[{stage}]"].props["slo.warn_min"] == (
        "95.00%" if stage == "ga" else "90.00%")

    strict, strict_cases = run_spec(pytester, WARN_SPEC, stage, "--slo-strict")
    strict.assert_outcomes(passed=3 - len(warned), failed=len(warned))
    for name in warned:
        assert strict_cases[name].outcome == "failure"
        assert strict_cases[name].text.startswith(
            f"{name} FAILED (warning under --slo-strict): {want[name][1]}")


# -- sustained --------------------------------------------------------------------------------
# Beta's two days, hour by hour (49 points), each point the error rate of the 3 hours before
# it: at 4% the data break the bound at 2 points and leave 2 points below min_denominator.

SUSTAINED_OVER, SUSTAINED_STEP, POINT_WINDOW = 2 * DAY, HOUR, 3 * HOUR
SUSTAINED = "sustained: {over: 2d, step: 1h, max_violations: 3}\n"
SUSTAINED_SPEC = spec(
    error_rate("errors_gaps_count", f"matrix: {{window: [3h]}}\nmax: 4%\n{SUSTAINED}",
               min_denominator=50),
    error_rate("errors_gaps_left_out",
               f"matrix: {{window: [3h]}}\nmax: 4%\n{SUSTAINED}on_no_data: skip\n",
               min_denominator=50),
    latency("latency_p95", "matrix: {window: [6h]}\nmax: 6s\n"
            "sustained: {over: 2d, step: 1h, max_violations: 20}\n"),
)


def sustained_points(events: Events) -> list[tuple[float, float | None]]:
    return [(t, value_of(r, 50)) for t, r in expected_error_rate_steps(
        events, "beta", window=POINT_WINDOW, over=SUSTAINED_OVER, step=SUSTAINED_STEP)]


def range_values(url: str, promql: str) -> dict[float, float]:
    """The one series a range query over beta's two days answers, by time."""
    times = step_times(SUSTAINED_OVER, SUSTAINED_STEP)
    response = requests.post(f"{url}/api/v1/query_range",
                             data={"query": promql, "start": times[0], "end": times[-1],
                                   "step": SUSTAINED_STEP}, timeout=TIMEOUT)
    response.raise_for_status()
    [series] = response.json()["data"]["result"]
    return {float(t): float(v) for t, v in series["values"]}


def test_sustained_counts_violations_and_gaps_at_every_step(
    pytester: pytest.Pytester, engine: str, quickstart_events: Events
) -> None:
    points = sustained_points(quickstart_events)
    over = [(t, v) for t, v in points if v is not None and v > 0.04]
    gaps = [t for t, v in points if v is None]
    assert (len(points), len(over), len(gaps)) == (49, 2, 2)  # what the spec above relies on
    p95s = [v for _, v in expected_histogram_quantile_steps(
        quickstart_events, "beta", "tool_call_duration_seconds", 0.95, window=6 * HOUR,
        over=SUSTAINED_OVER, step=SUSTAINED_STEP)]
    slow = sum(1 for v in p95s if v is None or v > 6.0)

    result, cases = run_spec(pytester, SUSTAINED_SPEC, "beta")
    counted = len(over) + len(gaps)
    assert verdicts(cases) == {
        "errors_gaps_count[beta-window=3h]": ("fail" if counted > 3 else "pass",
                                              f"{counted} of 49 points outside"),
        "errors_gaps_left_out[beta-window=3h]": ("fail" if len(over) > 3 else "pass",
                                                 f"{len(over)} of 49 points outside"),
        "latency_p95[beta-window=6h]": ("fail" if slow > 20 else "pass",
                                        f"{slow} of 49 points outside"),
    }
    assert (counted, slow) == (4, 18)
    text = cases["errors_gaps_count[beta-window=3h]"].text
    worst = sorted(over, key=lambda p: (-(p[1] - 0.04), p[0]))
    assert text.splitlines()[:3 + len(worst)] == [
        f"errors_gaps_count[beta-window=3h] FAILED: {counted} of 49 points outside max "
        "4.00% over 2d (step 1h); at most 3 allowed",
        f"  (window 3h, at {format_time(AT_UNIX)})",
        "  worst points:",
        *(f"  {format_time(t)}: {pct(v)}" for t, v in worst),
    ]
    assert "  no data at 2 point(s), counted as violations (on_no_data: fail)" in text
    result.assert_outcomes(passed=2, failed=1)

    # The engine's own range answer, point by point, is the simulated events' count.
    resolved = {name: cases["errors_gaps_count[beta-window=3h]"].props[f"slo.{name}_query"]
                for name in ("numerator", "denominator")}
    numerators = range_values(engine, resolved["numerator"])
    denominators = range_values(engine, resolved["denominator"])
    assert sorted(denominators) == [t for t, _ in points]
    steps = expected_error_rate_steps(quickstart_events, "beta", window=POINT_WINDOW,
                                      over=SUSTAINED_OVER, step=SUSTAINED_STEP)
    assert [(numerators[t], denominators[t]) for t, _ in steps] == [
        (r.numerator, r.denominator) for _, r in steps]


# -- baselines --------------------------------------------------------------------------------

COHORT_SPEC = spec(error_rate(
    "error_rate_vs_control", "baseline: {variables: {cohort: control}, max_increase: 20%}\n"))


@pytest.mark.parametrize("stage", STAGES)
def test_baseline_canary_against_control(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str
) -> None:
    window = STAGE_WINDOW[stage]
    now = value_of(expected_error_rate(quickstart_events, stage, window=window), 100)
    before = value_of(expected_error_rate(quickstart_events, stage, cohort="control",
                                          window=window), 100)
    result, cases = run_spec(pytester, COHORT_SPEC, stage)
    case = cases[f"error_rate_vs_control[{stage}]"]
    assert now is not None
    if before is None:  # GA: the flag is on for everyone, no control is left to compare with
        assert stage == "ga"
        assert (case.props["slo.verdict"], case.outcome) == ("no_data", "failure")
        assert case.text.startswith("error_rate_vs_control[ga] NO DATA: the baseline "
                                    "(cohort=control) has no data")
        return
    increase = (now - before) / before
    verdict = "fail" if increase > 0.20 else "pass"
    assert (stage, verdict) in (("internal", "fail"), ("beta", "pass"))
    assert verdicts(cases) == {case.props["slo.objective"] + f"[{stage}]": (
        verdict, f"{pct(now)} vs baseline {pct(before)}")}
    assert case.props["slo.baseline"] == "cohort=control"
    if verdict == "fail":
        assert case.text.splitlines()[0] == (
            f"error_rate_vs_control[{stage}] FAILED: {pct(now)} is "
            f"{change_text(now, before, 'percent')} against the baseline {pct(before)} "
            "(cohort=control); max_increase is 20%")
    assert result.ret == (1 if verdict == "fail" else 0)


def test_baseline_pairs_series_by_stage_leaving_out_the_cohort(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events
) -> None:
    # One series per stage on each side; `cohort` differs between the sides and is what
    # the baseline's variables change, so the series pair by `stage`.
    by_stage = 'stage=~"internal|beta", cohort="${cohort}"'
    objective = ratio(
        "error_rate_vs_control",
        f"sum by (cohort, stage) (increase(agent_errors_total{{{by_stage}}}[${{window}}]))",
        f"sum by (cohort, stage) (increase(agent_requests_total{{{by_stage}}}[${{window}}]))",
        "baseline: {variables: {cohort: control}, max_increase: 20%}\n", min_denominator=0)
    rates = {(stage, cohort): expected_error_rate(quickstart_events, stage, cohort=cohort,
                                                  window=2 * DAY).value
             for stage in ("internal", "beta") for cohort in ("canary", "control")}
    _, cases = run_spec(pytester, spec(objective), "beta")
    case = cases["error_rate_vs_control[beta]"]
    lines = []
    for stage in ("beta", "internal"):
        now, before = rates[(stage, "canary")], rates[(stage, "control")]
        assert now is not None and before is not None
        lines.append(f'  {{cohort="canary", stage="{stage}"}}: {pct(now)} against baseline '
                     f"{pct(before)} (cohort=control): {change_text(now, before, 'percent')}")
    assert [line for line in case.text.splitlines() if "against baseline" in line] == lines
    up = {stage: (rates[(stage, "canary")] or 0) / (rates[(stage, "control")] or 1) - 1
          for stage in ("internal", "beta")}
    assert (up["internal"] > 0.20, up["beta"] > 0.20) == (True, False)
    assert (case.props["slo.verdict"], case.props["slo.value"]) == (
        "fail", "1 change(s) too large")


OFFSET_SPEC = spec(
    error_rate("error_rate_vs_yesterday", "baseline: {offset: 1d, max_increase: 10%}\n"),
    latency("latency_p95_vs_yesterday", "baseline: {offset: 1d, max_increase: 0.1s}\n"),
)


@pytest.mark.parametrize("stage", ["internal", "ga"])
def test_baseline_the_same_window_a_day_earlier(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str
) -> None:
    earlier = AT_UNIX - DAY
    rate_now = expected_error_rate(quickstart_events, stage, window=DAY).value
    rate_before = expected_error_rate(quickstart_events, stage, window=DAY, at=earlier).value
    metric: Histogram = "tool_call_duration_seconds"
    p95_now = expected_histogram_quantile(quickstart_events, stage, metric, 0.95, window=DAY)
    p95_before = expected_histogram_quantile(quickstart_events, stage, metric, 0.95,
                                             window=DAY, at=earlier)
    assert None not in (rate_now, rate_before, p95_now, p95_before)
    assert rate_now is not None and rate_before is not None
    assert p95_now is not None and p95_before is not None
    want = {
        f"error_rate_vs_yesterday[{stage}]": (
            "fail" if (rate_now - rate_before) / rate_before > 0.10 else "pass",
            f"{pct(rate_now)} vs baseline {pct(rate_before)}"),
        f"latency_p95_vs_yesterday[{stage}]": (
            "fail" if p95_now - p95_before > 0.1 else "pass",
            f"{secs(p95_now)} vs baseline {secs(p95_before)}"),
    }
    # ga's error rate is up 9.7% (just inside 10%) and its p95 up 0.09s; internal's p95 is
    # up 0.14s, its error rate down.
    assert [v for v, _ in want.values()] == (["pass", "fail"] if stage == "internal"
                                             else ["pass", "pass"])
    _, cases = run_spec(pytester, OFFSET_SPEC, stage)
    assert verdicts(cases) == want
    for name, (verdict, _) in want.items():
        assert cases[name].props["slo.baseline"] == "1d earlier"
        if verdict == "fail":
            assert cases[name].text.splitlines()[0] == (
                f"{name} FAILED: {secs(p95_now)} is {change_text(p95_now, p95_before, 's')} "
                f"against the baseline {secs(p95_before)} (1d earlier); max_increase is 0.1s")


# -- quantiles --------------------------------------------------------------------------------


def test_histogram_quantile_by_stage_checks_every_series(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events
) -> None:
    # No stage in the selector and `by: [stage]`: one p95 per stage, each held to 5s.
    objective = latency("p95_by_stage", "max: 5s\n", by="stage",
                        selector='feature="${feature}", cohort="${cohort}"')
    want = {stage: expected_histogram_quantile(quickstart_events, stage,
                                               "tool_call_duration_seconds", 0.95, window=DAY)
            for stage in STAGES}
    _, cases = run_spec(pytester, spec(objective), "ga")
    case = cases["p95_by_stage[ga]"]
    assert case.props["slo.query"] == (
        "histogram_quantile(0.95, sum by (le, stage) (rate(tool_call_duration_seconds_bucket"
        '{feature="conflict_resolver", cohort="canary"}[24h])))')
    got = {o["labels"]["stage"]: o["value"] for o in json.loads(case.props["slo.observations"])}
    assert got == pytest.approx(want, rel=1e-9)
    over = [stage for stage, value in want.items() if value is not None and value > 5.0]
    assert over == ["internal", "beta"]
    assert (case.props["slo.verdict"], case.outcome) == ("fail", "failure")
    assert case.text.splitlines()[0] == "p95_by_stage[ga] FAILED: 2 of 3 values outside max 5s"
    for stage in over:
        value = want[stage]
        assert value is not None
        assert f'{{stage="{stage}"}}: {secs(value)} > max 5s' in case.text


def test_quantile_of_hourly_error_ratios_from_a_subquery(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events
) -> None:
    # The subquery answers a matrix: every hourly ratio of beta's two days is one value.
    hourly = (f"(sum(increase(agent_errors_total{{{SELECT}}}[1h])) / "
              f"sum(increase(agent_requests_total{{{SELECT}}}[1h])))[${{window}}:1h]")
    objective = f"""\
    - name: hourly_error_rate_p90
      quantile: {{q: 0.9, values: '{hourly}'}}
      unit: percent
      max: 5%
    """
    steps = expected_error_rate_steps(quickstart_events, "beta", window=HOUR,
                                      over=2 * DAY, step=HOUR)
    values = [r.value for _, r in steps if r.value is not None]  # 0/0 is NaN: left out
    want = percentile(values, 90)
    assert want is not None and len(values) == 49
    _, cases = run_spec(pytester, spec(objective), "beta")
    case = cases["hourly_error_rate_p90[beta]"]
    [observation] = json.loads(case.props["slo.observations"])
    assert observation["value"] == pytest.approx(want, rel=1e-9)
    assert (case.props["slo.verdict"], case.props["slo.value"]) == (
        "fail" if want > 0.05 else "pass", pct(want))


# -- burn rate --------------------------------------------------------------------------------

BURN_ALERTS = ((HOUR, "1h", 5 * 60, "5m", 14.4), (6 * HOUR, "6h", 30 * 60, "30m", 6.0))
BURN_SPEC = spec(error_rate("error_budget", """\
    burn_rate:
      target: 99.5%
      alerts: [{long: 1h, short: 5m, factor: 14.4}, {long: 6h, short: 30m, factor: 6}]
    """, min_denominator=0))


@pytest.mark.parametrize("stage", ["internal", "beta"])
def test_burn_rate_fires_when_both_windows_burn_too_fast(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str
) -> None:
    def rate(window: float) -> float:
        value = burn_rate(expected_error_rate(quickstart_events, stage, window=window), 0.995)
        assert value is not None
        return value

    rates = [(rate(long), rate(short)) for long, _, short, _, _ in BURN_ALERTS]
    fired = [i for i, (long, short) in enumerate(rates)
             if long > BURN_ALERTS[i][4] and short > BURN_ALERTS[i][4]]
    assert fired == ([1] if stage == "internal" else [])  # what the test is about
    _, cases = run_spec(pytester, BURN_SPEC, stage)
    case = cases[f"error_budget[{stage}]"]
    assert (case.props["slo.verdict"], case.props["slo.value"]) == (
        ("fail", "1 alert(s) firing") if fired else ("pass", "no alert firing"))
    assert case.props["slo.burn_rate_target"] == "99.5%"
    if fired:
        for (long, short), (_, long_text, _, short_text, factor) in zip(
                rates, BURN_ALERTS, strict=True):
            assert (f"(factor {factor:g}: {long_text} and {short_text}): burn rate "
                    f"{long:.2f}x over {long_text}, {short:.2f}x over {short_text}") in case.text


# -- matrix -----------------------------------------------------------------------------------

MATRIX_SPEC = spec(error_rate("error_rate", "matrix: {cohort: [canary, control]}\nmax: 5%\n"))


@pytest.mark.parametrize("stage", ["internal", "ga"])
def test_matrix_one_item_per_cohort(
    pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str
) -> None:
    want: dict[str, tuple[str, str]] = {}
    for cohort in ("canary", "control"):
        value = value_of(expected_error_rate(quickstart_events, stage, cohort=cohort,
                                             window=DAY), 100)
        want[f"error_rate[{stage}-cohort={cohort}]"] = (
            ("no_data", "no data") if value is None
            else ("fail" if value > 0.05 else "pass", pct(value)))
    result, cases = run_spec(pytester, MATRIX_SPEC, stage)
    assert verdicts(cases) == want
    assert {c.props["slo.matrix"] for c in cases.values()} == {"cohort=canary",
                                                               "cohort=control"}
    passed = sum(1 for v, _ in want.values() if v == "pass")
    result.assert_outcomes(passed=passed, failed=2 - passed)
    for name, case in cases.items():
        cohort = case.props["slo.matrix"].removeprefix("cohort=")
        assert f'cohort="{cohort}"' in case.props["slo.denominator_query"], name

