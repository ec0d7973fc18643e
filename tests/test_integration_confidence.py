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
import scipy.stats  # noqa: F401
from expected import expected_error_rate
from simulate import Events
from test_integration_gates import STAGE_WINDOW, error_rate, prometheus, spec
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
