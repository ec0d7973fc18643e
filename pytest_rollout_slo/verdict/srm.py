"""The sample-ratio-mismatch test: is a canary's count of units what its share promises?

The exact two-sided binomial test (:func:`pytest_rollout_slo.verdict.stats.two_sided`,
SciPy's ``binomtest``, imported only when a stage has an exposure check: SciPy is the
``stats`` extra) and how many units it needs to show anything. Each unit
(a user, a session, a request) is taken to land on the canary independently with the
promised probability, which is what a flag's percentage rollout does per unit it hashes;
counting requests under a flag that hashes users breaks that independence (a heavy user's
requests land together), so count the unit the flag hashes. No I/O.
"""

from __future__ import annotations

import math

from pytest_rollout_slo.verdict import stats

MOST_UNITS = 10 ** 12
"""Beyond this many units the count needed is not worked out, only said to be more."""


def p_value(canary: int, total: int, share: float) -> float:
    """Two-sided exact p-value of ``canary`` of ``total`` units under the promised ``share``."""
    return stats.two_sided(canary, total, share)


def testable(total: int, share: float, threshold: float) -> bool:
    """Whether ``total`` units could show a mismatch at all, in every direction one can lie.

    With too few units even none (or all) of them on the canary is not below the threshold:
    such a test can only ever say "matches", which is no evidence of anything.
    """
    if total <= 0:
        return False
    low = share <= 0 or p_value(0, total, share) < threshold
    high = share >= 1 or p_value(total, total, share) < threshold
    return low and high


def units_needed(share: float, threshold: float) -> int | None:
    """The fewest units with which the test can show a mismatch in every direction; None
    past :data:`MOST_UNITS` (a share so close to 0 or 1 that no traffic will do)."""
    if share <= 0 or share >= 1:
        return 1
    # The one-sided tails (1 - s)^n and s^n must fall below the threshold first; a two-sided
    # p can still be a little larger, so search upwards from that bound.
    bound = math.log(threshold) / math.log1p(-min(share, 1 - share))
    if not bound <= MOST_UNITS:  # also for an infinite bound
        return None
    low = max(1, math.floor(bound))
    high = low
    while not testable(high, share, threshold):
        low, high = high, high * 2
    while low < high:  # the smallest testable n in (low, high]
        middle = (low + high) // 2
        if testable(middle, share, threshold):
            high = middle
        else:
            low = middle + 1
    return high


__all__ = ["MOST_UNITS", "p_value", "testable", "units_needed"]
