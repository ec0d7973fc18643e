"""The version matrix: the end-to-end tests under every pytest and Python the package supports.

``scripts/test.sh`` runs the whole suite once, in the environment it was started in; this file
runs the pytester end-to-end tests (``tests/test_plugin_*e2e.py``, where the plugin meets
pytest's hooks) again in fresh virtual environments:

- the lowest pytest ``pyproject.toml`` admits, on the oldest Python found;
- the newest pytest 8.x, on the newest Python found;
- the newest pytest 9.x, on every Python >= 3.10 found on the machine but the oldest and
  the one running nox (where ``scripts/test.sh`` ran the whole suite with it).

Pythons are looked up on ``PATH`` (``python3.10`` ...) and in pyenv's versions directory,
and only those that run are used: a CI machine with one Python runs the pytest axis alone,
never an error about a missing interpreter. Nothing is downloaded but packages.

``nox -l`` lists the sessions; ``nox -s "e2e(pytest=8, python=3.13)"`` runs one;
``nox -- -x`` adds arguments to pytest's.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
# uv makes a venv and installs the test dependencies from its cache in a few seconds, where
# virtualenv and pip take half a minute; either gives the same environment.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.download_python = "never"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["e2e"]

ROOT = Path(__file__).parent
E2E = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_plugin_*e2e.py"))
MINORS = range(10, 20)


def _lowest_pytest() -> str:
    """The version in ``pytest>=X`` of pyproject.toml's dependencies: the lowest admitted."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'"pytest>=([0-9][0-9.]*)', text)
    if found is None:
        raise RuntimeError("pyproject.toml declares no lower bound for pytest")
    return found.group(1)


def _runs(python: str) -> str | None:
    """``3.12`` if ``python`` starts and is CPython 3.10 or later, else None."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None  # a pyenv shim of a version that is not selected exits 127
    return out if re.fullmatch(r"3\.(1[0-9])", out) else None


def _pythons() -> dict[str, str]:
    """``{"3.10": "/path/to/python3.10", ...}``: every Python >= 3.10 that runs here."""
    found: dict[str, str] = {}
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [sys.executable]
    for minor in MINORS:
        on_path = shutil.which(f"python3.{minor}")
        candidates += [on_path] if on_path else []
        # The newest patch release first, so that it is the one kept.
        candidates += sorted(glob.glob(f"{pyenv}/versions/3.{minor}.*/bin/python3.{minor}"),
                             reverse=True)
    for candidate in candidates:
        version = _runs(candidate)
        if version and version not in found:
            found[version] = candidate
    return dict(sorted(found.items(), key=lambda item: int(item[0].split(".")[1])))


PYTHONS = _pythons()
LOWEST = _lowest_pytest()
_OLDEST, _NEWEST = next(iter(PYTHONS)), next(reversed(PYTHONS))
_HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"
# Each pytest once, each Python once, within the CI budget: the suite itself ran on this
# interpreter with the newest pytest, the oldest Python has the lowest pytest, the newest
# Python the newest 8.x, and every other Python the newest 9.x.
MATRIX = [
    (LOWEST, _OLDEST),
    ("8", _NEWEST),
    *(("9", v) for v in PYTHONS if v not in (_OLDEST, _NEWEST, _HERE)),
]


def _requirement(pytest: str) -> str:
    """``7.4`` -> ``pytest==7.4.*`` (its first release is the lowest admitted: ``==7.4.0``);
    ``8`` -> the newest 8.x."""
    if pytest == LOWEST:
        return f"pytest=={LOWEST}" + (".0" if LOWEST.count(".") == 1 else "")
    return f"pytest>={pytest},<{int(pytest) + 1}"


@nox.session
@nox.parametrize(("python", "pytest"), [nox.param(PYTHONS[v], p, id=f"pytest={p}, python={v}")
                                        for p, v in MATRIX])
def e2e(session: nox.Session, pytest: str) -> None:
    """The pytester end-to-end tests under one pytest release on one Python."""
    session.install("-e", ".[test]", _requirement(pytest))
    session.run("python", "-c", "import pytest, sys; print('pytest', pytest.__version__, "
                "'on Python', sys.version.split()[0])")
    session.run("python", "-m", "pytest", "-q", *E2E, *session.posargs)
