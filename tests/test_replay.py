"""Record and replay (issue 6, point 3) end to end through ``pytester``.

``--slo-record=PATH`` keeps every backend answer of a run; ``--slo-replay=PATH`` evaluates the
same specs from that file with no network and must give the same verdicts. Each test records a
run, takes the backend away (the SQLite file deleted, ``PROMETHEUS_URL`` pointed at a closed
port or unset), replays, and compares the JUnit testcases of both runs: outcome, every
``slo.*`` property and the failure text, where the only allowed difference is the backend
description's ``, replayed from <file>``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sqlite3
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import FIXTURE_END, PrometheusServer, free_port
from specdata import AT, AT_UNIX

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
REPLAYED = ", replayed from rec.json"

# -- SQLite -------------------------------------------------------------------------------

SQLITE_SPEC = """\
version: 1
service: replayed
backends:
  events:
    type: sqlite
    path: ../events.db
variables:
  window: 1h
stages:
  s: {{}}
  t: {{}}
objectives:
{objectives}"""

SQLITE_OBJECTIVES = """\
- name: good
  query: SELECT v FROM req WHERE name = 'fast' AND ts >= :window_start AND ts < :window_end
  max: 1s
- name: bad
  query: SELECT v FROM req WHERE name = 'slow' AND ts >= :window_start AND ts < :window_end
  max: 1s
- name: empty
  query: SELECT v FROM req WHERE name = 'none'
  max: 1s
- name: broken
  query: SELECT v FROM no_such_table
  max: 1s
- name: error_rate
  ratio:
    numerator: >-
      SELECT count(*) FROM req WHERE name = 'slow' AND ts >= :window_start AND ts < :window_end
    denominator: SELECT count(*) FROM req WHERE ts >= :window_start AND ts < :window_end
  max: 40%
- name: by_name
  matrix: {name: [fast, slow]}
  query: SELECT v FROM req WHERE name = :name AND ts >= :window_start AND ts < :window_end
  max: 1s
"""

SQLITE_VERDICTS = {
    "good[s]": ("passed", "pass", "250ms"),
    "bad[s]": ("failure", "fail", "2.5s"),
    "empty[s]": ("failure", "no_data", "no data"),
    "broken[s]": ("error", "error", "error"),
    "error_rate[s]": ("failure", "fail", "50.00%"),
    "by_name[s-name=fast]": ("passed", "pass", "250ms"),
    "by_name[s-name=slow]": ("failure", "fail", "2.5s"),
}

SQLITE_SUSTAINED = """\
- name: held
  query: SELECT v FROM req WHERE name = 'fast' AND ts < :at ORDER BY ts DESC LIMIT 1
  max: 1s
  sustained: {over: 2h, step: 1h, max_violations: 0}
"""


def make_db(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE req (ts REAL, name TEXT, v REAL)")
        db.executemany("INSERT INTO req VALUES (?, ?, ?)", [
            (AT_UNIX - 5 * 3600.0, "fast", 0.25), (AT_UNIX - 60.0, "fast", 0.25),
            (AT_UNIX - 60.0, "slow", 2.5)])
        db.commit()
    return path


def sqlite_spec(pytester: pytest.Pytester, objectives: str = SQLITE_OBJECTIVES) -> Path:
    target = pytester.path / "slo_specs" / "x.yaml"
    target.parent.mkdir(exist_ok=True)
    target.write_text(SQLITE_SPEC.format(objectives=textwrap.indent(objectives, "  ")),
                      encoding="utf-8")
    return target


# -- Prometheus ---------------------------------------------------------------------------

PROM_SPEC = """\
version: 1
service: replayed
backends:
  metrics:
    type: prometheus
    url: "${{env:PROMETHEUS_URL}}"
    timeout: 5s
    # The syntax error below must reach the server, to be recorded and replayed.
    parse_promql: false
variables:
  window: 10m
stages:
  s: {{}}
objectives:
{objectives}"""

ERROR_RATIO = ('sum(rate(slo_test_requests_total{code="500"}[${window}]))'
               " / sum(rate(slo_test_requests_total[${window}]))")
PROM_OBJECTIVES = f"""\
- name: error_ratio
  query: '{ERROR_RATIO}'
  max: 5%
