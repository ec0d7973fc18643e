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
    import scipy.stats

    return scipy.stats


def interval(k: int, n: int, level: float, method: Method) -> tuple[float, float]:
    """The two-sided ``level`` confidence interval of a proportion ``k`` of ``n`` (n >= 1)."""
    ci = _stats().binomtest(k, n).proportion_ci(confidence_level=level,
                                                method=_SCIPY_METHOD[method])
    return float(ci.low), float(ci.high)


def two_sided(k: int, n: int, p: float) -> float:
    """The exact two-sided binomial p-value of ``k`` of ``n`` under the share ``p``
    (``scipy.stats.binomtest``: the outcomes no likelier than ``k``)."""
    return float(_stats().binomtest(k, n, p, alternative="two-sided").pvalue)


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


def rank_tail(x: Sequence[float], y: Sequence[float],
              alternative: Literal["greater", "less"]) -> tuple[float, float]:
    """Mann-Whitney U of ``x`` against ``y``: ``(U of x, one-sided p-value)``; ``greater``:
    whether ``x`` tends to be larger. Exact for small samples without ties, else the normal
    approximation with the tie correction (SciPy's ``method="auto"``)."""
    result = _stats().mannwhitneyu(list(x), list(y), alternative=alternative)
    return float(result.statistic), float(result.pvalue)


MAX_PAIRS = 4_000_000
"""The pairwise differences the Hodges-Lehmann estimate sorts, at most (see :func:`shift`)."""


def shift(x: Sequence[float], y: Sequence[float], level: float, *, ratio: bool
          ) -> tuple[float, float, float]:
    """The Hodges-Lehmann estimate of how much ``x`` lies above ``y`` (the median of every
    pairwise difference, or of every ratio with ``ratio``) and its distribution-free interval:
    the order statistics of those differences that the Mann-Whitney test would not reject,
    by its normal approximation (Hollander and Wolfe, "Nonparametric Statistical Methods").

    Samples whose pairs exceed :data:`MAX_PAIRS` are thinned to evenly spaced order
    statistics for the estimate and its interval (the test itself uses every value).
    """
    import numpy as np  # a dependency of SciPy; lazily, as SciPy is

    a, b = np.sort(np.asarray(x, dtype=float)), np.sort(np.asarray(y, dtype=float))
    while a.size * b.size > MAX_PAIRS:
        a, b = (a[::2], b) if a.size >= b.size else (a, b[::2])
    if ratio:
        b = b[b > 0]  # a ratio to a zero duration says nothing
        if b.size == 0:
            return math.nan, math.nan, math.nan
        pairs = (a[:, None] / b[None, :]).ravel()
    else:
        pairs = (a[:, None] - b[None, :]).ravel()
    pairs.sort()
    count = pairs.size
    z = float(_stats().norm.ppf(1 - (1 - level) / 2))
    n, m = a.size, b.size
    # The c-th smallest and the c-th largest difference (1-based); too few samples for any
    # order statistic to be excluded give the whole range.
    c = min(max(math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12)), 1), count)
    return float(np.median(pairs)), float(pairs[c - 1]), float(pairs[count - c])


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


__all__ = ["ADJUSTMENTS", "ADJUSTMENT_NAMES", "MAX_PAIRS", "METHODS", "Adjustment", "Method",
           "adjust", "interval", "rank_tail", "shift", "tail", "two_sided"]
