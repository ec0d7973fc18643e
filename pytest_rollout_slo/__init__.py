"""pytest-rollout-slo: gate feature-flag rollout stages on SLOs with pytest.

The public surface is what ``__all__`` lists: the pieces a third-party plugin needs to add a
backend type through the ``pytest_slo_backend_types`` hook, and the verdicts and warnings it
may see. Names are imported on first use, so that loading the pytest entry point in a
repository's ordinary test run costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_rollout_slo.backends.base import (
        Backend,
        BackendType,
        Query,
        QueryResult,
        RangeBackend,
        RangeQuery,
        Sample,
        Series,
    )
    from pytest_rollout_slo.errors import (
        BackendConfigError,
        BackendError,
        SloError,
        SloWarning,
        SpecError,
    )
    from pytest_rollout_slo.spec.settings import Setting
    from pytest_rollout_slo.verdict.instant import Verdict

_HOMES = {
    **dict.fromkeys(("Backend", "BackendType", "Query", "QueryResult", "RangeBackend",
                     "RangeQuery", "Sample", "Series"), "pytest_rollout_slo.backends.base"),
    "Setting": "pytest_rollout_slo.spec.settings",
    **dict.fromkeys(("BackendConfigError", "BackendError", "SloError", "SloWarning",
                     "SpecError"), "pytest_rollout_slo.errors"),
    "Verdict": "pytest_rollout_slo.verdict.instant",
}

__all__ = [
    "Backend",
    "BackendConfigError",
    "BackendError",
    "BackendType",
    "Query",
    "QueryResult",
    "RangeBackend",
    "RangeQuery",
    "Sample",
    "Series",
    "Setting",
    "SloError",
    "SloWarning",
    "SpecError",
    "Verdict",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pytest-rollout-slo")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
