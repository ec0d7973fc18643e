"""Prometheus rules generated from the gates, checked and unit-tested by ``promtool``.

* ``promtool check rules`` accepts the rules of every stage of every shipped spec;
* ``promtool test rules`` runs unit tests generated for the production spec: the input series
  are the quickstart simulator's traffic (the same 5-minute grid the servers are backfilled
  with, time 0 at the simulator's start, so ``eval_time: 3d`` is its evaluation time) for
  healthy traffic, and the same traffic with the canary's errors four times as many for a
  breach. The alerts expected to fire are the seed story's verdicts, as
  test_integration_prometheus.py holds them against the events: healthy traffic warns where
  the gate warns (internal: error rate and tool call p95; beta: tool call p95) and breaks
  nothing; the breach fires the error-rate alerts wherever the gate fails. Every other alert
  of the file must stay silent.

promtool evaluates every 5 minutes, on the grid of the samples, where ``increase`` needs no
extrapolation and equals the gate's counts; the error-rate alerts' ``for: 10m`` then needs the
breach at the two evaluations before 3d as well.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml
from conftest import BACKFILL_STEP, require_binary
from servers import parse_openmetrics
from simulate import AT_UNIX, Events, write_openmetrics

from pytest_rollout_slo.cli import TYPES
from pytest_rollout_slo.export.rules import RuleSet, build_rules
from pytest_rollout_slo.quantity import parse_duration
from pytest_rollout_slo.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ROOT / "slo_specs" / "conflict_resolver.yaml"
SHIPPED = sorted([*ROOT.glob("slo_specs/*.yaml"), *ROOT.glob("examples/**/*.slo.yaml")])
BREACH_FACTOR = 4
EVALUATION = 600.0
"""promtool's evaluation interval: on the samples' grid, and the error-rate alerts' for:."""

