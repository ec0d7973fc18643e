"""Reading the plugin's settings: a ``--slo-*`` option, else its ``slo_*`` ini key."""

from __future__ import annotations

import pytest


def option(config: pytest.Config, name: str) -> str:
    """An option's value, else its ini key's; CLI beats ini beats default."""
    value = config.getoption(name)
    return str(value) if value not in (None, "") else str(config.getini(name) or "")


__all__ = ["option"]
