"""The ``pytest-rollout-slo`` command line: ``check``, ``schema`` and the exit statuses.

``check`` loads every stage and matrix combination offline and says what it found, or names
the file, line and key of a mistake and exits 2, as a pytest collection error does; it never
prints a traceback. ``rules`` and ``dashboard`` have modules of their own
(test_rules.py, test_dashboard.py); here only their usage errors.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_rollout_slo.backends.registry import BUILTIN_TYPES
from pytest_rollout_slo.cli import main
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("slo_specs/*.yaml"), *ROOT.glob("examples/**/*.slo.yaml")])
SPEC = """\
version: 1
service: svc
backends:
  prom: {type: prometheus, url: "http://prometheus:9090"}
variables: {window: 1h}
stages:
  beta: {}
  ga: {variables: {window: 24h}}
matrix: {region: [eu, us]}
objectives:
  - name: error_rate
    ratio:
      numerator: sum(increase(errors_total{region="${region}"}[${window}])) or vector(0)
      denominator: sum(increase(requests_total{region="${region}"}[${window}]))
    max: 5%
    warn: {max: 2%}
    alert: {for: 10m, labels: {team: a}, runbook: "https://runbooks.example/error-rate"}
  - name: clicks
    track: true
    query: sum(increase(clicks_total{stage="${stage}"}[${window}]))
"""


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(args), out, err)
    return status, out.getvalue(), err.getvalue()


def write(tmp_path: Path, text: str, name: str = "gate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=[p.relative_to(ROOT).as_posix() for p in SHIPPED])
def test_check_accepts_every_shipped_spec(path: Path) -> None:
    status, out, err = run("check", str(path))
    assert (status, err) == (0, "")
    first, *rest = out.splitlines()
    stages = list(load_spec(path, {t.name: t for t in BUILTIN_TYPES}).stages)
    assert first.startswith(f"{path}: OK: service conflict-resolver, {len(stages)} stages")
    assert [line.split()[1] for line in rest if line.startswith("  stage ")] == stages


def test_check_lists_every_stage_and_combination(tmp_path: Path) -> None:
    status, out, _ = run("check", str(write(tmp_path, SPEC)))
    assert status == 0
    assert out.splitlines() == [
        f"{tmp_path / 'gate.yaml'}: OK: service svc, 2 stages, 2 objectives, 8 items",
        "  stage beta (window 1h): 2 objectives",
        "    error_rate[beta-region=eu]: max 5.00%, warn max 2.00% [prom, prometheus]",
        "    error_rate[beta-region=us]: max 5.00%, warn max 2.00% [prom, prometheus]",
        "    clicks[beta-region=eu]: tracked [prom, prometheus]",
        "    clicks[beta-region=us]: tracked [prom, prometheus]",
        "  stage ga (window 24h): 2 objectives",
        "    error_rate[ga-region=eu]: max 5.00%, warn max 2.00% [prom, prometheus]",
        "    error_rate[ga-region=us]: max 5.00%, warn max 2.00% [prom, prometheus]",
        "    clicks[ga-region=eu]: tracked [prom, prometheus]",
        "    clicks[ga-region=us]: tracked [prom, prometheus]",
    ]


def test_show_queries_prints_the_resolved_queries(tmp_path: Path) -> None:
    status, out, _ = run("check", "--show-queries", str(write(tmp_path, SPEC)))
    assert status == 0
    lines = out.splitlines()
    at = lines.index("    error_rate[ga-region=us]: max 5.00%, warn max 2.00% [prom, prometheus]")
    assert lines[at + 1:at + 3] == [
        '      numerator: sum(increase(errors_total{region="us"}[24h])) or vector(0)',
        '      denominator: sum(increase(requests_total{region="us"}[24h]))']
    assert '      query: sum(increase(clicks_total{stage="beta"}[1h]))' in lines


MISTAKES = [
    pytest.param("    max: 5%\n", "    maximum: 5%\n", 15, "objectives.error_rate.maximum",
                 "unknown key", id="unknown-key"),
    pytest.param("    track: true\n", "    track: true\n    max: 5%\n", 20,
                 "objectives.clicks.max", "a tracked objective (track: true) is reported, "
                 "never judged", id="tracked-with-bounds"),
    pytest.param("    track: true\n", "    track: 1\n", 19, "objectives.clicks.track",
                 "must be true or false", id="track-number"),
    pytest.param("for: 10m", "for: soon", 17, "objectives.error_rate.alert.for",
                 "expected", id="alert-for"),
    pytest.param("labels: {team: a}", "labels: {alertname: a}", 17,
                 "objectives.error_rate.alert.labels.alertname", "set by the generator",
                 id="alert-label-reserved"),
    pytest.param("matrix:", 'dashboard: {stage_label: "rollout stage"}\nmatrix:', 9,
                 "dashboard.stage_label", "'rollout stage' is not a Prometheus label name",
                 id="dashboard-stage-label"),
    pytest.param("matrix:", "dashboard: {stage_label: objective}\nmatrix:", 9,
                 "dashboard.stage_label", "'objective' is a label the generated rules set",
                 id="dashboard-stage-label-taken"),
]


@pytest.mark.parametrize(("old", "new", "line", "key", "message"), MISTAKES)
def test_check_names_file_line_and_key_of_a_mistake(tmp_path: Path, old: str, new: str,
                                                    line: int, key: str, message: str) -> None:
    assert old in SPEC
    path = write(tmp_path, SPEC.replace(old, new, 1))
    good = write(tmp_path, SPEC, "good.yaml")
    status, out, err = run("check", str(good), str(path))
    assert status == 2
    # The good file is still checked and reported; the bad one is one line, no traceback.
    assert out.startswith(f"{good}: OK")
    assert err.startswith(f"spec error: {path}:{line}: {key}: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_check_of_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    status, out, err = run("check", str(tmp_path / "absent.yaml"))
    assert (status, out) == (2, "")
    assert err.startswith(f"spec error: {tmp_path / 'absent.yaml'}: cannot read the spec file")


def test_schema_prints_the_shipped_schema() -> None:
    assert run("schema") == (0, schema_text(), "")


def test_an_unknown_stage_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC)
    status, out, err = run("rules", str(path), "--stage", "prod")
    assert (status, out) == (4, "")
    assert err == f"usage error: {path}: unknown stage 'prod'; stages: beta, ga\n"


def test_the_command_is_installed_with_the_package(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("pytest-rollout-slo")
    assert script.is_file(), "pip install -e . installs the console script"
    done = subprocess.run([str(script), "check", str(write(tmp_path, SPEC))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "OK: service svc" in done.stdout
    bad = subprocess.run([str(script), "check", str(write(tmp_path, "version: 2\n", "b.yaml"))],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith(f"spec error: {tmp_path / 'b.yaml'}:1: version: ")
