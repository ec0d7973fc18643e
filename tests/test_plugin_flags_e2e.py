"""End-to-end tests of the feature-flag check, the rollback and the outcome hooks.

Each test writes a SQLite events database and a spec whose stages declare ``rollout:``, runs
pytest in-process through ``pytester`` while ``responses`` stands in for the GitLab API
(bodies in the documented shapes, as in test_gitlab.py), and asserts exit codes, output lines,
the HTTP calls made and that the token never shows.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import responses
from specdata import AT, AT_UNIX, ERROR_RATE, QUIET_SKIP

pytest_plugins = ["pytester"]

TOKEN = "glpat-E2e5eCr3t-fl4gT0ken_q"
API = "https://gitlab.example.com/api/v4"
FLAG_URL = f"{API}/projects/42/feature_flags/conflict_resolver"
SPEC = "slo_specs/flags.yaml"

STAGES = """\
stages:
  smoke: {}
  internal:
    rollout: {flag: conflict_resolver, users: internal}
  beta-10:
    rollout: {flag: conflict_resolver, percent: 10}
  beta-25:
    rollout: {flag: conflict_resolver, percent: 25%}
  ga:
    rollout: {flag: conflict_resolver, all: true}
"""

LATENCY = """\
- name: latency_p95
  query: SELECT 0.25
  max: 1s
"""

GREEN = (10, 1000)  # 1.00% errors, under max 5%
RED = (62, 1000)  # 6.20% errors

# -- GitLab answers, in the shapes GitLab documents for GET/PUT feature_flags/:name ----------

INTERNAL_LIST = {"id": 7, "iid": 1, "name": "internal", "user_xids": "1,15,27,311"}


def _strategy(sid: int, name: str, parameters: dict[str, str], *scopes: str,
              user_list: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": sid, "name": name, "parameters": parameters,
            "scopes": [{"id": 100 + sid * 10 + i, "environment_scope": e}
                       for i, e in enumerate(scopes)],
            "user_list": user_list}


def _flag(*strategies: dict[str, Any], active: bool = True) -> dict[str, Any]:
    return {"name": "conflict_resolver", "description": "Conflict Resolver agent",
            "active": active, "version": "new_version_flag",
            "created_at": "2026-11-20T09:14:03.312Z", "updated_at": "2026-11-24T16:02:55.781Z",
            "scopes": [], "strategies": list(strategies)}


def _percent(percent: str, sid: int = 11) -> dict[str, Any]:
    return _strategy(sid, "flexibleRollout",
                     {"groupId": "default", "rollout": percent, "stickiness": "default"},
                     "production")


_LIST = _strategy(12, "gitlabUserList", {}, "production", user_list=INTERNAL_LIST)
FLAG_INTERNAL = _flag(_LIST)
FLAG_BETA_10 = _flag(_percent("10", sid=15), _LIST)
FLAG_BETA_25 = _flag(_percent("25"), _LIST, _strategy(13, "default", {}, "staging"))
FLAG_GA = _flag(_strategy(14, "default", {}, "*"))

# -- helpers ------------------------------------------------------------------------------


def make_db(path: Path, errors_requests: tuple[int, int]) -> None:
    """An events database with ``(errors, requests)`` of the feature a minute before AT."""
    errors, requests_ = errors_requests
    rows = [(AT_UNIX - 60.0, "conflict_resolver", "eu", "error" if i < errors else "ok")
            for i in range(requests_)]
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE req (ts REAL, feature TEXT, region TEXT, outcome TEXT)")
        db.executemany("INSERT INTO req VALUES (?, ?, ?, ?)", rows)
        db.commit()


def write_spec(pytester: pytest.Pytester, *objectives: str, stages: str = STAGES) -> Path:
    body = "".join(textwrap.indent(o, "  ") for o in objectives or (ERROR_RATE,))
    text = ("version: 1\nservice: conflict-resolver\nbackends:\n  events:\n    type: sqlite\n"
            "    path: ../events.db\nvariables:\n  feature: conflict_resolver\n  window: 1h\n"
            f"{stages}objectives:\n{body}")
    target = pytester.path / SPEC
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def gate(pytester: pytest.Pytester, data: tuple[int, int], *objectives: str) -> None:
    make_db(pytester.path / "events.db", data)
    write_spec(pytester, *objectives)


def run(pytester: pytest.Pytester, stage: str, *args: str) -> pytest.RunResult:
    """Run in-process (so ``responses`` sees the plugin's calls); the token must never show."""
    junit = pytester.path / "slo.xml"
    junit.unlink(missing_ok=True)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                f"--slo-stage={stage}", f"--slo-at={AT}", f"--junitxml={junit}",
                                *args)
    shown = {"stdout": result.stdout.str(), "stderr": result.stderr.str(),
             "junit": junit.read_text(encoding="utf-8") if junit.exists() else ""}
    assert {where: TOKEN in text for where, text in shown.items()} == dict.fromkeys(shown, False)
    return result


