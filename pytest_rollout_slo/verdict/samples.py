"""Latency against a baseline by significance: the raw samples of both sides, ranked.

With ``confidence`` on a ``quantile: {q, values}`` objective that has a ``baseline``, the
canary's samples are compared with the baseline's by the Mann-Whitney U test against the
allowed change: ``max_increase: 10%`` allows the canary's durations to lie up to 1.1 times
the baseline's (a change of scale), ``max_increase: 50ms`` up to 50 ms above them (a shift).
The test asks whether the canary, with the allowed change taken off, still tends to lie
above the baseline (a breach: fail) or below it (held: pass); neither is inconclusive. The
Hodges-Lehmann estimate of the change and its interval go with it, as in Kayenta's judge.

It assumes independent samples on each side and a change that moves the whole distribution
(a shift, or a scale for a relative change); a change of shape alone, such as a longer tail
with the same median, can pass it: keep the quantile's own ``max`` for the tail. The
quantile's own bounds are judged on its point value, first, as without confidence.
No pytest, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pytest_rollout_slo.quantity import Unit
from pytest_rollout_slo.spec.model import Baseline, Bounds, Confidence
from pytest_rollout_slo.verdict import stats
from pytest_rollout_slo.verdict.confidence import decide
from pytest_rollout_slo.verdict.gates import observe_quantile
from pytest_rollout_slo.verdict.instant import (
    Evaluation,
    Observation,
    Significance,
    Verdict,
    judge,
    refuse_infinities,
)


def judge_samples(current: Sequence[Observation], baseline: Sequence[Observation],
                  bounds: Bounds, warn: Bounds, spec: Baseline, confidence: Confidence,
                  q: float, *, unit: Unit) -> Evaluation:
    """The canary's quantile against its bounds, then its samples against the baseline's."""
    refuse_infinities((*current, *baseline))
    point, reason = observe_quantile(current, q)
    if not point or point[0].missing:
        # A NULL or NaN duration is often the request that timed out: never left out.
        return Evaluation(Verdict.NO_DATA, bounds, tuple(point),
                          point[0].reason if point else reason, warn)
    if not bounds.empty:
        own = judge(point, bounds, warn=warn)
        if own.verdict in (Verdict.FAIL, Verdict.NO_DATA):
            return own
    before, _ = observe_quantile(baseline, q)
    if not before or before[0].missing:
        why = before[0].reason if before else "the values query returned no values"
        return Evaluation(Verdict.NO_DATA, bounds, tuple(point),
                          f"the baseline ({spec.describe()}) has no data ({why})", warn)
    x = [o.value for o in current if o.value is not None]
    y = [o.value for o in baseline if o.value is not None]
    test = rank_test(x, y, spec, confidence)
    return decide(Evaluation(Verdict.PASS, bounds, tuple(point), warn=warn, tests=(test,),
                             baseline_value=before[0].value), unit)


def rank_test(x: Sequence[float], y: Sequence[float], spec: Baseline,
              confidence: Confidence) -> Significance:
    """The Mann-Whitney test of the canary ``x`` against the baseline ``y``, the allowed
    change taken off ``x``, with the doubled one-sided p-values as for shares."""
    relative = any(c is not None and c.relative for c in (spec.max_increase, spec.max_decrease))
    p_fail, p_pass = 1.0, 0.0
    statistic = 0.0
    for side, change in (("max", spec.max_increase), ("min", spec.max_decrease)):
        if change is None or (side == "min" and change.relative and change.amount >= 1):
            continue
        sign = 1 if side == "max" else -1
        if change.relative:
            shifted = [v / (1 + sign * change.amount) for v in x]
        else:
            shifted = [v - sign * change.amount for v in x]
        statistic, above = stats.rank_tail(shifted, y, "greater")
        _, below = stats.rank_tail(shifted, y, "less")
        breach, hold = (above, below) if side == "max" else (below, above)
        p_fail, p_pass = min(p_fail, 2 * breach), max(p_pass, 2 * hold)
    estimate, low, high = stats.shift(x, y, confidence.level, ratio=relative)
    against = ", ".join(f"{name} {change.text}" for name, change in (
        ("max_increase", spec.max_increase), ("max_decrease", spec.max_decrease))
        if change is not None)
    test = Significance((), "mann-whitney",
                        "hodges-lehmann ratio" if relative else "hodges-lehmann shift",
                        confidence.level, (len(x), len(y)), estimate, low, high, against,
                        statistic, min(p_fail, 1.0), min(p_pass, 1.0))
    if test.verdict is Verdict.INCONCLUSIVE:
        # No count to promise: how many more samples decide depends on their spread.
        test = replace(test, more="more samples on both sides would decide")
    return test


__all__ = ["judge_samples", "rank_test"]
