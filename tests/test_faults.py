"""The fault suite: a broken or slow metrics backend fails the gate fast and clearly.

Each test puts a fault-injecting proxy (``faultproxy.py``) in front of the suite's real
Prometheus and runs a spec through pytest in a subprocess, so that "the run ended in time"
includes the interpreter exiting with a request still stuck in a socket. The spec has two
objectives whose true verdicts differ: ``calm`` (2% errors over 30m) passes and ``incident``
(6% over 1h) fails. Under a fault both must be errors with a message that names the fault,
never a pass; where the backend recovers (a 502 then success) both must get their true
verdict. Its last test prints one summary line of the faults tried and the verdicts seen.
"""

from __future__ import annotations

import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import missing
from faultproxy import FaultProxy
from servers import FIXTURE_END, PrometheusServer

from pytest_rollout_slo.backends.base import Query
from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.errors import BackendError
from pytest_rollout_slo.plan.executor import BackendKey, Executor
from pytest_rollout_slo.spec.load import BackendSpec

pytest_plugins = ["pytester"]

# A pytest subprocess needs about a second to start on an idle 2-core machine; a loaded CI
# runner may need several. The deadline assertions allow this much on top of the deadline.
SLACK = 15.0
TIMEOUT = "1s"  # the backend's per-query timeout in every run

SPEC = """\
version: 1
service: faults
backends:
  metrics:
    type: prometheus
    url: {url}
    timeout: {timeout}
    # Each fault plays on every request; the metric check's one lookup has its own tests.
    check_metrics: false
    check_freshness: false
stages:
  s: {{}}
objectives:
{objectives}
"""

TWO_OBJECTIVES = """\
- name: calm
  ratio:
    numerator: sum(increase(slo_test_requests_total{code="500"}[30m]))
    denominator: sum(increase(slo_test_requests_total[30m]))
  max: 5%
- name: incident
  ratio:
    numerator: sum(increase(slo_test_requests_total{code="500"}[1h]))
    denominator: sum(increase(slo_test_requests_total[1h]))
  max: 5%
"""

PER_INSTANCE = """\
- name: per_instance
  query: sum by (instance) (slo_test_requests_total)
  max: 1000
"""


@dataclass
class Run:
    fault: str
    verdicts: dict[str, str]
    failures: dict[str, str]
    passed: set[str]
    elapsed: float  # the pytest subprocess, start to exit
    session: float  # pytest's own session time, from the JUnit file
    deadline: float


SUMMARY: list[Run] = []


