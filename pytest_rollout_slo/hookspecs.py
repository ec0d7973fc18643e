"""Hooks that pytest-rollout-slo adds to pytest, so other plugins can extend it.

Registered through ``pytest_addhooks``. Each hook is a typed do-nothing function; its
docstring says when it runs and what it must return.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pytest_rollout_slo.backends import BackendType


@pytest.hookspec
def pytest_slo_backend_types() -> Sequence[BackendType]:  # type: ignore[empty-body]
    """Return the backend types this plugin provides (``type:`` values in spec files).

    Called once per session, before the first spec file is loaded. Every registered plugin
    is asked and the answers are merged; a type name given twice is a usage error. A type
    declares its settings (validated offline at collection) and creates backends from
    resolved settings when the first objective that uses one runs.
    """
