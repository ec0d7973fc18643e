"""Quickstart glue: build events.db beside rollout.slo.yaml before any SLO item runs.

The first ``pytest --slo-stage=... examples/quickstart`` needs no manual step; later runs
reuse the database unless the simulator's version changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent

# pytest puts this directory on sys.path only in its default "prepend" import mode; adding it
# here keeps the import working under --import-mode=importlib too.
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from simulate import ensure_database  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, so the sqlite backend (read-only, opened on first query) finds the
    # file; ensure_database renames a finished file into place, so xdist workers racing
    # here never see a half-written database.
    ensure_database(_HERE / "events.db")
