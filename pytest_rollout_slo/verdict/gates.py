"""Verdicts of gates beyond one value at one instant: quantiles, sustained objectives,
baselines and error-budget burn rates.

Pure functions like :mod:`pytest_rollout_slo.verdict.instant`, on the same observations: no pytest,
no I/O, no clock. Each returns an :class:`Evaluation` whose ``headline`` and ``details`` say
what was measured, so the failure text explains the verdict without the spec at hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from pytest_rollout_slo.backends.base import Labels
from pytest_rollout_slo.quantity import Unit, format_value
from pytest_rollout_slo.spec.model import NO_BOUNDS, Baseline, Bounds, BurnRate, Sustained
from pytest_rollout_slo.verdict.instant import (
    AmbiguousAnswer,
    Evaluation,
    Observation,
    Verdict,
    judge,
    refuse_infinities,
    violation,
)

_WORST_SHOWN = 5


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between closest ranks.

    This is Hyndman and Fan's type 7 (the default of R and NumPy, and
    ``statistics.quantiles(method="inclusive")``): with the values sorted, position
    ``h = (n - 1) * q`` and the result ``x[floor(h)] + (h - floor(h)) * (x[ceil(h)] -
    x[floor(h)])``. It never extrapolates beyond the smallest or largest value.
    """
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def observe_quantile(observations: Sequence[Observation], q: float
                     ) -> tuple[list[Observation], str]:
    """One observation: the quantile of every value returned, labels ignored.

    A missing value (NULL, NaN) makes the whole quantile no data: a NULL duration is often
    the request that timed out, and leaving it out would flatter the quantile.
    """
    missing = sum(1 for o in observations if o.missing)
    if missing:
        return [Observation((), None, f"{missing} of {len(observations)} values are missing "
                                      "(NULL or NaN)")], ""
    values = [o.value for o in observations if o.value is not None]
    if not values:
        return [], "the values query returned no values"
    return [Observation((), quantile(values, q), f"q{q:g} of {len(values)} values")], ""


def judge_sustained(points: Sequence[tuple[float, Sequence[Observation]]], bounds: Bounds,
                    warn: Bounds, sustained: Sustained, *, missing_counts: bool, unit: Unit,
                    format_time: Callable[[float], str]) -> Evaluation:
    """Fail when a series has more than ``max_violations`` points outside the bounds.

    ``points`` holds the observations at each step time. A point with no data counts as a
    violation when ``missing_counts`` (``on_no_data: fail``); otherwise it is left out.
    When no point at all has data, the verdict is no data.
    """
    per_series: dict[Labels, list[tuple[float, Observation]]] = {}
    for _, observed in points:
        refuse_infinities(observed)
    for at, observations in points:
        for observation in observations:
            per_series.setdefault(observation.labels, []).append((at, observation))
    total = len(points)
    period = f"over {sustained.over_text} (step {sustained.step_text})"
    if all(o.missing for series in per_series.values() for _, o in series):
        return Evaluation(Verdict.NO_DATA, bounds, (), f"no data at any of the {total} points "
                          f"{period}", warn, value_text="no data")
    worst: list[tuple[float, float, Labels, float]] = []  # (distance, time, labels, value)
    failing: list[tuple[Labels, int]] = []
    warned = 0
    missing = 0
    for labels, series in per_series.items():
        # A step where this series is absent has no data for it, like a NaN at that step.
        absent = total - len({at for at, _ in series})
        gaps = absent + sum(1 for _, o in series if o.missing)
        missing += gaps
        count = gaps if missing_counts else 0
        for at, observation in series:
            if observation.missing or observation.value is None:
                continue
            value = observation.value
            broken = violation(value, bounds)
            if broken:
                count += 1
                limit = bounds.min if broken == "min" else bounds.max
                assert limit is not None
                worst.append((abs(value - limit), at, labels, value))
            elif violation(value, warn):
                warned += 1
        if count > sustained.max_violations:
            failing.append((labels, count))
    worst.sort(key=lambda item: (-item[0], item[1]))
    details = [f"  {format_time(at)}{_labels(labels)}: {format_value(value, unit)}"
               for _, at, labels, value in worst[:_WORST_SHOWN]]
    if missing:
        treated = ("counted as violations (on_no_data: fail)" if missing_counts
                   else "left out (on_no_data is not fail)")
        details.append(f"  no data at {missing} point(s), {treated}")
    outside = len(worst) + (missing if missing_counts else 0)
    checked = total * max(1, len(per_series))  # every series is checked at every step
    value_text = f"{outside} of {checked} points outside"
    bound_text = bounds.text(unit)
    if failing:
        labels, count = max(failing, key=lambda item: item[1])
        headline = (f"{count} of {total} points{_labels(labels)} outside {bound_text} {period}; "
                    f"at most {sustained.max_violations} allowed")
        return Evaluation(Verdict.FAIL, bounds, (), "", warn, headline,
                          ("  worst points:", *details) if worst else tuple(details), value_text)
    verdict = Verdict.WARN if warned else Verdict.PASS
    headline = (f"{outside} of {total} points outside {bound_text} {period}; "
                f"at most {sustained.max_violations} allowed")
    if warned:
        headline += f"; {warned} point(s) outside the warning level {warn.text(unit)}"
    return Evaluation(verdict, bounds, (), "", warn, headline, tuple(details), value_text)


