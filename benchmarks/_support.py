"""What the benchmarks share: the machine line, and running pytest with the probe plugin.

Every benchmark runs pytest in a fresh subprocess, in a temporary directory with its own
``pytest.ini`` (so this repository's settings don't apply), with no plugin but ours and
``probe.py``, which times the phases from inside pytest: other installed plugins
(hypothesis, pytest-benchmark, xdist) would add their own costs to both sides.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent


def machine() -> str:
    """``2 CPUs (AMD EPYC), Linux x86_64, Python 3.11.7, pytest 9.0.3``."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpus} CPUs ({model}), {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, pytest {pytest.__version__}")


@dataclass
class Session:
    """One pytest subprocess: what the probe measured and how it ended."""

    returncode: int
    wall: float
    output: str
    probe: Mapping[str, Any]

    @property
    def loop_seconds(self) -> float:
        return float(self.probe["loop_seconds"])

    def items(self, kind: str) -> int:
        return int(self.probe["items"].get(kind, 0))

    def tally(self, phase: str, kind: str) -> Mapping[str, float]:
        empty = {"seconds": 0.0, "retained": 0, "overshoot": 0, "regions": 0, "objects": 0,
                 "paused": 0.0}
        found: Mapping[str, float] = self.probe["tallies"][phase].get(kind, empty)
        return found


def prepare(directory: Path) -> Path:
    """Make ``directory`` a rootdir of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return directory


def run_pytest(directory: Path, args: Sequence[str], *, memory: bool = False,
               plugins: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Session:
    """Run pytest in ``directory`` with the probe; fail loudly if it crashed."""
    out = directory / "probe.json"
    out.unlink(missing_ok=True)
    path = os.pathsep.join(p for p in (str(BENCHMARKS), os.environ.get("PYTHONPATH")) if p)
    environ = {**os.environ, **(env or {}), "PYTHONPATH": path, "BENCH_PROBE_OUT": str(out),
               "BENCH_MEMORY": "1" if memory else "0", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               "-p", "pytest_rollout_slo.plugin", "-p", "probe",
               *(arg for plugin in plugins for arg in ("-p", plugin)), *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=directory, env=environ, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1) or not out.exists():
        raise SystemExit(f"pytest failed (exit {done.returncode}): {' '.join(command)}\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return Session(done.returncode, wall, done.stdout, json.loads(out.read_text("utf-8")))


def prometheus_tools() -> tuple[str, str, str]:
    """``prometheus`` and ``promtool`` on PATH and the server's version line, or exit."""
    import shutil

    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        raise SystemExit("needs prometheus and promtool on PATH (apt-get install prometheus)")
    version = subprocess.run([prometheus, "--version"], capture_output=True, text=True,
                             check=False).stdout.split("\n", 1)[0]
    return prometheus, promtool, version


def met(ratio: float, target: float) -> bool:
    """Judged on the ratio as printed, two decimals."""
    return round(ratio, 2) <= target


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x (target <= {target:g}x: {'met' if met(ratio, target) else 'MISSED'})"
