"""Ratios judged by the evidence in their counts: ``confidence: 95%``.

A ratio's numerator and denominator are read as counts, ``k`` events of ``n``. Each series
gets a two-sided confidence interval on its share (Clopper-Pearson by default, Wilson when
asked): the objective passes when every interval lies within the bounds, fails when one lies
wholly outside, and is *inconclusive* otherwise; the text then says how much more traffic at
the same rate would decide. Against a baseline, the canary's rate is compared with the
control's by the ratio of the two rates (see :func:`_rate_ratio`).

Each test is a pair of one-sided p-values at the bound: ``p_fail`` (the evidence of a
breach) and ``p_pass`` (the evidence of holding), each doubled so that ``p < 1 - level`` says
what the two-sided interval says. When several tests of a run use confidence, the run's
``p_fail`` values are adjusted as one family (:mod:`pytest_rollout_slo.session`): only a
breach is a claim that needs it; a stage passes only when every test passes, and a false pass
then needs the breaching test itself to pass, at its own level whatever the family's size.
No pytest, no I/O; SciPy through :mod:`pytest_rollout_slo.verdict.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from pytest_rollout_slo.backends.base import Labels, Sample
from pytest_rollout_slo.quantity import Unit, format_value
from pytest_rollout_slo.spec.model import Baseline, Bounds, Confidence
from pytest_rollout_slo.verdict import stats
from pytest_rollout_slo.verdict.instant import (
    Evaluation,
    Observation,
    Significance,
    UnjudgeableAnswer,
    Verdict,
    refuse_infinities,
    violation,
)

MORE_CAP = 1000
"""How many times its traffic the "more requests" search tries before saying "more than"."""


MAX_COUNT = 2 ** 53
"""The largest count confidence judges: beyond it a float holds no whole number of events
(and SciPy's binomial routines take 64-bit integers only)."""


def counts(observation: Observation) -> tuple[int, int] | None:
    """A ratio's parts as whole counts, or None when it has no value.

    Prometheus' ``increase()`` extrapolates to the window's edges, so counts come back as
    99.7 or 3.02: they are rounded to the nearest whole number. A numerator above its
    denominator is no share of events: an error, never a verdict.
    """
    if observation.missing or observation.parts is None:
        return None
    numerator, denominator = observation.parts
    if numerator is None or denominator is None:
        return None
    if max(numerator, denominator) > MAX_COUNT:
        raise UnjudgeableAnswer(
            f"the ratio's parts {numerator:g} and {denominator:g}{_where(observation.labels)} "
            f"are beyond {MAX_COUNT:.3g} events, where counts stop being whole numbers; "
            "confidence reads them as counts of events")
    k, n = round(numerator), round(denominator)
    if n == 0 and k == 0:
        return None
    if k > n:
        raise UnjudgeableAnswer(
            f"the ratio's numerator {numerator:g} exceeds its denominator {denominator:g}"
            f"{_where(observation.labels)}; confidence reads them as k events out of n, so the "
            "numerator must count a subset of what the denominator counts")
    return k, n


def _sides(bounds: Bounds) -> list[tuple[str, float]]:
    """The bounds a share can break: a ``min`` of 0 or a ``max`` of 100 % holds always."""
    sides = []
    if bounds.max is not None and bounds.max < 1:
        sides.append(("max", bounds.max))
    if bounds.min is not None and bounds.min > 0:
        sides.append(("min", bounds.min))
    return sides


def _p_values(k: int, n: int, sides: Sequence[tuple[str, float]],
              method: stats.Method) -> tuple[float, float]:
    """``(p_fail, p_pass)``: the strongest evidence of any breach, the weakest of holding."""
    p_fail, p_pass = 1.0, 0.0
    for side, limit in sides:
        above, below = (stats.tail(k, n, limit, "greater", method),
                        stats.tail(k, n, limit, "less", method))
        breach, hold = (above, below) if side == "max" else (below, above)
        p_fail = min(p_fail, 2 * breach)
        p_pass = max(p_pass, 2 * hold)
    return min(p_fail, 1.0), min(p_pass, 1.0)


def share_p_values(k: int, n: int, bounds: Bounds, confidence: Confidence
                   ) -> tuple[float, float]:
    """``(p_fail, p_pass)`` of ``k`` events of ``n`` against ``bounds``."""
    sides = _sides(bounds)
    return _p_values(k, n, sides, confidence.method) if sides else (1.0, 0.0)


def _decided(k: int, n: int, sides: Sequence[tuple[str, float]], confidence: Confidence) -> bool:
    p_fail, p_pass = _p_values(k, n, sides, confidence.method)
    return min(p_fail, p_pass) < 1 - confidence.level


def more_needed(k: int, n: int, sides: Sequence[tuple[str, float]],
                confidence: Confidence) -> tuple[int, bool]:
    """How many more trials at the rate ``k / n`` decide, and whether that is exact or only
    a floor ("more than"): doubling, then halving the gap, up to :data:`MORE_CAP` times ``n``.

    The verdict is not quite monotone in ``n`` (the counts are rounded), so the number found
    is "about"; it is taken before any family adjustment.
    """
    rate = k / n if n else 0.0
    start = max(n, 1)
    cap = start * MORE_CAP

    def decides(total: int) -> bool:
        return _decided(round(rate * total), total, sides, confidence)

    low, high = start, start * 2
    while not decides(high):
        if high >= cap:
            return cap - n, False
        low, high = high, min(high * 2, cap)
    while high - low > max(1, high // 100):  # about: to 1 %
        middle = (low + high) // 2
        low, high = (low, middle) if decides(middle) else (middle, high)
    return high - n, True


def more_text(extra: int, exact: bool, noun: str) -> str:
    if not exact:
        return (f"more than {extra:,} more {noun} would be needed at the current rate, which "
                "lies at or near the bound")
    return f"about {_round_number(extra):,} more {noun} would decide"


def _round_number(value: int) -> int:
    """Two significant digits: the search is about, the text should not pretend otherwise."""
    if value < 100:
        return value
    digits = int(math.log10(value)) - 1
    return int(round(value, -digits))


def share_test(observation: Observation, bounds: Bounds, confidence: Confidence,
               unit: Unit) -> Significance | None:
    """The binomial test of one series' share against the bounds; None without a value."""
    parts = counts(observation)
    if parts is None:
        return None
    k, n = parts
    sides = _sides(bounds)
    low, high = stats.interval(k, n, confidence.level, confidence.method)
    p_fail, p_pass = share_p_values(k, n, bounds, confidence)
    test = Significance(observation.labels, "binomial", confidence.method, confidence.level,
                        (k, n), k / n, low, high, bounds.text(unit), k, p_fail, p_pass)
    if test.verdict is Verdict.INCONCLUSIVE:
        extra, exact = more_needed(k, n, sides, confidence)
        test = replace(test, more=more_text(extra, exact, "requests"))
    return test


def _rate_ratio(now: Observation, before: Observation, baseline: Baseline,
                confidence: Confidence) -> Significance | None:
    """The canary's rate against the control's, by the ratio of the rates.

    Given the events of both sides, ``K = k1 + k0``, the canary's share of them is binomial
    with ``pi = n1 R / (n1 R + n0)`` when events are rare and independent (the conditional
    test of two Poisson rates): ``R = 1 + max_increase`` is the largest allowed ratio, so
    ``max_increase`` is a ``max`` on ``pi`` and ``max_decrease`` a ``min``. The interval of
    ``pi`` gives the interval of ``R``.
    """
    current, control = counts(now), counts(before)
    if current is None or control is None:
        return None
    (k1, n1), (k0, n0) = current, control
    if n1 == 0 or n0 == 0:
        return None

    def share(ratio: float) -> float:
        return n1 * ratio / (n1 * ratio + n0)

    def ratio_of(pi: float) -> float:
        return math.inf if pi >= 1 else pi / (1 - pi) * n0 / n1

    limits = []
    if baseline.max_increase is not None:
        limits.append(("max", share(1 + baseline.max_increase.amount)))
    if baseline.max_decrease is not None and baseline.max_decrease.amount < 1:
        limits.append(("min", share(1 - baseline.max_decrease.amount)))
    against = ", ".join(f"{name} {change.text}" for name, change in (
        ("max_increase", baseline.max_increase), ("max_decrease", baseline.max_decrease))
        if change is not None)
    total = k1 + k0
    rate = (k1 / n1) / (k0 / n0) if k0 else (math.inf if k1 else 1.0)
    if total == 0:
        # No event on either side: nothing tells the rates apart yet.
        low, high, p_fail, p_pass = 0.0, math.inf, 1.0, 1.0
    else:
        pi_low, pi_high = stats.interval(k1, total, confidence.level, confidence.method)
        low, high = ratio_of(pi_low), ratio_of(pi_high)
        p_fail, p_pass = _p_values(k1, total, limits, confidence.method)
    test = Significance(now.labels, "rate ratio", confidence.method, confidence.level,
                        (k1, n1, k0, n0), rate, low, high, against, k1, p_fail, p_pass)
    if test.verdict is Verdict.INCONCLUSIVE:
        if total == 0:
            more = "no event on either side yet, so more traffic would decide"
        else:
            # More traffic on both sides at the same rates: the events grow in proportion,
            # and the canary keeps its share of them.
            extra, exact = more_needed(k1, total, limits, confidence)
            more = more_text(round(n1 * extra / total), exact,
                              "canary requests (and control requests in proportion)")
        test = replace(test, more=more)
    return test


# -- verdicts ---------------------------------------------------------------------------------


def judge_shares(observations: Sequence[Observation], bounds: Bounds, warn: Bounds,
                 confidence: Confidence, *, unit: Unit,
                 empty_reason: str = "no series returned") -> Evaluation:
    """Every series' share judged by its interval against ``bounds``."""
    items = tuple(observations)
    refuse_infinities(items)
    if not items:
        return Evaluation(Verdict.NO_DATA, bounds, items, empty_reason, warn)
    tests = [share_test(o, bounds, confidence, unit) for o in items]
    # A denominator that rounds to no request (0.4 from increase()) has nothing to judge.
    empty = "; ".join(dict.fromkeys(
        f"denominator {o.parts[1]:g} rounds to 0 requests{_where(o.labels)}"
        for o, t in zip(items, tests, strict=True)
        if t is None and not o.missing and o.parts is not None and o.parts[1] is not None))
    return decide(Evaluation(Verdict.PASS, bounds, items, empty, warn,
                             tests=tuple(t for t in tests if t is not None)), unit)


def judge_baseline_counts(current: Sequence[Observation], baseline: Sequence[Observation],
                          pairs: Sequence[tuple[Labels, Observation | None, Observation | None]],
                          bounds: Bounds, warn: Bounds, spec: Baseline,
                          confidence: Confidence, *, unit: Unit) -> Evaluation:
    """The canary's own bounds and its change against the baseline, both by significance."""
    refuse_infinities((*current, *baseline))
    tests = [t for o in current if (t := share_test(o, bounds, confidence, unit)) is not None
             ] if not bounds.empty else []
    missing: list[str] = []
    described = spec.describe()
    for labels, now, before in pairs:
        test = _rate_ratio(now, before, spec, confidence) if now and before else None
        if test is not None:
            tests.append(test)
        elif now is None or now.missing:
            missing.append(f"no current value{_where(labels)}"
                           + (f" ({now.reason})" if now else ""))
        else:
            reason = f" ({before.reason})" if before is not None and before.reason else ""
            missing.append(f"the baseline ({described}) has no data{_where(labels)}{reason}")
    observations = tuple(now for _, now, _ in pairs if now is not None) or tuple(current)
    evaluation = Evaluation(Verdict.PASS, bounds, observations, "; ".join(missing), warn,
                            tests=tuple(tests))
    return decide(evaluation, unit)


def decide(evaluation: Evaluation, unit: Unit) -> Evaluation:
    """The verdict of ``evaluation``'s tests (adjusted or not), with its headline and lines.

    Any failing test fails; else a value missing is no data; else an undecided test is
    inconclusive; else a value beyond its warning level warns; else the objective passes.
    """
    tests = evaluation.tests
    details = tuple(_detail(t, unit) for t in tests)
    failing = [t for t in tests if t.verdict is Verdict.FAIL]
    missing = evaluation.reason or "; ".join(
        dict.fromkeys(o.reason or "no value" for o in evaluation.observations if o.missing))
    undecided = [t for t in tests if t.verdict is Verdict.INCONCLUSIVE]
    single = len(tests) == 1
    if not tests and not missing:
        return replace(evaluation, verdict=Verdict.NO_DATA, reason="no series returned")
    if failing:
        verdict, headline = Verdict.FAIL, _claim(failing[0], unit, "breaks")
    elif missing:
        return replace(evaluation, verdict=Verdict.NO_DATA, reason=missing, details=details,
                       headline="")
    elif undecided:
        first = undecided[0]
        headline = f"{_estimate(first, unit)} cannot be told from {first.against}; {first.more}"
        if first.adjusted is not None and first.p_fail < 1 - first.level:
            headline += (f" (p = {first.p_fail:.3g} for a breach, {first.adjusted:.3g} after "
                         f"the {evaluation.adjustment} adjustment)")
        if not single:
            headline = f"{len(undecided)} of {len(tests)} tests undecided: " + headline
        verdict = Verdict.INCONCLUSIVE
    else:
        warned = any(o.value is not None and not o.missing and violation(o.value, evaluation.warn)
                     for o in evaluation.observations)
        verdict = Verdict.WARN if warned else Verdict.PASS
        headline = (_claim(tests[0], unit, "holds") if single
                    else f"all {len(tests)} tests hold at {tests[0].level * 100:g}% confidence")
        if warned:
            headline += f"; outside the warning level {evaluation.warn.text(unit)}"
    value_text = _estimate(tests[0], unit) if single else ""
    return replace(evaluation, verdict=verdict, headline=headline, details=details,
                   value_text=value_text, reason="")


def _claim(test: Significance, unit: Unit, word: str) -> str:
    p = test.p_fail if word == "breaks" else test.p_pass
    text = f"{_estimate(test, unit)} {word} {test.against} (p = {p:.3g}"
    if word == "breaks" and test.adjusted is not None:
        text += f", adjusted {test.adjusted:.3g}"
    return text + ")"


def _estimate(test: Significance, unit: Unit) -> str:
    level = f"{test.level * 100:g}%"
    if test.test == "histogram buckets":
        return (f"{format_value(test.estimate, unit)} (interpolated; {level} CI between bucket "
                f"bounds {format_value(test.low, unit)} to {format_value(test.high, unit)})")
    if test.test == "histogram quantiles":
        c_low, c_high, k_low, k_high = test.buckets
        half = f"{(1 - (1 - test.level) / 2) * 100:g}%"
        change = (f"canary / baseline {_ratio(test.estimate)}" if test.method.endswith("ratio")
                  else f"canary - baseline {_signed(test.estimate, unit)}")
        canary, control = (f"{format_value(low, unit)} to {format_value(high, unit)}"
                           for low, high in ((c_low, c_high), (k_low, k_high)))
        return (f"{change} (canary in {canary}, baseline in {control}, {half} each, {level} "
                "together)")
    if test.test == "mann-whitney":
        if test.method.endswith("ratio"):
            return (f"canary / baseline {_ratio(test.estimate)} (Hodges-Lehmann, {level} CI "
                    f"{_ratio(test.low)} to {_ratio(test.high)})")
        return (f"canary - baseline {_signed(test.estimate, unit)} (Hodges-Lehmann, {level} CI "
                f"{_signed(test.low, unit)} to {_signed(test.high, unit)})")
    if test.test == "rate ratio":
        return (f"rate ratio {_ratio(test.estimate)} (canary against baseline, {level} CI "
                f"{_ratio(test.low)} to {_ratio(test.high)})")
    shown: Unit = unit if unit != "number" else "percent"
    return (f"{format_value(test.estimate, shown)} ({level} CI {format_value(test.low, shown)} "
            f"to {format_value(test.high, shown)})")


def _detail(test: Significance, unit: Unit) -> str:
    where = _where(test.labels).strip() or "value"
    if test.test == "rate ratio":
        k1, n1, k0, n0 = test.counts
        counted = f"canary {k1:,} of {n1:,}, baseline {k0:,} of {n0:,}"
    elif test.test == "histogram buckets":
        counted = ", ".join(f"{k:,} at most {format_value(b, unit)}"
                            for b, k in zip(test.buckets, test.counts, strict=False))
        counted = f"{counted} of {test.counts[-1]:,} requests" if counted else (
            f"{test.counts[-1]:,} requests")
    elif test.test == "histogram quantiles":
        counted = f"{test.counts[0]:,} canary and {test.counts[1]:,} baseline requests"
    elif test.test == "mann-whitney":
        counted = (f"{test.counts[0]:,} canary and {test.counts[1]:,} baseline samples, "
                   f"U = {test.statistic:g}")
    else:
        counted = f"{test.counts[0]:,} of {test.counts[1]:,}"
    line = (f"  {where}: {counted}: {_estimate(test, unit)}, {test.method}; against "
            f"{test.against}: p = {test.p_fail:.3g} for a breach")
    if test.adjusted is not None:
        line += f" ({test.adjusted:.3g} adjusted)"
    return line + f", p = {test.p_pass:.3g} for holding: {test.verdict.value}"


def _signed(value: float, unit: Unit) -> str:
    return ("+" if value > 0 else "-" if value < 0 else "") + format_value(abs(value), unit)


def _ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.2f}x"


def _where(labels: Labels) -> str:
    shown = Sample(labels, None).label_text()
    return f" for {shown}" if shown else ""


def adjust_family(evaluations: Sequence[Evaluation], adjustment: stats.Adjustment,
                  unit_of: Sequence[Unit]) -> list[Evaluation]:
    """The evaluations with every test's breach p-value adjusted over all of them."""
    flat = [t.p_fail for e in evaluations for t in e.tests]
    if len(flat) < 2:
        return list(evaluations)  # one test is its own family
    adjusted = iter(stats.adjust(flat, adjustment) if adjustment != "none" else [None] * len(flat))
    name = stats.ADJUSTMENT_NAMES[adjustment]
    result = []
    for evaluation, unit in zip(evaluations, unit_of, strict=True):
        if not evaluation.tests:
            result.append(evaluation)
            continue
        tests = tuple(replace(t, adjusted=next(adjusted)) for t in evaluation.tests)
        result.append(decide(replace(evaluation, tests=tests, adjustment=name,
                                     family=len(flat)), unit))
    return result


def family_text(adjustment: str, family: int) -> str:
    """``Holm adjustment over 12 tests``, ``no adjustment over 3 tests``."""
    return f"{adjustment} adjustment over {family} tests"


__all__ = ["MAX_COUNT", "MORE_CAP", "adjust_family", "counts", "decide", "family_text",
           "judge_baseline_counts", "judge_shares", "more_needed", "more_text", "share_p_values",
           "share_test"]