def judge_baseline(current: Sequence[Observation], baseline: Sequence[Observation],
                   bounds: Bounds, warn: Bounds, spec: Baseline, *, unit: Unit,
                   ignore_labels: Sequence[str] = ()) -> Evaluation:
    """The current value against its own bounds and against the baseline's value.

    Series are paired like a ratio's: one on each side whatever their labels, otherwise by
    identical labels leaving out ``ignore_labels`` (the labels the baseline's variables
    change, such as ``cohort``). A baseline with no data is no data, never a pass.
    """
    if not bounds.empty:
        own = judge(current, bounds, warn=warn)
        if own.verdict in (Verdict.FAIL, Verdict.NO_DATA):
            return own
    elif not current:
        return Evaluation(Verdict.NO_DATA, bounds, (), "no series returned", warn)
    pairs = pair_baseline(current, baseline, ignore_labels)
    described = spec.describe()
    details: list[str] = []
    failed: list[str] = []
    missing: list[str] = []
    for labels, now, before in pairs:
        tag = _labels(labels)
        if now is None or now.missing:
            missing.append(f"no current value{tag}" + (f" ({now.reason})" if now else ""))
            continue
        if before is None or before.missing:
            reason = f" ({before.reason})" if before is not None and before.reason else ""
            missing.append(f"the baseline ({described}) has no data{tag}{reason}")
            continue
        assert now.value is not None and before.value is not None
        change = _change_text(now.value, before.value, unit)
        details.append(f"  {tag.strip() or 'value'}: {format_value(now.value, unit)} against "
                       f"baseline {format_value(before.value, unit)} ({described}): {change}")
        broken = _broken_change(now.value, before.value, spec)
        if broken:
            failed.append(f"{format_value(now.value, unit)}{tag} is {change} against the baseline "
                          f"{format_value(before.value, unit)} ({described}); {broken}")
    observations = tuple(now for _, now, _ in pairs if now is not None)
    value_text = change = ""
    before_value: float | None = None
    if len(pairs) == 1 and pairs[0][1] is not None and pairs[0][2] is not None:
        now_value, before_value = pairs[0][1].value, pairs[0][2].value
        value_text = (f"{format_value(now_value, unit)} vs baseline "
                      f"{format_value(before_value, unit)}")
        if (now_value is not None and before_value is not None
                and not math.isnan(now_value) and not math.isnan(before_value)):
            change = _change_text(now_value, before_value, unit)
    if failed:
        return Evaluation(Verdict.FAIL, bounds, observations, "", warn, failed[0],
                          tuple(details), value_text or f"{len(failed)} change(s) too large",
                          change, before_value)
    if missing:
        return Evaluation(Verdict.NO_DATA, bounds, observations, "; ".join(missing), warn,
                          details=tuple(details))
    own_warn = not warn.empty and judge(current, bounds, warn=warn).verdict is Verdict.WARN
    verdict = Verdict.WARN if own_warn else Verdict.PASS
    return Evaluation(verdict, bounds, observations, "", warn, "", tuple(details), value_text,
                      change, before_value)