# The seed story: alerts expected to fire at 3d, by stage and traffic.
HEALTHY = {
    "internal": {"SloErrorRateWarning", "SloToolCallLatencyP95Warning"},
    "beta": {"SloToolCallLatencyP95Warning"},
    "ga": set(),
}
BREACH = {
    "internal": {"SloErrorRateBreach", "SloToolCallLatencyP95Warning"},
    "beta": {"SloErrorRateBreach", "SloErrorRateSustainedBreach", "SloErrorRateVsControlBreach",
             "SloToolCallLatencyP95Warning"},
    "ga": {"SloErrorRateBreach"},
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool")


def rules_of(path: Path, stage: str) -> RuleSet:
    return build_rules(load_spec(path, TYPES), stage, TYPES)


def stages_of(path: Path) -> list[str]:
    return list(load_spec(path, TYPES).stages)


CASES = [(path, stage) for path in SHIPPED for stage in stages_of(path)]


@pytest.mark.parametrize(("path", "stage"), CASES,
                         ids=[f"{p.relative_to(ROOT).as_posix()}-{s}" for p, s in CASES])
def test_promtool_accepts_the_rules_of_every_shipped_spec(tmp_path: Path, promtool: str,
                                                          path: Path, stage: str) -> None:
    rules = rules_of(path, stage)
    target = tmp_path / "rules.yml"
    target.write_text(rules.text(), encoding="utf-8")
    done = subprocess.run([promtool, "check", "rules", str(target)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    count = len(rules.recordings) + len(rules.alerts)
    assert f"SUCCESS: {count} rules found" in done.stdout
    spec = load_spec(path, TYPES)
    promql = {o.name for o in spec.objectives if stage in o.bounds
              and spec.backends[o.backend].type == "prometheus"}
    # Every objective is either in the file or listed as not exportable, with its reason.
    assert {r["labels"]["objective"] for r in rules.recordings} == promql
    listed = {item.objective for item in rules.skipped}
    assert listed == {o.name for o in spec.objectives if stage in o.bounds} - promql
    for item in rules.skipped:
        kind = next(spec.backends[o.backend].type for o in spec.objectives
                    if o.name == item.objective)
        assert f"# not exportable: {item.objective}: backend 'events' is {kind}" in rules.text()


def test_alerts_follow_the_spec_settings() -> None:
    rules = rules_of(PRODUCTION, "ga")
    by_name = {rule["alert"]: rule for rule in rules.alerts}
    breach = by_name["SloErrorRateBreach"]
    own = '{service="conflict-resolver", stage="ga", objective="error_rate"}'
    # Every stage records under the same names: an alert reads its own stage's series only.
    assert breach["expr"] == f"slo:error_rate:ratio_24h{own} > 0.05"
    assert breach["for"] == "10m"
    assert breach["labels"] == {"service": "conflict-resolver", "stage": "ga",
                                "objective": "error_rate", "team": "conflict-resolver",
                                "severity": "critical"}
    assert breach["annotations"]["runbook_url"] == (
        "https://runbooks.example.com/conflict-resolver/error-rate")
    assert breach["annotations"]["threshold"] == "max 5.00%"
    warning = by_name["SloErrorRateWarning"]
    assert warning["labels"]["severity"] == "warning"
    assert warning["expr"] == (f"slo:error_rate:ratio_24h{own} > 0.03 and "
                               f"slo:error_rate:ratio_24h{own} <= 0.05")
    # A min bound alerts below it; tracked objectives record, never alert.
    assert by_name["SloToolCallSuccessRateBreach"]["expr"] == (
        "slo:tool_call_success_rate:ratio_24h{service=\"conflict-resolver\", stage=\"ga\", "
        "objective=\"tool_call_success_rate\"} < 0.8")
    assert "for" not in by_name["SloToolCallSuccessRateBreach"]
    recorded = {rule["record"] for rule in rules.recordings}
    assert {"slo:button_click_rate:ratio_24h", "slo:chat_sessions_initiated:value_24h",
            "slo:error_rate_by_type:value_24h", "slo:ratings:value_24h"} <= recorded
    assert not any(rule["labels"]["objective"] in ("button_click_rate", "ratings")
                   for rule in rules.alerts)


def test_a_burn_rate_objective_alerts_on_both_windows(tmp_path: Path) -> None:
    path = tmp_path / "burn.yaml"
    path.write_text("""\
version: 1
service: svc
backends: {prom: {type: prometheus, url: "http://p:9090"}}
stages: {ga: {}}
objectives:
  - name: error_budget
    ratio:
      numerator: sum(increase(errors_total[${window}])) or vector(0)
      denominator: sum(increase(requests_total[${window}]))
    burn_rate:
      target: 99.5%
      alerts: [{long: 1h, short: 5m, factor: 14.4}, {long: 6h, short: 30m, factor: 6}]
""", encoding="utf-8")
    rules = rules_of(path, "ga")
    assert [r["record"] for r in rules.recordings if r["record"].endswith(("5m", "1h"))] == [
        "slo:error_budget_numerator:1h", "slo:error_budget_denominator:1h",
        "slo:error_budget:ratio_1h", "slo:error_budget_numerator:5m",
        "slo:error_budget_denominator:5m", "slo:error_budget:ratio_5m"]
    [fast, slow] = rules.alerts
    budget = repr(1 - 0.995)
    own = '{service="svc", stage="ga", objective="error_budget"}'
    assert fast["alert"] == "SloErrorBudgetBurnRate1h5m"
    assert fast["expr"] == (f"(slo:error_budget:ratio_1h{own} / {budget} > 14.4) and "
                            f"(slo:error_budget:ratio_5m{own} / {budget} > 14.4)")
    assert slow["labels"]["long_window"] == "6h" and slow["labels"]["severity"] == "critical"


# -- promtool test rules ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, quickstart_events: Events
            ) -> dict[str, list[tuple[float, float]]]:
    """The simulator's series on the backfill grid: name with labels -> (time, value)."""
    path = tmp_path_factory.mktemp("traffic") / "traffic.om.txt"
    write_openmetrics(quickstart_events, path, step=BACKFILL_STEP)
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in parse_openmetrics(path.read_text(encoding="utf-8")):
        assert sample.timestamp is not None
        series.setdefault(f"{sample.name}{{{sample.labels}}}", []).append(
            (sample.timestamp, sample.value))
    return series


def input_series(traffic: Mapping[str, list[tuple[float, float]]], stage: str, start: float,
                 errors_factor: int = 1) -> list[dict[str, str]]:
    """The stage's series as promtool input: one value per 5 minutes from ``start`` (time 0)."""
    result = []
    for name, points in traffic.items():
        if f'stage="{stage}"' not in name:
            continue
        factor = errors_factor if name.startswith("agent_errors_total{") and (
            'cohort="canary"' in name) else 1
        values = " ".join(_number(value * factor) for at, value in points if at >= start)
        result.append({"series": name, "values": values})
    return result


def history(rules: RuleSet) -> float:
    """Seconds of traffic the alerts read at their last evaluation, plus their ``for:``."""
    spec, stage = rules.spec, rules.stage
    needed = 0.0
    for objective in spec.objectives:
        if stage not in objective.bounds:
            continue
        window = parse_duration(spec.resolve(objective, stage).window_text or "0s")
        if objective.sustained is not None:
            window += objective.sustained.over
        needed = max(needed, window + (objective.alert.for_seconds or 0.0))
    return needed + EVALUATION


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def alert_tests(rules: RuleSet, firing: set[str], eval_time: str
                ) -> Iterator[dict[str, object]]:
    """One ``alert_rule_test`` per alert of the file: fired with its labels, or silent."""
    for rule in rules.alerts:
        name = str(rule["alert"])
        expected: list[Mapping[str, object]] = []
        if name in firing:
            expected.append({"exp_labels": dict(rule["labels"]),
                             "exp_annotations": dict(rule["annotations"])})
        yield {"eval_time": eval_time, "alertname": name, "exp_alerts": expected}


@pytest.mark.parametrize("stage", ["internal", "beta", "ga"])
def test_promtool_unit_tests_of_healthy_and_breaching_traffic(
        tmp_path: Path, promtool: str, traffic: dict[str, list[tuple[float, float]]],
        stage: str) -> None:
    rules = rules_of(PRODUCTION, stage)
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(rules.text(), encoding="utf-8")
    names = {str(rule["alert"]) for rule in rules.alerts}
    assert HEALTHY[stage] <= names and BREACH[stage] <= names
    # Only the traffic the alerts read: promtool evaluates every rule from time 0 on.
    span = math.ceil(history(rules) / BACKFILL_STEP) * BACKFILL_STEP
    eval_time = f"{span // 60}m"
    tests = []
    for factor, firing in ((1, HEALTHY[stage]), (BREACH_FACTOR, BREACH[stage])):
        tests.append({"interval": "5m",
                      "input_series": input_series(traffic, stage, AT_UNIX - span, factor),
                      "alert_rule_test": list(alert_tests(rules, firing, eval_time))})
    test_file = tmp_path / "rules.test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [rule_file.name],
                                         "evaluation_interval": f"{EVALUATION // 60:g}m",
                                         "tests": tests},
                                        sort_keys=False, width=1_000_000), encoding="utf-8")
    done = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True,
                          text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "SUCCESS" in done.stdout