def run_gate(pytester: pytest.Pytester, fault: str, url: str, *, deadline: float,
             objectives: str = TWO_OBJECTIVES, args: tuple[str, ...] = ()) -> Run:
    """Run the spec against ``url`` in a pytest subprocess; verdicts from its JUnit XML."""
    pytester.makefile(".slo.yaml", gate=SPEC.format(
        url=url, timeout=TIMEOUT, objectives=textwrap.indent(objectives, "  ")))
    junit = pytester.path / "junit.xml"
    start = time.monotonic()
    result = pytester.runpytest_subprocess(
        "--slo-stage=s", f"--slo-at={FIXTURE_END}", f"--slo-deadline={deadline}",
        f"--junitxml={junit}", "-p", "no:cacheprovider", *args, timeout=deadline + 60)
    elapsed = time.monotonic() - start
    verdicts, failures, passed = {}, {}, set()
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    session = float(suite.attrib["time"]) if suite is not None else elapsed
    for case in root.iter("testcase"):
        name = case.attrib["name"].split("[")[0]
        props = {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
        verdicts[name] = props.get("slo.verdict", "?")
        # A breach is a <failure>, an objective that could not be evaluated an <error>.
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is None:
            passed.add(name)
        else:
            failures[name] = failure.text or ""
    assert result.ret in (0, 1), result.stdout.str()
    run = Run(fault, verdicts, failures, passed, elapsed, session, deadline)
    SUMMARY.append(run)
    return run


def assert_errors(run: Run, *messages: str) -> None:
    """Every objective is an error whose failure text holds every one of ``messages``."""
    assert not run.passed, f"a fault gave a pass: {run.passed}"
    assert set(run.verdicts.values()) == {"error"}, run.verdicts
    for name, text in run.failures.items():
        for message in messages:
            assert message in text, f"{name}: {message!r} not in:\n{text}"
    assert run.elapsed < run.deadline + SLACK


@pytest.fixture
def upstream(prometheus_server: PrometheusServer) -> str:
    return prometheus_server.url


def test_control_through_the_proxy_gives_the_true_verdicts(
        pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "forward") as proxy:
        run = run_gate(pytester, "forward", proxy.url, deadline=30)
    assert run.verdicts == {"calm": "pass", "incident": "fail"}
    assert run.passed == {"calm"}
    assert "FAILED: 6.00% > max 5.00%" in run.failures["incident"]
    assert len(proxy.requests) == 4


def test_connection_refused(pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "refused") as proxy:
        run = run_gate(pytester, "refused", proxy.url, deadline=30)
    assert_errors(run, f"connection refused by {proxy.url}/api/v1/query; is the server running")


def test_accept_then_never_answer(pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "hang") as proxy:
        run = run_gate(pytester, "hang", proxy.url, deadline=30)
    assert_errors(run, f"timed out after {TIMEOUT} waiting for {proxy.url}/api/v1/query")
    assert len(proxy.requests) == 4  # a read timeout is never retried


def test_answer_after_the_timeout(pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "late", delay=3) as proxy:
        run = run_gate(pytester, "late", proxy.url, deadline=30)
    assert_errors(run, f"timed out after {TIMEOUT} waiting for {proxy.url}/api/v1/query")


def test_reset_in_the_middle_of_the_body(pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "reset") as proxy:
        run = run_gate(pytester, "reset", proxy.url, deadline=30)
    assert_errors(run, f"{proxy.url}/api/v1/query")
    for text in run.failures.values():
        assert "broke while reading the answer" in text or "could not connect" in text, text


def test_502_then_success_is_retried_to_the_true_verdicts(
        pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "flaky", failures=2) as proxy:
        run = run_gate(pytester, "flaky", proxy.url, deadline=30)
    assert run.verdicts == {"calm": "pass", "incident": "fail"}
    assert run.passed == {"calm"}
    assert len(proxy.requests) == 4 + 2


def test_503_forever_is_retried_a_bounded_number_of_times(
        pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "unavailable") as proxy:
        run = run_gate(pytester, "unavailable", proxy.url, deadline=30)
    assert_errors(run, f"{proxy.url}/api/v1/query answered HTTP 503 Service Unavailable "
                       "after 4 attempts")
    assert len(proxy.requests) == 4 * 4


def test_503_forever_ends_at_a_deadline_shorter_than_the_retries(
        pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "unavailable") as proxy:
        run = run_gate(pytester, "unavailable+deadline", proxy.url, deadline=1.5)
    assert_errors(run)
    for name, text in run.failures.items():
        # Either the deadline cut the wait, or the backend stopped retrying because the next
        # backoff would have crossed the deadline and said what it got so far.
        assert ("the run deadline of 1.5s passed before this query answered" in text
                or "answered HTTP 503 Service Unavailable" in text), f"{name}:\n{text}"
    assert len(proxy.requests) < 4 * 4


def test_no_retry_starts_after_the_deadline(upstream: str) -> None:
    # In this process, so that the thread left behind at the deadline is still alive and
    # would be seen retrying; a pytest subprocess would have exited by then.
    executor = Executor({"prometheus": PROMETHEUS}, 2, deadline=1.5)
    key = BackendKey(Path("/specs/faults.yaml"), "metrics")
    with FaultProxy(upstream, "unavailable") as proxy:
        spec = BackendSpec("metrics", "prometheus", {"url": proxy.url, "timeout": TIMEOUT}, 1)
        executor.start()
        ended = time.monotonic() + executor.time_left()
        # The deadline's error, or the backend's own if it gave up rather than back off past it.
        with pytest.raises(BackendError):
            executor.result(key, spec, Query("vector(1)", FIXTURE_END))
        time.sleep(3.5)  # the backoff of the retries the backend would still make
        executor.close()
    assert proxy.requests
    assert max(proxy.requests) <= ended


def test_a_very_large_answer_is_judged_in_full(pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "huge", series=100_000, series_outside=77_777,
                    at=FIXTURE_END) as proxy:
        run = run_gate(pytester, "huge", proxy.url, deadline=30, objectives=PER_INSTANCE)
    assert run.elapsed < run.deadline + SLACK
    assert run.verdicts == {"per_instance": "fail"}
    assert not run.passed
    text = run.failures["per_instance"]
    assert "1 of 100000 values outside max 1000" in text
    assert 'instance="i77777"' in text and "5000" in text
    assert 'instance="i77776"' not in text


def test_a_slow_trickle_of_bytes_ends_at_the_run_deadline(
        pytester: pytest.Pytester, upstream: str) -> None:
    with FaultProxy(upstream, "trickle", interval=0.2) as proxy:
        run = run_gate(pytester, "trickle", proxy.url, deadline=3)
    assert_errors(run, "the run deadline of 3s passed before this query answered: "
                       "it had been running for ")
    assert len(proxy.requests) == 4


def many_objectives(count: int) -> str:
    """``count`` objectives with distinct queries, each truly failing (2% and 6% > max 1%)."""
    return "".join(f"""\
- name: window_{n}
  ratio:
    numerator: sum(increase(slo_test_requests_total{{code="500"}}[{30 + n}m]))
    denominator: sum(increase(slo_test_requests_total[{30 + n}m]))
  max: 1%
""" for n in range(count))


def test_a_backend_that_refuses_every_connection_fails_fast(
        pytester: pytest.Pytester, upstream: str) -> None:
    # 40 queries on 2 slots: each retrying its refused connects on its own would take
    # about 20 s; once two in a row are refused, the rest end at once.
    with FaultProxy(upstream, "refused") as proxy:
        run = run_gate(pytester, "refused x20", proxy.url, deadline=60,
                       objectives=many_objectives(20), args=("--slo-concurrency=2",))
    assert_errors(run, f"connection refused by {proxy.url}/api/v1/query")
    down = [t for t in run.failures.values() if "backend metrics is down since " in t]
    assert len(down) >= 15, run.failures
    assert "queries in a row lost their connection, the first with: connection refused" \
        in down[0]
    assert run.session < 15, run.session  # each query retrying alone: about 30 s


def test_a_backend_that_dies_mid_run_fails_the_rest_fast(
        pytester: pytest.Pytester, upstream: str) -> None:
    # The proxy forwards 10 queries, then dies: the queries in flight lose their connection,
    # later ones are refused. Without fail-fast, every one of the 90 queries left would retry
    # on its own (about 45 s); with it the run ends at once.
    with FaultProxy(upstream, "dies", failures=10) as proxy:
        run = run_gate(pytester, "dies mid-run", proxy.url, deadline=90,
                       objectives=many_objectives(50), args=("--slo-concurrency=2",))
    assert not run.passed
    assert set(run.verdicts.values()) <= {"fail", "error"}
    assert "fail" in run.verdicts.values()  # the answers before the death were judged
    down = [t for t in run.failures.values() if "backend metrics is down since " in t]
    assert len(down) >= 40, run.failures
    assert run.session < 10, run.session
    assert len(proxy.requests) <= 10 + 2


def test_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Last in the module: one line of the faults tried and the verdicts, as benchmarks print."""
    if not SUMMARY:
        # Its false-pass count is the suite's check across faults: under CI=true a run in
        # which no fault ran is a failure, not a skip.
        missing("no fault ran in this process")
    runs = ", ".join(f"{run.fault} {'+'.join(sorted(set(run.verdicts.values())))} "
                     f"{run.session:.1f}/{run.elapsed:.1f}/{run.deadline:g}" for run in SUMMARY)
    true_passes = {"forward": {"calm"}, "flaky": {"calm"}}
    false_passes = sum(len(run.passed - true_passes.get(run.fault, set())) for run in SUMMARY)
    with capsys.disabled():
        print(f"\nfault suite: {len(SUMMARY)} runs, {false_passes} false passes; fault "
              f"verdicts session/process/deadline seconds: {runs}")
    assert false_passes == 0
