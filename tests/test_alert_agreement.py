"""The gate and the alerts agree, on the real Prometheus.

The rules ``pytest-rollout-slo rules`` generates for every stage of the production spec are
loaded by a real Prometheus (``rule_files``, evaluated every 2 s) over the quickstart
simulator's traffic, backfilled with its times moved so that it ends now (Prometheus
evaluates rules at the present only). The spec's bounds are tightened a little
(``agent_response_time_p95`` at 15s, ``tool_call_success_rate`` at 97%) so that some
objectives fail, some warn and some pass.

For several evaluations of each stage's rule group, the evaluation's own timestamp is read
from the series it recorded, and at that timestamp:

* the alerts' states are read from the ``ALERTS`` series (``pending`` or ``firing``: an
  alert with ``for:`` is pending until it has held that long) and from ``/api/v1/rules``;
* the gate runs (pytester, ``--slo-at`` = that timestamp) against the same server.

An alert of kind ``breach`` (or a burn rate) is active exactly when the gate's verdict of
its objective is ``fail``, a ``warning`` alert exactly when it is ``warn``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import BACKFILL_STEP, require_binary
from servers import PrometheusServer
from simulate import AT_UNIX, Events, write_openmetrics
from test_integration_prometheus import OWN_FILTERS, SPEC, run_spec

from pytest_rollout_slo.cli import TYPES
from pytest_rollout_slo.export.rules import RuleSet, build_rules
from pytest_rollout_slo.spec.load import load_spec

pytest_plugins = ["pytester"]

STAGES = ("internal", "beta", "ga")
EVALUATIONS = 3
WARM_UP = 2
"""Evaluations left out at start: a Prometheus that just started writes no ``ALERTS`` until
it has restored the alerts' ``for:`` state, after its second evaluation of a group."""
TIGHTER = (("    max: 30s\n", "    max: 15s\n"), ("    min: 80%\n", "    min: 97%\n"),
           # The backfill's last samples lie on the 5-minute mark before the server started,
           # and the gate is run at live evaluation times for up to two minutes after that:
           # the default max_age 5m would make every objective stale (an error) whenever the
           # run crosses the next mark. 15m covers the step, the warm-up and the deadline.
           ('    url: "${env:PROMETHEUS_URL}"\n',
            '    url: "${env:PROMETHEUS_URL}"\n    freshness: {max_age: 15m}\n'))
TIMEOUT = (2.0, 10.0)


def tightened(directory: Path) -> Path:
    text = SPEC.read_text(encoding="utf-8")
    for old, new in TIGHTER:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = directory / "conflict_resolver.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def shifted_traffic(events: Events, directory: Path, shift: float) -> Path:
    """The simulator's OpenMetrics with every sample ``shift`` seconds later."""
    source, target = directory / "traffic.om.txt", directory / "shifted.om.txt"
    write_openmetrics(events, source, step=BACKFILL_STEP)
    with source.open(encoding="utf-8") as lines, target.open("w", encoding="utf-8") as out:
        for line in lines:
            if line.startswith("#"):
                out.write(line)
                continue
            head, _, stamp = line.rstrip("\n").rpartition(" ")
            out.write(f"{head} {int(float(stamp) + shift)}\n")
    source.unlink()
    return target


def query(url: str, promql: str, at: float | None = None) -> list[dict[str, object]]:
    data = {"query": promql, **({"time": repr(at)} if at is not None else {})}
    response = requests.post(f"{url}/api/v1/query", data=data, timeout=TIMEOUT)
    assert response.status_code == 200, (promql, response.text)
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


def last_evaluation(url: str, stage: str) -> float | None:
    """The timestamp of the stage group's latest evaluation, from the samples it recorded."""
    found = query(url, f'{{__name__=~"slo:.+_denominator:.+", stage="{stage}"}}[30s]')
    stamps = [float(point[0]) for series in found
              for point in series["values"]]  # type: ignore[attr-defined]
    return max(stamps, default=None)


