"""The statistics the confidence gates use, as a narrow typed face over SciPy.

SciPy is an extra (``pytest-rollout-slo[stats]``) and costs about 0.3 s to import, so it is
imported here, lazily, only when an objective with ``confidence`` is judged; the spec loader
refuses ``confidence`` without SciPy installed, naming the extra. SciPy ships no complete
type stubs: every value it returns is turned into a plain ``float`` at this boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pytest_rollout_slo.spec.model import METHODS, Method

Adjustment = Literal["holm", "bh", "none"]
ADJUSTMENTS: tuple[Adjustment, ...] = ("holm", "bh", "none")
ADJUSTMENT_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}

_SCIPY_METHOD = {"clopper-pearson": "exact", "wilson": "wilson"}


def _stats() -> Any:
    import scipy.stats  # type: ignore[import-untyped]

    return scipy.stats


def interval(k: int, n: int, level: float, method: Method) -> tuple[float, float]:
    """The two-sided ``level`` confidence interval of a proportion ``k`` of ``n`` (n >= 1)."""
    ci = _stats().binomtest(k, n).proportion_ci(confidence_level=level,
                                                method=_SCIPY_METHOD[method])
    return float(ci.low), float(ci.high)


def tail(k: int, n: int, p: float, alternative: Literal["greater", "less"],
         method: Method) -> float:
    """The one-sided p-value of ``k`` of ``n`` against the share ``p``, from the test the
    interval of ``method`` inverts, so that a p-value below ``(1 - level) / 2`` says the same
    as an interval that excludes ``p``: the exact binomial tail (``P(X >= k)`` for
    ``greater``, ``P(X <= k)`` for ``less``) for Clopper-Pearson, the score test's normal tail
    for Wilson."""
    if n == 0:
        return 1.0
    if p <= 0.0:
        return 1.0 if alternative == "less" or k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if alternative == "greater" or k == n else 0.0
    stats = _stats()
    if method == "wilson":
        z = (k / n - p) / math.sqrt(p * (1 - p) / n)
        return float(stats.norm.sf(z) if alternative == "greater" else stats.norm.cdf(z))
    return float(stats.binomtest(k, n, p, alternative=alternative).pvalue)


def adjust(p_values: Sequence[float], adjustment: Adjustment) -> list[float]:
    """The p-values adjusted for a family of tests: Holm's step-down (controls the chance of
    any false claim) or Benjamini-Hochberg's (controls the expected share of false claims).

    Holm is hand-written: SciPy has no Holm, and statsmodels (which has) is a large dependency
    for these lines. Benjamini-Hochberg is ``scipy.stats.false_discovery_control``.
    """
    if adjustment == "none" or len(p_values) < 2:
        return list(p_values)
    if adjustment == "bh":
        return [float(p) for p in _stats().false_discovery_control(list(p_values), method="bh")]
    count = len(p_values)
    order = sorted(range(count), key=lambda i: p_values[i])
    adjusted = [0.0] * count
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


__all__ = ["ADJUSTMENTS", "ADJUSTMENT_NAMES", "METHODS", "Adjustment", "Method", "adjust",
           "interval", "tail"]
