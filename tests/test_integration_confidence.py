"""``confidence`` against the real Prometheus: the quickstart's traffic judged by its counts.

The counts come from the simulator's raw events (``expected.py``); the verdict each should
get is worked out here from those counts and the interval, so the test checks that what
Prometheus' ``increase()`` returns reaches the judge as the same whole counts. The internal
stage (686 canary requests) cannot tell its 3.2 % from ``max: 4%``; beta and ga can.
"""

from __future__ import annotations

import json

import pytest

# Before any in-process run: SciPy's compiled modules cannot be loaded twice in one process.
import scipy.stats
from expected import expected_error_rate
from simulate import AT_UNIX, Events
from test_integration_gates import STAGE_WINDOW, error_rate, latency, prometheus, spec
from test_integration_prometheus import run_spec

from pytest_rollout_slo.verdict import stats

pytest_plugins = ["pytester"]

__all__ = ["prometheus"]  # the fixture, used by name

CONFIDENT = spec(error_rate("error_rate", "max: 4%\nconfidence: 95%\n"))


def expected_verdict(k: int, n: int, bound: float) -> str:
    low, high = stats.interval(k, n, 0.95, "clopper-pearson")
    return "fail" if low > bound else "pass" if high < bound else "inconclusive"


@pytest.mark.parametrize("stage", ["internal", "beta", "ga"])
def test_low_traffic_is_inconclusive_and_more_traffic_decides(
        pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str
) -> None:
    counts = expected_error_rate(quickstart_events, stage, window=STAGE_WINDOW[stage])
    want = expected_verdict(counts.numerator, counts.denominator, 0.04)
    assert want == ("inconclusive" if stage == "internal" else "pass")
    result, cases = run_spec(pytester, CONFIDENT, stage)
    case = cases[f"error_rate[{stage}]"]
    assert case.props["slo.verdict"] == want
    (test,) = json.loads(case.props["slo.tests"])
    assert test["counts"] == [counts.numerator, counts.denominator]
    if want == "inconclusive":
        assert result.ret == 1
        assert "more requests would decide" in case.text
    else:
        assert result.ret == 0


def test_canary_against_control_by_significance(
        pytester: pytest.Pytester, prometheus: str, quickstart_events: Events) -> None:
    # Beta: canary 2.1 % against control 2.3 %, a fall on points; the counts (99 errors in
    # all) cannot show the canary within max_increase 20 % either.
    objective = error_rate("error_rate", "confidence: 95%\n"
                           "baseline: {variables: {cohort: control}, max_increase: 20%}\n")
    now = expected_error_rate(quickstart_events, "beta", window=STAGE_WINDOW["beta"])
    before = expected_error_rate(quickstart_events, "beta", cohort="control",
                                 window=STAGE_WINDOW["beta"])
    total = now.numerator + before.numerator
    bound = now.denominator * 1.2 / (now.denominator * 1.2 + before.denominator)
    want = expected_verdict(now.numerator, total, bound)
    result, cases = run_spec(pytester, spec(objective), "beta")
    case = cases["error_rate[beta]"]
    assert case.props["slo.verdict"] == want
    (test,) = json.loads(case.props["slo.tests"])
    assert test["test"] == "rate ratio"
    assert test["counts"] == [now.numerator, now.denominator, before.numerator,
                              before.denominator]
    assert result.ret == (0 if want == "pass" else 1)


def tool_call_counts(events: Events, stage: str, bound: float) -> tuple[int, int]:
    """Tool calls of ``stage``'s window at most ``bound`` seconds, and all of them."""
    start = AT_UNIX - STAGE_WINDOW[stage]
    durations = [c.duration_s for c in events.tool_calls
                 if c.stage == stage and start <= c.ts < AT_UNIX]
    return sum(d <= bound for d in durations), len(durations)


@pytest.mark.parametrize(("stage", "maximum", "want"), [
    ("internal", 7.5, "inconclusive"),  # 95.3 % of 965 calls within 7.5 s: too close to tell
    ("beta", 7.5, "pass"),  # 97.5 % of 2,105
    ("beta", 5.0, "fail"),  # 93.3 % of 2,105
])
def test_a_histogram_p95_is_judged_by_its_bucket_counts(
        pytester: pytest.Pytester, prometheus: str, quickstart_events: Events, stage: str,
        maximum: float, want: str) -> None:
    # The verdict worked out from the raw events with the binomial distribution's own tails
    # (not the binomtest the plugin calls): what Prometheus' bucket counts must reproduce.
    k, n = tool_call_counts(quickstart_events, stage, maximum)
    held = 2 * scipy.stats.binom.sf(k - 1, n, 0.95) < 0.05
    broken = 2 * scipy.stats.binom.cdf(k, n, 0.95) < 0.05
    assert want == ("fail" if broken else "pass" if held else "inconclusive")
    objective = latency("p95", f"max: {maximum:g}s\nconfidence: 95%\n")
    result, cases = run_spec(pytester, spec(objective), stage)
    case = cases[f"p95[{stage}]"]
    assert case.props["slo.verdict"] == want, case.text
    (test,) = json.loads(case.props["slo.tests"])
    assert test["test"] == "histogram buckets"
    assert (test["counts"], test["buckets"]) == ([k, n], [maximum])
    assert "increase(tool_call_duration_seconds_bucket{" in case.props["slo.query"]
    assert result.ret == (0 if want == "pass" else 1)