def lit(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself."""
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def methods(mock: responses.RequestsMock) -> list[str]:
    return [f"{call.request.method} {call.request.url}" for call in mock.calls]


def sent(mock: responses.RequestsMock, index: int) -> Any:
    body = mock.calls[index].request.body
    assert body is not None
    return json.loads(body)


@pytest.fixture(autouse=True)
def gitlab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLO_GITLAB_TOKEN", TOKEN)
    monkeypatch.setenv("CI_API_V4_URL", API)
    monkeypatch.setenv("CI_PROJECT_ID", "42")


@pytest.fixture
def gitlab() -> Iterator[responses.RequestsMock]:
    """The fake GitLab; a call nobody registered fails the plugin's request."""
    with responses.RequestsMock() as mock:
        yield mock


# -- the check before evaluating ------------------------------------------------------------


@pytest.mark.parametrize(("stage", "answer"), [
    ("internal", FLAG_INTERNAL), ("beta-10", FLAG_BETA_10), ("beta-25", FLAG_BETA_25),
    ("ga", FLAG_GA),
])
@pytest.mark.parametrize(("data", "exit_code"), [(GREEN, pytest.ExitCode.OK),
                                                  (RED, pytest.ExitCode.TESTS_FAILED)],
                         ids=["green", "red"])
def test_flag_at_the_stage_lets_the_gate_run(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock, stage: str,
        answer: dict[str, Any], data: tuple[int, int], exit_code: pytest.ExitCode) -> None:
    gate(pytester, data)
    gitlab.get(FLAG_URL, json=answer)
    result = run(pytester, stage, "--slo-check-flag")
    assert result.ret == exit_code
    assert result.parseoutcomes() == {"passed" if exit_code == 0 else "failed": 1}
    assert methods(gitlab) == [f"GET {FLAG_URL}"]
    assert gitlab.calls[0].request.headers["PRIVATE-TOKEN"] == TOKEN


def test_options_beat_the_ci_variables(pytester: pytest.Pytester,
                                       gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    url = "https://gitlab.other.example/api/v4/projects/group%2Fapp/feature_flags/conflict_resolver"
    gitlab.get(url, json=FLAG_BETA_10)
    result = run(pytester, "beta-10", "--slo-check-flag",
                 "--slo-gitlab-url=https://gitlab.other.example",
                 "--slo-gitlab-project=group/app")
    assert result.ret == pytest.ExitCode.OK
    assert methods(gitlab) == [f"GET {url}"]


def test_flag_at_another_percent_is_a_usage_error_saying_where_it_is(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(FLAG_URL, json=FLAG_BETA_25)
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: feature flag conflict_resolver does not match the rollout the stage gates: "
        "*25%*but stage beta-10 expects 10% in production*"
        + lit("GitLab reports conflict_resolver: active, flexibleRollout 25% (stickiness "
              "default) in production") + "*"])
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()
    assert len(gitlab.calls) == 1


def test_inactive_flag_is_a_usage_error(pytester: pytest.Pytester,
                                        gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(FLAG_URL, json={**FLAG_BETA_10, "active": False})
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: feature flag conflict_resolver does not match*"
                                 "inactive*stage beta-10 expects 10% in production*"])