- name: error_counts
  variables: {{window: 1h}}
  ratio:
    numerator: 'sum(increase(slo_test_requests_total{{code="500"}}[${{window}}]))'
    denominator: sum(increase(slo_test_requests_total[${{window}}]))
  max: 3%
- name: error_ratio_sustained
  query: '{ERROR_RATIO}'
  max: 5%
  on_no_data: pass
  sustained: {{over: 2h, step: 10m, max_violations: 1}}
- name: requests
  matrix: {{code: ["200", "500"]}}
  query: 'sum(increase(slo_test_requests_total{{code="${{code}}"}}[1h]))'
  min: 100
- name: missing_metric
  query: sum(rate(slo_test_no_such_metric_total[5m]))
  max: 5%
- name: syntax_error
  query: sum(rate(slo_test_requests_total[5m])
  max: 5%
"""

PROM_VERDICTS = {
    "error_ratio[s]": "pass",
    "error_counts[s]": "fail",
    "error_ratio_sustained[s]": "fail",
    "requests[s-code=200]": "pass",
    "requests[s-code=500]": "pass",
    "missing_metric[s]": "error",  # the metric check, recorded and replayed as an error
    "syntax_error[s]": "error",
}


# -- running and comparing ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    outcome: str  # passed | failure | error | skipped
    props: dict[str, str]
    text: str

    @property
    def verdict(self) -> tuple[str, str, str]:
        return self.outcome, self.props.get("slo.verdict", "?"), self.props.get("slo.value", "?")


@dataclass(frozen=True)
class Run:
    ret: int
    cases: dict[str, Case]
    output: str


def parse_junit(path: Path) -> dict[str, Case]:
    cases = {}
    for element in ET.parse(path).getroot().iter("testcase"):
        props = {p.attrib["name"]: p.attrib["value"] for p in element.iter("property")}
        outcome, text = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = element.find(tag)
            if found is not None:
                outcome, text = tag, found.text or found.attrib.get("message", "")
        cases[element.attrib["name"]] = Case(outcome, props, text)
    return cases


def gate(pytester: pytest.Pytester, junit: str, *args: str) -> Run:
    path = pytester.path / junit
    result = pytester.runpytest(*QUIET, f"--junitxml={path}", *args)
    cases = parse_junit(path) if path.exists() else {}
    return Run(int(result.ret), cases, result.stdout.str() + result.stderr.str())


GRAPH_LINE = re.compile(r"\n  graph: \S+")


def unreplayed(case: Case, links: bool = True) -> Case:
    """``case`` with the one allowed difference of a replay taken out (and its links)."""
    props = {k: v.replace(REPLAYED, "") for k, v in case.props.items()}
    text = case.text.replace(REPLAYED, "")
    if not links:
        props = {k: GRAPH_LINE.sub("", v) for k, v in props.items() if k != "slo.link"}
        text = GRAPH_LINE.sub("", text)
    return Case(case.outcome, props, text)


def assert_same_run(recorded: Run, replayed: Run, *, links: bool = True) -> None:
    """Same exit code and testcases; same outcome, properties and text in each."""
    assert replayed.ret == recorded.ret, replayed.output
    assert set(replayed.cases) == set(recorded.cases)
    # Verdicts and values first, for a readable failure; then everything else.
    assert {n: c.verdict for n, c in replayed.cases.items()} == {
        n: c.verdict for n, c in recorded.cases.items()}
    differences = {}
    for name, recorded_case in recorded.cases.items():
        case = unreplayed(recorded_case, links)
        again = unreplayed(replayed.cases[name], links)
        for key in sorted(set(case.props) | set(again.props)):
            if case.props.get(key) != again.props.get(key):
                differences[f"{name} {key}"] = (case.props.get(key), again.props.get(key))
        if case.text != again.text:
            differences[f"{name} text"] = (case.text, again.text)
    assert differences == {}


def read_recording(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def answers(document: dict[str, Any]) -> list[str]:
    return sorted(json.dumps(a, sort_keys=True) for a in document["answers"])


# -- 1. SQLite: record, delete the database, replay ----------------------------------------


def test_sqlite_replay_without_the_database_gives_identical_verdicts(
        pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    assert recorded.ret == 1, recorded.output
    assert {n: c.verdict for n, c in recorded.cases.items()} == SQLITE_VERDICTS
    db.unlink()

    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert_same_run(recorded, replayed)
    for name, case in replayed.cases.items():
        assert case.props["slo.backend"] == f"events (sqlite, {db}{REPLAYED})", name
    assert "SQLite rejected the query: no such table: no_such_table" in (
        replayed.cases["broken[s]"].text)
    assert "database file not found" not in replayed.output


def test_sqlite_sustained_objective_replays(pytester: pytest.Pytester) -> None:
    # SQLite has no range queries: a sustained objective runs its query at every step, and
    # the recording holds those instant answers. The replay must ask for the same.
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester, SQLITE_SUSTAINED)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    assert {n: c.verdict for n, c in recorded.cases.items()} == {
        "held[s]": ("passed", "pass", "0 of 3 points outside")}
    db.unlink()
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert_same_run(recorded, replayed)


SQLITE_SHARED = """\
- name: everywhere
  matrix: {name: [fast, slow, none]}
  query: SELECT max(v) FROM req WHERE ts >= :window_start AND ts < :window_end
  max: 1s
"""


def test_a_query_shared_by_a_matrix_is_recorded_once_and_replays(
        pytester: pytest.Pytester) -> None:
    # The statement does not name :name, so the run sends it once for the three items and
    # records it once, with the first item's parameters; the replay answers all three.
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester, SQLITE_SHARED)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    assert {c.verdict for c in recorded.cases.values()} == {("failure", "fail", "2.5s")}
    assert len(recorded.cases) == 3
    document = read_recording(pytester.path / "rec.json")
    assert [a["params"]["name"] for a in document["answers"]] == ["fast"]
    db.unlink()
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert_same_run(recorded, replayed)


# -- 2. Prometheus: record against the real server, replay with no server ------------------


@pytest.fixture
def prometheus_recording(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                         prometheus_server: PrometheusServer) -> Run:
    pytester.makefile(".slo.yaml", gate=PROM_SPEC.format(
        objectives=textwrap.indent(PROM_OBJECTIVES, "  ")))
    monkeypatch.setenv("PROMETHEUS_URL", prometheus_server.url)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={FIXTURE_END}",
                    "--slo-record=rec.json")
    assert recorded.ret == 1, recorded.output
    assert {n: c.props["slo.verdict"] for n, c in recorded.cases.items()} == PROM_VERDICTS
    return recorded


@pytest.mark.parametrize("url", ["closed-port", "unset"])
def test_prometheus_replay_without_the_server_gives_identical_verdicts(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        prometheus_server: PrometheusServer, prometheus_recording: Run, url: str) -> None:
    if url == "unset":
        monkeypatch.delenv("PROMETHEUS_URL")
    else:
        monkeypatch.setenv("PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}")
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    for name, case in replayed.cases.items():
        assert case.props["slo.backend"] == (
            f"metrics (prometheus, {prometheus_server.url}{REPLAYED})"), name
    # Links apart (test_prometheus_replay_keeps_the_graph_link), everything is the same:
    # values, sustained points and their times, texts, the server's error message.
    assert_same_run(prometheus_recording, replayed, links=False)


def test_prometheus_replay_keeps_the_graph_link(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        prometheus_server: PrometheusServer, prometheus_recording: Run) -> None:
    monkeypatch.setenv("PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}")
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    links = {n: c.props.get("slo.link") for n, c in prometheus_recording.cases.items()}
    assert all(link and link.startswith(f"{prometheus_server.url}/graph?")
               for link in links.values()), links
    assert {n: c.props.get("slo.link") for n, c in replayed.cases.items()} == links


# -- 3. a query the recording does not hold ------------------------------------------------


def test_query_not_in_the_recording_is_an_error_naming_it(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    spec = sqlite_spec(pytester)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    db.unlink()
    text = spec.read_text(encoding="utf-8")
    # A threshold may change (same answers, new judgement); a query text may not.
    text = text.replace("ts < :window_end\n    max: 1s", "ts < :window_end\n    max: 100ms", 1)
    slow = "SELECT v FROM req WHERE name = 'slow' AND"
    text = text.replace(slow, slow.replace("SELECT v", "SELECT  v"))
    spec.write_text(text, encoding="utf-8")

    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert replayed.ret == 1, replayed.output
    assert replayed.cases["good[s]"].verdict == ("failure", "fail", "250ms")
    bad = replayed.cases["bad[s]"]
    assert bad.verdict == ("error", "error", "error")
    assert bad.text.startswith("bad[s] ERROR: the recording rec.json holds no answer to this "
                               "query at this time"), bad.text
    unchanged = set(recorded.cases) - {"good[s]", "bad[s]"}
    assert {n: replayed.cases[n].verdict for n in unchanged} == {
        n: recorded.cases[n].verdict for n in unchanged}


def test_replay_at_another_time_is_an_error_never_a_pass(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-at=2026-11-26T12:00:01Z",
                    "--slo-replay=rec.json")
    assert replayed.ret == 1
    assert {c.verdict for c in replayed.cases.values()} == {("error", "error", "error")}
    assert all("the recording rec.json holds no answer" in c.text
               for c in replayed.cases.values())


# -- 4. usage errors -----------------------------------------------------------------------


def test_replay_of_another_stage_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    result = pytester.runpytest(*QUIET, "--slo-stage=t", "--slo-replay=rec.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the recording rec.json is of stage 's', not 't'; "
                                 "replay it with --slo-stage=s*"])


def test_record_and_replay_together_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    result = pytester.runpytest(*QUIET, "--slo-stage=s", "--slo-replay=rec.json",
                                "--slo-record=again.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slo-record and --slo-replay exclude each other*"])
    assert not (pytester.path / "again.json").exists()


@pytest.mark.parametrize(("content", "message"), [
    pytest.param(None, "*cannot read the recording *rec.json*", id="missing"),
    pytest.param("{not json", "*cannot read the recording *rec.json*", id="bad-json"),
    pytest.param('{"answers": []}', "*rec.json is not a pytest-rollout-slo recording*",
                 id="no-format"),
    pytest.param("[1, 2]", "*rec.json is not a pytest-rollout-slo recording*", id="a-list"),
    pytest.param('{"format": "pytest-rollout-slo/recording", "version": 2, "stage": "s", '
                 '"at": 0, "backends": {}, "answers": []}',
                 "*rec.json is a recording of version 2; this plugin reads version 1*",
                 id="version-2"),
    pytest.param('{"format": "pytest-rollout-slo/recording", "version": 1}',
                 "*rec.json*", id="truncated"),
])
def test_a_file_that_is_not_a_recording_is_a_usage_error(
        pytester: pytest.Pytester, content: str | None, message: str) -> None:
    make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    if content is not None:
        (pytester.path / "rec.json").write_text(content, encoding="utf-8")
    result = pytester.runpytest(*QUIET, "--slo-stage=s", "--slo-replay=rec.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([message])


# -- 5. xdist: parts merged by the controller ----------------------------------------------


def test_xdist_recording_is_merged_and_replays_identically(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    single = gate(pytester, "one.xml", "--slo-stage=s", f"--slo-at={AT}",
                  "--slo-record=one.json")
    junit = pytester.path / "a.xml"
    result = pytester.runpytest_subprocess(
        *QUIET, "-p", "no:benchmark", "-n", "2", "--slo-stage=s", f"--slo-at={AT}",
        "--slo-record=rec.json", f"--junitxml={junit}", timeout=120)
    assert result.ret == 1, result.stdout.str()
    recorded = Run(int(result.ret), parse_junit(junit), result.stdout.str())
    assert {n: c.verdict for n, c in recorded.cases.items()} == SQLITE_VERDICTS
    assert sorted(p.name for p in pytester.path.glob("*rec.json*")) == ["rec.json"]
    merged, one = (read_recording(pytester.path / name) for name in ("rec.json", "one.json"))
    # One merged file holds what a single process records (in its own order).
    assert {k: v for k, v in merged.items() if k != "answers"} == {
        k: v for k, v in one.items() if k != "answers"}
    assert answers(merged) == answers(one)
    db.unlink()

    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert_same_run(recorded, replayed)
    assert_same_run(single, replayed)


# -- 6. secrets ----------------------------------------------------------------------------


def test_recording_holds_no_secret(pytester: pytest.Pytester,
                                   prometheus_server: PrometheusServer) -> None:
    port = prometheus_server.url.rsplit(":", 1)[1]
    pytester.makefile(".slo.yaml", gate=textwrap.dedent(f"""\
        version: 1
        service: secrets
        backends:
          token:
            type: prometheus
            url: {prometheus_server.url}
            bearer_token: s3cr3t-token
          userinfo:
            type: prometheus
            url: http://user:pa55@127.0.0.1:{port}
            parse_promql: false  # its broken query must reach the server
          down:
            type: prometheus
            url: http://user:pa55@127.0.0.1:{free_port()}
        variables:
          window: 10m
        stages:
          s: {{}}
        objectives:
          - name: with_token
            backend: token
            query: sum(rate(slo_test_requests_total[10m]))
            min: 0
          - name: with_userinfo
            backend: userinfo
            query: sum(rate(slo_test_requests_total[10m]))
            min: 0
          - name: broken_with_userinfo
            backend: userinfo
            query: sum(rate(slo_test_requests_total[5m])
            max: 1
          - name: unreachable_with_userinfo
            backend: down
            query: sum(rate(slo_test_requests_total[10m]))
            min: 0
          - name: sustained_with_token
            backend: token
            query: sum(rate(slo_test_requests_total[10m]))
            min: 0
            sustained: {{over: 1h, step: 10m, max_violations: 0}}
        """))
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={FIXTURE_END}",
                    "--slo-record=rec.json")
    assert {n: c.props["slo.verdict"] for n, c in recorded.cases.items()} == {
        "with_token[s]": "pass", "with_userinfo[s]": "pass", "broken_with_userinfo[s]": "error",
        "unreachable_with_userinfo[s]": "error", "sustained_with_token[s]": "pass"
    }, recorded.output
    text = (pytester.path / "rec.json").read_text(encoding="utf-8")
    for secret in ("s3cr3t-token", "pa55", base64.b64encode(b"user:pa55").decode()):
        assert secret not in text
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert {n: c.verdict for n, c in replayed.cases.items()} == {
        n: c.verdict for n, c in recorded.cases.items()}


# -- 7. the evaluation time ----------------------------------------------------------------


def test_replay_evaluates_at_the_recorded_time(pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    assert read_recording(pytester.path / "rec.json")["at"] == AT_UNIX
    db.unlink()
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert {c.props["slo.at"] for c in recorded.cases.values()} == {AT}
    assert {c.props["slo.at"] for c in replayed.cases.values()} == {AT}
    # The same time given explicitly (as unix seconds) replays the same.
    explicit = gate(pytester, "c.xml", "--slo-stage=s", f"--slo-at={AT_UNIX}",
                    "--slo-replay=rec.json")
    assert_same_run(recorded, explicit)


def test_recording_without_slo_at_replays_at_the_session_time(
        pytester: pytest.Pytester) -> None:
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    recorded = gate(pytester, "a.xml", "--slo-stage=s", "--slo-record=rec.json")
    at = read_recording(pytester.path / "rec.json")["at"]
    assert isinstance(at, float)
    db.unlink()
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert_same_run(recorded, replayed)


def test_a_part_left_by_an_earlier_run_does_not_change_the_recording(
        pytester: pytest.Pytester) -> None:
    # An xdist run that was killed before its controller merged leaves PATH.gw<n> behind.
    db = make_db(pytester.path / "events.db")
    sqlite_spec(pytester)
    (pytester.path / "rec.json.gw3").write_text(json.dumps({
        "format": "pytest-rollout-slo/recording", "version": 1, "stage": "t", "at": 1.0,
        "backends": {"old::metrics": "prometheus, http://old:9090"},
        "answers": [{"backend": "old::metrics", "kind": "instant", "query": "up", "time": [1.0],
                     "params": {}, "result": {"samples": [[{}, 1.0]], "warnings": []},
                     "link": None}]}), encoding="utf-8")
    recorded = gate(pytester, "a.xml", "--slo-stage=s", f"--slo-at={AT}", "--slo-record=rec.json")
    document = read_recording(pytester.path / "rec.json")
    assert (document["stage"], document["at"]) == ("s", AT_UNIX)
    assert list(document["backends"]) == ["slo_specs::events"]
    db.unlink()
    replayed = gate(pytester, "b.xml", "--slo-stage=s", "--slo-replay=rec.json")
    assert_same_run(recorded, replayed)
