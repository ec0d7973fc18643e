"""Latency against a baseline by the ranks of raw samples: Mann-Whitney and Hodges-Lehmann.

References independent of SciPy: the exact Mann-Whitney tail by enumerating every split of
a small pooled sample, and the Hodges-Lehmann estimate and interval from the pairwise
differences in plain Python (Hollander and Wolfe's order statistics). A seeded simulation
checks the false-fail rate on the bound.
"""

from __future__ import annotations

import itertools
import math
import statistics
from statistics import NormalDist

import numpy as np
import pytest

from pytest_rollout_slo.spec.model import Baseline, Bounds, Change, Confidence
from pytest_rollout_slo.verdict import stats
from pytest_rollout_slo.verdict.instant import Observation, Verdict
from pytest_rollout_slo.verdict.samples import judge_samples, rank_test

EXACT = Confidence(0.95)
NONE = Bounds(None, None)
X = [1.1, 2.3, 3.5, 4.2, 5.9]
Y = [0.5, 0.9, 1.7, 2.0, 2.8, 3.1]


def relative(amount: float) -> Baseline:
    return Baseline({"cohort": "control"}, None, "", Change(amount, True, f"{amount:.0%}",
                                                           "percent"), None)


def absolute(amount: float) -> Baseline:
    return Baseline({"cohort": "control"}, None, "", Change(amount, False, f"{amount}s",
                                                           "seconds"), None)


def u_of(x: list[float], y: list[float]) -> float:
    return sum((a > b) + 0.5 * (a == b) for a in x for b in y)


def test_the_rank_test_is_the_exact_permutation_tail_for_small_samples() -> None:
    pooled = X + Y
    observed = u_of(X, Y)
    splits = list(itertools.combinations(range(len(pooled)), len(X)))
    at_least = sum(u_of([pooled[i] for i in s], [pooled[i] for i in range(len(pooled))
                                                 if i not in s]) >= observed for s in splits)
    statistic, p = stats.rank_tail(X, Y, "greater")
    assert statistic == observed
    assert p == pytest.approx(at_least / len(splits), abs=1e-12)


def test_hodges_lehmann_estimate_and_interval_from_the_pairwise_differences() -> None:
    differences = sorted(a - b for a in X for b in Y)
    n, m = len(X), len(Y)
    c = math.floor(n * m / 2 - NormalDist().inv_cdf(0.975) * math.sqrt(n * m * (n + m + 1) / 12))
    estimate, low, high = stats.shift(X, Y, 0.95, ratio=False)
    assert estimate == pytest.approx(statistics.median(differences))
    assert (low, high) == pytest.approx((differences[c - 1], differences[-c]))
    ratios = sorted(a / b for a in X for b in Y)
    assert stats.shift(X, Y, 0.95, ratio=True)[0] == pytest.approx(statistics.median(ratios))


def samples(seed: int, n: int, scale: float = 1.0) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(-1.5, 0.5, n) * scale)


@pytest.mark.parametrize(("canary", "control", "change", "want"), [
    (samples(1, 400, 1.5), samples(2, 400), relative(0.1), Verdict.FAIL),
    (samples(3, 4000), samples(4, 4000), relative(0.1), Verdict.PASS),
    # Exactly the allowed 10 % slower, on few samples: neither side can be shown.
    ([v * 1.1 for v in samples(5, 20)], samples(5, 20), relative(0.1), Verdict.INCONCLUSIVE),
    ([v + 0.2 for v in samples(7, 400)], samples(8, 400), absolute(0.05), Verdict.FAIL),
    (samples(9, 4000), samples(10, 4000), absolute(0.05), Verdict.PASS),
])
def test_rank_test_verdicts(canary: list[float], control: list[float], change: Baseline,
                            want: Verdict) -> None:
    test = rank_test(canary, control, change, EXACT)
    assert test.verdict is want
    assert test.counts == (len(canary), len(control))
    if want is Verdict.INCONCLUSIVE:
        assert test.more == "more samples on both sides would decide"


def observations(values: list[float | None]) -> list[Observation]:
    return [Observation((), v) for v in values]


def test_judge_samples_text_missing_values_and_own_bounds() -> None:
    canary, control = samples(11, 400, 1.5), samples(12, 400)
    failed = judge_samples(observations(list(canary)), observations(list(control)), NONE, NONE,
                           relative(0.1), EXACT, 0.95, unit="seconds")
    assert failed.verdict is Verdict.FAIL
    assert failed.headline.startswith("canary / baseline 1.5")
    assert "breaks max_increase 10%" in failed.headline
    missing = judge_samples(observations([*canary, None]), observations(list(control)), NONE,
                            NONE, relative(0.1), EXACT, 0.95, unit="seconds")
    assert missing.verdict is Verdict.NO_DATA
    empty = judge_samples(observations(list(canary)), [], NONE, NONE, relative(0.1), EXACT,
                          0.95, unit="seconds")
    assert empty.verdict is Verdict.NO_DATA and "baseline" in empty.reason
    own = judge_samples(observations(list(control)), observations(list(control)),
                        Bounds(None, 0.01), NONE, relative(0.1), EXACT, 0.95, unit="seconds")
    assert own.verdict is Verdict.FAIL


def test_false_fails_on_the_bound_stay_below_the_level() -> None:
    runs = 300
    fails = 0
    for seed in range(runs):
        control = samples(1000 + seed, 100)
        canary = samples(5000 + seed, 100, 1.1)  # exactly the allowed 10 % slower
        fails += rank_test(canary, control, relative(0.1), EXACT).verdict is Verdict.FAIL
    assert fails / runs <= 0.05
