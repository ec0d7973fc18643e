"""pytest-rollout-slo: gate feature-flag rollout stages on SLOs with pytest.

The public surface is what ``__all__`` lists: the pieces a third-party plugin needs to add a
backend type through the ``pytest_slo_backend_types`` hook.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from pytest_rollout_slo.backends import (
    Backend,
    BackendType,
    Query,
    QueryResult,
    RangeBackend,
    RangeQuery,
    Sample,
    Series,
    Setting,
)
from pytest_rollout_slo.errors import (
    BackendConfigError,
    BackendError,
    SloError,
    SloWarning,
    SpecError,
)
from pytest_rollout_slo.evaluate import Verdict

try:
    __version__ = version("pytest-rollout-slo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