def test_missing_flag_is_a_usage_error_naming_it(pytester: pytest.Pytester,
                                                 gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(FLAG_URL, status=404, json={"message": "404 Not found"})
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cannot check feature flag: feature flag "
                                 "'conflict_resolver' does not exist in project 42*"])


def test_forbidden_is_a_usage_error_naming_the_permission(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    # A proxy that echoes the request's token back must not get it printed.
    gitlab.get(FLAG_URL, status=403, json={"message": f"403 Forbidden for {TOKEN}"})
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cannot check feature flag: the token may not read "
                                 "feature flags of project 42*read_api (or api) scope and at "
                                 "least the Developer role*"])


def test_missing_token_is_a_usage_error_before_any_call(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLO_GITLAB_TOKEN")
    gate(pytester, GREEN)
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *$SLO_GITLAB_TOKEN*"])
    assert len(gitlab.calls) == 0


def test_token_variable_is_set_by_the_ini_key(pytester: pytest.Pytester,
                                             gitlab: responses.RequestsMock,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLO_GITLAB_TOKEN")
    monkeypatch.delenv("FLAGS_TOKEN", raising=False)
    pytester.makeini("[pytest]\nslo_gitlab_token_env = FLAGS_TOKEN\n")
    gate(pytester, GREEN)
    missing = run(pytester, "beta-10", "--slo-check-flag")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["ERROR: *$FLAGS_TOKEN*"])
    assert len(gitlab.calls) == 0
    monkeypatch.setenv("FLAGS_TOKEN", TOKEN)
    gitlab.get(FLAG_URL, json=FLAG_BETA_10)
    assert run(pytester, "beta-10", "--slo-check-flag").ret == pytest.ExitCode.OK
    assert gitlab.calls[0].request.headers["PRIVATE-TOKEN"] == TOKEN


def test_collect_only_makes_no_call(pytester: pytest.Pytester,
                                    gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    result = run(pytester, "beta-10", "--slo-check-flag", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([lit(f"{SPEC}::error_rate[beta-10]")])
    assert len(gitlab.calls) == 0


def test_stage_without_rollout_is_a_usage_error(pytester: pytest.Pytester,
                                                gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    result = run(pytester, "smoke", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --slo-check-flag: stage 'smoke' declares no*rollout*"])
    assert len(gitlab.calls) == 0


# -- rollback after a red gate ------------------------------------------------------------


def test_red_beta_25_rolls_back_to_beta_10(pytester: pytest.Pytester,
                                           gitlab: responses.RequestsMock) -> None:
    gate(pytester, RED)
    gitlab.get(FLAG_URL, json=FLAG_BETA_25)
    gitlab.put(FLAG_URL, json=_flag(_percent("10", sid=16), *FLAG_BETA_25["strategies"][1:]))
    result = run(pytester, "beta-25", "--slo-check-flag", "--slo-rollback")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert methods(gitlab) == [f"GET {FLAG_URL}", f"GET {FLAG_URL}", f"PUT {FLAG_URL}"]
    assert sent(gitlab, 2) == {"strategies": [
        {"id": 11, "_destroy": True},
        {"name": "flexibleRollout",
         "parameters": {"groupId": "default", "rollout": "10", "stickiness": "default"},
         "scopes": [{"environment_scope": "production"}]},
    ]}
    result.stdout.fnmatch_lines([
        "*= SLO feature flag =*",
        lit("rollback: Rolled feature flag conflict_resolver back to 10% in production "
            "(stage beta-10): removed flexibleRollout 25% (stickiness default) in production;")
        + "*",
    ], consecutive=True)
    result.stdout.fnmatch_lines(["*1 failed*"])


def test_red_first_stage_disables_the_flag(pytester: pytest.Pytester,
                                           gitlab: responses.RequestsMock) -> None:
    gate(pytester, RED)
    gitlab.get(FLAG_URL, json=FLAG_INTERNAL)
    gitlab.put(FLAG_URL, json={**FLAG_INTERNAL, "active": False})
    result = run(pytester, "internal", "--slo-rollback")  # implies --slo-check-flag
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert methods(gitlab) == [f"GET {FLAG_URL}", f"GET {FLAG_URL}", f"PUT {FLAG_URL}"]
    assert sent(gitlab, 2) == {"active": False}
    result.stdout.fnmatch_lines(["*= SLO feature flag =*",
                                 "rollback: Disabled feature flag conflict_resolver in "
                                 "project 42 *"], consecutive=True)


def test_green_gate_changes_nothing(pytester: pytest.Pytester,
                                    gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(FLAG_URL, json=FLAG_BETA_25)
    result = run(pytester, "beta-25", "--slo-rollback")
    assert result.ret == pytest.ExitCode.OK
    assert methods(gitlab) == [f"GET {FLAG_URL}"]  # the check --slo-rollback implies
    result.stdout.fnmatch_lines(["*= SLO feature flag =*",
                                 "rollback: stage beta-25 is green; the flag is left as it is"],
                                consecutive=True)
    result.stdout.no_fnmatch_line("*Rolled*")
    result.stdout.no_fnmatch_line("*Disabled*")


def test_failed_rollback_is_reported_and_the_gate_stays_red(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    gate(pytester, RED)
    gitlab.get(FLAG_URL, json=FLAG_BETA_25)
    gitlab.put(FLAG_URL, status=500,
               json={"message": f"500 Internal Server Error (token {TOKEN})"})
    result = run(pytester, "beta-25", "--slo-rollback")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The check, the rollback's own read, and the PUT, which is never retried.
    assert methods(gitlab) == [f"GET {FLAG_URL}", f"GET {FLAG_URL}", f"PUT {FLAG_URL}"]
    result.stdout.fnmatch_lines([
        "*= SLO feature flag =*",
        "rollback FAILED, the flag may still be at stage beta-25: GitLab failed on "
        f"PUT {FLAG_URL} (500 Internal Server Error*",
    ], consecutive=True)


# -- the outcome hooks --------------------------------------------------------------------


HOOKS_CONFTEST = """\
from __future__ import annotations

import json
from pathlib import Path

LOG = Path(__file__).parent / "hooks.jsonl"


def _log(**entry):
    with LOG.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\\n")


def pytest_slo_verdict(item, verdict):
    _log(hook="verdict", nodeid=item.nodeid, verdict=verdict)


def pytest_slo_stage_finished(session, stage, verdicts, passed):
    _log(hook="stage_finished", stage=stage, verdicts=dict(verdicts), passed=passed,
         worker=hasattr(session.config, "workerinput"))
"""


def hook_calls(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "hooks.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def node(name: str, stage: str) -> str:
    return f"{SPEC}::{name}[{stage}]"


@pytest.mark.parametrize(("data", "verdicts", "exit_code"), [
    (GREEN, {"error_rate": "pass", "latency_p95": "pass", "quiet_region": "no_data"},
     pytest.ExitCode.OK),
    (RED, {"error_rate": "fail", "latency_p95": "pass", "quiet_region": "no_data"},
     pytest.ExitCode.TESTS_FAILED),
], ids=["green", "red"])
def test_hooks_see_each_verdict_and_the_stage_outcome(
        pytester: pytest.Pytester, data: tuple[int, int], verdicts: Mapping[str, str],
        exit_code: pytest.ExitCode) -> None:
    gate(pytester, data, ERROR_RATE, LATENCY, QUIET_SKIP)
    pytester.makeconftest(HOOKS_CONFTEST)
    result = run(pytester, "beta-10")
    assert result.ret == exit_code
    by_node = {node(name, "beta-10"): verdict for name, verdict in verdicts.items()}
    calls = hook_calls(pytester)
    assert sorted((c["nodeid"], c["verdict"]) for c in calls if c["hook"] == "verdict") == \
        sorted(by_node.items())
    assert [c for c in calls if c["hook"] == "stage_finished"] == [
        {"hook": "stage_finished", "stage": "beta-10", "verdicts": by_node,
         "passed": exit_code == pytest.ExitCode.OK, "worker": False}]


def test_stage_finished_runs_once_on_the_xdist_controller(pytester: pytest.Pytester) -> None:
    gate(pytester, RED, ERROR_RATE, LATENCY, QUIET_SKIP)
    pytester.makeconftest(HOOKS_CONFTEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                           "-p", "no:benchmark", "-n", "2",
                                           "--slo-stage=beta-10", f"--slo-at={AT}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"failed": 1, "passed": 1, "skipped": 1}
    calls = hook_calls(pytester)
    by_node = {node("error_rate", "beta-10"): "fail", node("latency_p95", "beta-10"): "pass",
               node("quiet_region", "beta-10"): "no_data"}
    assert sorted((c["nodeid"], c["verdict"]) for c in calls if c["hook"] == "verdict") == \
        sorted(by_node.items())
    assert [c for c in calls if c["hook"] == "stage_finished"] == [
        {"hook": "stage_finished", "stage": "beta-10", "verdicts": by_node, "passed": False,
         "worker": False}]


# -- spec errors in rollout: ----------------------------------------------------------------


@pytest.mark.parametrize(("rollout", "marker", "key", "message"), [
    pytest.param("flag: conflict_resolver\npercent: 10\nstage: beta\n", "stage: beta",
                 "stages.beta-10.rollout.stage",
                 "unknown key; accepted keys here: api, flag, percent, of, users, all, "
                 "environment, actors, feature_group",
                 id="unknown-key"),
    pytest.param("flag: conflict_resolver\npercent: 10\nusers: internal\n",
                 "flag: conflict_resolver", "stages.beta-10.rollout",
                 "give exactly one of percent*users*all: true", id="percent-and-users"),
    pytest.param("flag: conflict_resolver\npercent: 120\n", "percent: 120",
                 "stages.beta-10.rollout.percent",
                 "must be a share of users from 0 to 100*got 120", id="percent-120"),
    pytest.param("flag: conflict_resolver\nall: false\n", "all: false",
                 "stages.beta-10.rollout.all", "must be true*", id="all-false"),
    pytest.param("percent: 10\n", "percent: 10", "stages.beta-10.rollout.flag",
                 "is required but missing", id="missing-flag"),
    pytest.param("api: unleash\nflag: conflict_resolver\npercent: 10\n", "api: unleash",
                 "stages.beta-10.rollout.api", "got 'unleash'; accepted: features (GitLab's "
                 "development feature flags*", id="api-unknown"),
    pytest.param("flag: conflict_resolver\nactors: [User:1]\n", "actors: [User:1]",
                 "stages.beta-10.rollout.actors", "actors are Flipper gates of GitLab's "
                 "development feature flags; add api: features*", id="actors-of-project-flag"),
    pytest.param("api: features\nflag: conflict_resolver\npercent: 10\nenvironment: staging\n",
                 "environment: staging", "stages.beta-10.rollout.environment",
                 "the Features API has no environments*", id="features-environment"),
    pytest.param("api: features\nflag: conflict_resolver\npercent: 10\nof: sessions\n",
                 "of: sessions", "stages.beta-10.rollout.of",
                 "got 'sessions'; with api: features a percentage is of users or requests",
                 id="features-sessions"),
    pytest.param("api: features\nflag: conflict_resolver\nactors: [alice]\n",
                 "actors: [alice]", "stages.beta-10.rollout.actors",
                 "must be a list of Flipper actor ids as GET /features shows them*",
                 id="actor-not-an-id"),
    pytest.param("api: features\nflag: conflict_resolver\n", "api: features",
                 "stages.beta-10.rollout", "with api: features give percent*", id="no-gate"),
])
def test_rollout_spec_error_names_file_line_and_key(
        pytester: pytest.Pytester, rollout: str, marker: str, key: str, message: str) -> None:
    stages = ("stages:\n  internal:\n    rollout: {flag: conflict_resolver, users: internal}\n"
              "  beta-10:\n    rollout:\n" + textwrap.indent(rollout, "      "))
    spec = write_spec(pytester, stages=stages)  # no database: collection must not need one
    line = next(i for i, text in enumerate(spec.read_text(encoding="utf-8").splitlines(), 1)
                if text.strip() == marker)
    result = run(pytester, "beta-10")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*ERROR collecting {SPEC}*",
                                 f"*{SPEC}:{line}: {key}: {message}"])
    assert result.parseoutcomes() == {"errors": 1}
