"""The run deadline as a backend sees it: how long the query it is running may still take.

The executor sets the deadline on the thread that runs a query; a backend reads it with
:func:`time_left` to keep its own retries and timeouts inside the run's deadline. It lives in
this leaf module so that backends never import the executor that calls them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_running = threading.local()


def time_left() -> float | None:
    """Seconds until the run deadline, for a backend running a query; None outside a query.

    A backend may use it to keep its own retries and timeouts inside the deadline; the
    executor enforces the deadline for the items either way.
    """
    deadline: float | None = getattr(_running, "at", None)
    return None if deadline is None else deadline - time.monotonic()


@contextmanager
def deadline_at(at: float | None) -> Iterator[None]:
    """Make ``at`` (a ``time.monotonic()`` value) this thread's deadline while a query runs."""
    _running.at = at
    try:
        yield
    finally:
        _running.at = None


__all__ = ["deadline_at", "time_left"]