def test_a_histogram_p95_against_a_baseline_by_bucket_intervals(
        pytester: pytest.Pytester, prometheus: str) -> None:
    # Beta's tool calls (p95 5.6 s) against ga's over the same 2 days (3.6 s): at 97.5 % each
    # the counts place them in 5 s to 7.5 s and 3 s to 4 s, more than 20 % apart wherever in
    # those intervals they lie.
    objective = latency("p95", "variables: {phase: beta}\nconfidence: 95%\n"
                        "baseline: {variables: {phase: ga}, max_increase: 20%}\n",
                        selector='feature="${feature}", stage="${phase}", cohort="${cohort}"')
    result, cases = run_spec(pytester, spec(objective), "beta", "--slo-report-md=summary.md")
    case = cases["p95[beta]"]
    assert case.props["slo.verdict"] == "fail", case.text
    (test,) = json.loads(case.props["slo.tests"])
    assert test["test"] == "histogram quantiles"
    assert test["buckets"] == [5.0, 7.5, 3.0, 4.0]  # each side's interval at 97.5 %
    assert test["p_fail"] < 0.05
    assert "breaks max_increase 20%" in case.text
    summary = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert "histogram quantiles, clopper-pearson ratio" in summary
    assert result.ret == 1


def test_a_noisy_but_equal_canary_passes_within_a_wide_allowance(
        pytester: pytest.Pytester, prometheus: str, quickstart_events: Events) -> None:
    # Beta: 30 errors in 1,446 canary requests against 69 in 2,972: a rate ratio of 0.89,
    # whose interval stays under 1.5 although the counts are few.
    now = expected_error_rate(quickstart_events, "beta", window=STAGE_WINDOW["beta"])
    before = expected_error_rate(quickstart_events, "beta", cohort="control",
                                 window=STAGE_WINDOW["beta"])
    bound = now.denominator * 1.5 / (now.denominator * 1.5 + before.denominator)
    assert expected_verdict(now.numerator, now.numerator + before.numerator, bound) == "pass"
    objective = error_rate("error_rate", "confidence: 95%\n"
                           "baseline: {variables: {cohort: control}, max_increase: 50%}\n")
    result, cases = run_spec(pytester, spec(objective), "beta")
    case = cases["error_rate[beta]"]
    assert case.props["slo.verdict"] == "pass", case.text
    assert result.ret == 0


def test_the_family_adjustment_turns_a_borderline_fail_inconclusive(
        pytester: pytest.Pytester, prometheus: str, quickstart_events: Events) -> None:
    # Beta's 30 errors in 1,446 requests against max 1.35 %: p = 0.032 for a breach, a fail
    # alone; beside a second test, Holm doubles the smallest p-value past 0.05.
    counts = expected_error_rate(quickstart_events, "beta", window=STAGE_WINDOW["beta"])
    p = 2 * scipy.stats.binom.sf(counts.numerator - 1, counts.denominator, 0.0135)
    assert 0.025 < p < 0.05
    objectives = spec(error_rate("error_rate", "max: 1.35%\nconfidence: 95%\n"),
                      error_rate("error_rate_loose", "max: 10%\nconfidence: 95%\n"))
    alone, cases = run_spec(pytester, objectives, "beta", "--slo-confidence-adjustment=none")
    assert cases["error_rate[beta]"].props["slo.verdict"] == "fail"
    assert alone.ret == 1
    result, cases = run_spec(pytester, objectives, "beta")
    case = cases["error_rate[beta]"]
    assert case.props["slo.verdict"] == "inconclusive", case.text
    assert case.props["slo.adjustment"] == "Holm adjustment over 2 tests"
    (test,) = json.loads(case.props["slo.tests"])
    assert test["p_fail"] == pytest.approx(p, rel=1e-6)
    assert test["p_fail_adjusted"] == pytest.approx(2 * p, rel=1e-6)
    assert cases["error_rate_loose[beta]"].props["slo.verdict"] == "pass"
    assert result.ret == 1  # inconclusive holds the stage (on_inconclusive: fail)