def active_alerts(url: str, stage: str, at: float) -> dict[str, str]:
    """Alert name -> state (pending, firing) of the stage's alerts at evaluation ``at``."""
    states: dict[str, str] = {}
    for series in query(url, f'ALERTS{{stage="{stage}"}}', at):
        labels = series["metric"]
        value = series["value"]
        assert isinstance(labels, dict) and isinstance(value, list)
        states[str(labels["alertname"])] = str(labels["alertstate"])
    stamps = query(url, f'timestamp(ALERTS{{stage="{stage}"}})', at)
    # Every sample read was written by this very evaluation (nothing older shows through).
    assert {float(s["value"][1]) for s in stamps} <= {at}  # type: ignore[index]
    return states


@pytest.fixture(scope="module")
def rule_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RuleSet]:
    spec = load_spec(tightened(tmp_path_factory.mktemp("spec")), TYPES)
    return {stage: build_rules(spec, stage, TYPES) for stage in STAGES}


@pytest.fixture(scope="module")
def evaluating_prometheus(tmp_path_factory: pytest.TempPathFactory, quickstart_events: Events,
                          rule_sets: dict[str, RuleSet]) -> Iterator[PrometheusServer]:
    directory = tmp_path_factory.mktemp("agreement")
    files = []
    for stage, rules in rule_sets.items():
        path = directory / f"rules-{stage}.yml"
        path.write_text(rules.text(), encoding="utf-8")
        files.append(path)
    # The traffic ends on the last 5-minute mark before now: backfilled, it is the present.
    end = (time.time() // BACKFILL_STEP) * BACKFILL_STEP
    traffic = shifted_traffic(quickstart_events, directory, end - AT_UNIX)
    with PrometheusServer.start(directory / "data", traffic,
                                binary=require_binary("prometheus"),
                                promtool=require_binary("promtool"),
                                rule_files=files, evaluation_interval="2s") as server:
        yield server


@OWN_FILTERS
def test_alerts_fire_exactly_when_the_gate_fails_or_warns(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, events_db: Path,
        evaluating_prometheus: PrometheusServer, rule_sets: dict[str, RuleSet]) -> None:
    url = evaluating_prometheus.url
    monkeypatch.setenv("PROMETHEUS_URL", url)
    monkeypatch.setenv("SLO_EVENTS_DB", str(events_db))
    spec = tightened(pytester.path)
    seen: dict[str, set[float]] = {stage: set() for stage in STAGES}
    skipped: dict[str, set[float]] = {stage: set() for stage in STAGES}
    compared: list[tuple[str, str, bool]] = []
    deadline = time.monotonic() + 120
    while any(len(times) < EVALUATIONS for times in seen.values()):
        assert time.monotonic() < deadline, f"rule groups not evaluated: {seen}"
        for stage in STAGES:
            at = last_evaluation(url, stage)
            if at is None or at in seen[stage] or at in skipped[stage] or (
                    len(seen[stage]) >= EVALUATIONS):
                continue
            if len(skipped[stage]) < WARM_UP:
                skipped[stage].add(at)
                continue
            time.sleep(0.5)  # the group's evaluation at `at` has written all its samples
            seen[stage].add(at)
            states = active_alerts(url, stage, at)
            _, cases = run_spec(pytester, spec, stage, f"--slo-at={at!r}")
            verdicts = {name: case.props["slo.verdict"] for name, case in cases.items()}
            for rule in rule_sets[stage].alert_rules:
                verdict = verdicts[rule.title]
                expected = verdict == ("warn" if rule.kind == "warning" else "fail")
                active = rule.alert in states
                assert active == expected, (stage, at, rule.alert, verdict, states)
                compared.append((rule.kind, verdict, active))
        time.sleep(0.5)
    # Not vacuous: alerts fired for failures and for warnings, and others stayed silent.
    assert ("breach", "fail", True) in compared
    assert ("warning", "warn", True) in compared
    assert ("breach", "pass", False) in compared
    rules = requests.get(f"{url}/api/v1/rules", params={"type": "alert"}, timeout=TIMEOUT)
    groups = rules.json()["data"]["groups"]
    assert sorted(g["name"] for g in groups) == sorted(
        f"pytest-rollout-slo:conflict-resolver:{stage}" for stage in STAGES)
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
            assert re.fullmatch(r"Slo[A-Za-z0-9]+", rule["name"])