BURN_SPEC = """\
version: 1
service: svc
backends: {prom: {type: prometheus, url: "http://p:9090"}}
stages: {ga: {}}
objectives:
  - name: error_budget
    ratio:
      numerator: sum(increase(errors_total[${window}])) or vector(0)
      denominator: sum(increase(requests_total[${window}]))
    burn_rate:
      target: 99.5%
      alerts: [{long: 1h, short: 5m, factor: 14.4}]
"""


@pytest.mark.parametrize(("errors", "fires"), [
    ("0+10x180", True),              # 10% errors: a burn rate of 20 over both windows
    ("0+10x170 1700x10", False),     # the errors stopped 10 minutes ago: the short window is calm
    ("0+0x180", False),              # no errors at all
])
def test_promtool_burn_rate_alert_needs_both_windows(tmp_path: Path, promtool: str,
                                                     errors: str, fires: bool) -> None:
    spec = tmp_path / "burn.yaml"
    spec.write_text(BURN_SPEC, encoding="utf-8")
    rules = rules_of(spec, "ga")
    (tmp_path / "rules.yml").write_text(rules.text(), encoding="utf-8")
    [alert] = rules.alerts
    expected = [{"exp_labels": dict(alert["labels"]),
                 "exp_annotations": dict(alert["annotations"])}] if fires else []
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": "errors_total", "values": errors},
                         {"series": "requests_total", "values": "0+100x180"}],
        "alert_rule_test": [{"eval_time": "3h", "alertname": alert["alert"],
                             "exp_alerts": expected}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    done = subprocess.run([promtool, "test", "rules", "test.yml"], capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