def judge_burn_rate(windows: Mapping[tuple[int, str], Sequence[Observation]], burn: BurnRate,
                    ) -> Evaluation:
    """Fail when, for any alert, the burn rate over both its windows exceeds its factor.

    Burn rate = error ratio / (1 - target); ``windows`` maps ``(alert index, "long" |
    "short")`` to the error-ratio observations over that window (SRE workbook, multi-window
    multi-burn-rate alerts). A window with no data makes the alert unknown: no data, unless
    another alert fires.
    """
    details: list[str] = []
    fired: list[str] = []
    unknown: list[str] = []
    for index, alert in enumerate(burn.alerts):
        rates: dict[str, dict[Labels, float | None]] = {}
        # One series on each side pair whatever their labels; otherwise by labels, so that
        # a burning series is never lost for want of a partner (it then reads no data).
        single = all(len(windows[(index, side)]) == 1 for side in ("long", "short"))
        for side in ("long", "short"):
            observations = windows[(index, side)]
            rates[side] = {(() if single else o.labels): (
                None if o.missing or o.value is None else o.value / burn.budget)
                for o in observations}
        labels = list(dict.fromkeys([*rates["long"], *rates["short"]])) or [()]
        for label in labels:
            long, short = rates["long"].get(label), rates["short"].get(label)
            name = (f"alert {index + 1} (factor {alert.factor:g}: {alert.long_text} and "
                    f"{alert.short_text}){_labels(label)}")
            details.append(f"  {name}: burn rate {_rate(long)} over {alert.long_text}, "
                           f"{_rate(short)} over {alert.short_text}")
            if long is not None and short is not None:
                if long > alert.factor and short > alert.factor:
                    fired.append(f"{name}: burn rate {_rate(long)} over {alert.long_text} and "
                                 f"{_rate(short)} over {alert.short_text} both exceed "
                                 f"{alert.factor:g}")
            else:
                unknown.append(f"{name}: no data over "
                               f"{alert.long_text if long is None else alert.short_text}")
    budget = f"  error budget {format_value(burn.budget, 'percent')} (target " \
             f"{format_value(burn.target, 'percent')})"
    if fired:
        return Evaluation(Verdict.FAIL, NO_BOUNDS, (), "", NO_BOUNDS, fired[0],
                          (budget, *details), f"{len(fired)} alert(s) firing")
    if unknown:
        return Evaluation(Verdict.NO_DATA, NO_BOUNDS, (), "; ".join(unknown), NO_BOUNDS,
                          details=(budget, *details), value_text="no data")
    return Evaluation(Verdict.PASS, NO_BOUNDS, (), "", NO_BOUNDS,
                      f"no alert fires ({len(burn.alerts)} checked)", (budget, *details),
                      "no alert firing")


def pair_baseline(current: Sequence[Observation], baseline: Sequence[Observation],
                  ignore: Sequence[str]
                  ) -> list[tuple[Labels, Observation | None, Observation | None]]:
    """Current and baseline series paired: one on each side whatever their labels, otherwise
    by identical labels leaving out ``ignore``; raises AmbiguousAnswer on a duplicate."""
    if len(current) == 1 and len(baseline) <= 1:
        return [(current[0].labels, current[0], baseline[0] if baseline else None)]

    def key(o: Observation) -> Labels:
        return tuple((k, v) for k, v in o.labels if k not in ignore and k != "__name__")

    before: dict[Labels, Observation] = {}
    for observation in baseline:
        if key(observation) in before:
            # Comparing with either one could hide the other: refuse, never guess.
            raise AmbiguousAnswer(
                "the baseline returned several series with the labels "
                f"{_labels(key(observation)).strip() or '(no labels)'}, so they cannot be "
                "paired with the current series; aggregate them (sum by (...))")
        before[key(observation)] = observation
    return [(o.labels, o, before.get(key(o))) for o in current]


def _broken_change(now: float, before: float, spec: Baseline) -> str:
    for change, sign, word in ((spec.max_increase, 1, "increase"),
                               (spec.max_decrease, -1, "decrease")):
        if change is None:
            continue
        delta = (now - before) * sign
        if delta <= 0:
            continue
        if change.relative:
            too_big = before == 0 or delta / abs(before) > change.amount
        else:
            too_big = delta > change.amount
        if too_big:
            return f"max_{word} is {change.text}"
    return ""


def _change_text(now: float, before: float, unit: Unit) -> str:
    delta = now - before
    word = "up" if delta > 0 else "down" if delta < 0 else "unchanged"
    if word == "unchanged":
        return word
    absolute = format_value(abs(delta), unit if unit != "percent" else "number")
    if unit == "percent":
        absolute = f"{abs(delta) * 100:.2f} points"
    relative = f"{abs(delta) / abs(before) * 100:.1f}%" if before else "from 0"
    return f"{word} {relative} ({absolute})"


def _labels(labels: Labels) -> str:
    return (" {" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}") if labels else ""


def _rate(rate: float | None) -> str:
    return "no data" if rate is None else f"{rate:.2f}x"


__all__ = ["judge_baseline", "judge_burn_rate", "judge_sustained", "observe_quantile",
           "pair_baseline", "quantile"]
