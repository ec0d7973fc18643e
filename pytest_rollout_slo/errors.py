"""The one exception hierarchy of pytest-rollout-slo.

Every exception carries the context a person needs to fix the cause: the spec file, line
and key for spec mistakes; the backend and the query for backend failures. Nothing here
imports pytest, so the spec loader and the backends can raise these on their own.
"""

from __future__ import annotations

from pathlib import Path


class SloError(Exception):
    """Base class of every error raised by pytest-rollout-slo."""


class SpecError(SloError):
    """A mistake in a spec file: reported as a collection error naming file, line and key."""

    def __init__(self, path: Path | str, line: int | None, key: str | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class BackendError(SloError):
    """The backend could not answer: the objective's verdict is *error*, never a pass.

    ``message`` must already be free of secrets; backends redact before raising.
    """

    def __init__(self, message: str, *, backend: str | None = None,
                 query: str | None = None) -> None:
        self.message = message
        self.backend = backend
        self.query = query
        super().__init__(message)


class BackendConfigError(BackendError):
    """A backend's settings cannot be used at run time (a missing ``${env:...}``, a bad URL)."""


class SloWarning(UserWarning):
    """An objective held, but outside its warning level (verdict *warn*).

    A UserWarning, not a PytestWarning: ``-W error::pytest.PytestWarning`` must not turn a
    rollout warning into a failure; ``--slo-strict`` does that on purpose.
    """
