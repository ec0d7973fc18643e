"""The registry of backend types: the built-in ones and those other plugins add.

Plugins add types through the ``pytest_slo_backend_types`` hook; :func:`registry` merges the
hook's answers into one mapping by name and refuses two types with the same name, so a spec's
``type:`` always means exactly one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_rollout_slo.backends.base import BackendType
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.sql import SQL
from pytest_rollout_slo.backends.sqlite import SQLITE
from pytest_rollout_slo.errors import SloError

BUILTIN_TYPES: tuple[BackendType, ...] = (SQLITE, SQL, PROMETHEUS)


class DuplicateBackendType(SloError):
    """Two plugins provide a backend type of the same name."""


def registry(answers: Iterable[Iterable[BackendType]]) -> dict[str, BackendType]:
    """One mapping from type name to type, from the hook's answers (one list per plugin)."""
    types: dict[str, BackendType] = {}
    for answer in answers:
        for backend_type in answer:
            if backend_type.name in types:
                raise DuplicateBackendType(
                    f"two plugins provide backend type {backend_type.name!r}")
            types[backend_type.name] = backend_type
    return types


__all__ = ["BUILTIN_TYPES", "DuplicateBackendType", "registry"]
