"""End-to-end tests of development flags (Features API), stickiness, and when a rollback may act.

Same setting as test_plugin_flags_e2e.py, whose helpers this module uses: an in-process
pytester run over a SQLite events database, ``responses`` standing in for GitLab with the
documented bodies. A rollback must follow only a checked, whole run whose failed verdicts
the spec rolls back on; every test asserts the writes that were (not) sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qsl

import pytest
import responses
from specdata import AT, ERROR_RATE
from test_plugin_flags_e2e import (
    API,
    FLAG_URL,
    GREEN,
    LATENCY,
    RED,
    TOKEN,
    _flag,
    _strategy,
    lit,
    make_db,
    methods,
    run,
    write_spec,
)

pytest_plugins = ["pytester"]

FEATURES = f"{API}/features"
SET = f"{API}/features/conflict_resolver"

DEV_STAGES = """\
stages:
  internal:
    rollout: {api: features, flag: conflict_resolver, feature_group: gitlab_team_members}
  beta-10:
    rollout: {api: features, flag: conflict_resolver, percent: 10}
  beta-25:
    rollout: {api: features, flag: conflict_resolver, percent: 25%}
  ga:
    rollout: {api: features, flag: conflict_resolver, all: true}
"""

BROKEN = """\
- name: broken_query
  query: SELECT value FROM no_such_table
  max: 1
"""


def feature(state: str, *gates: tuple[str, object], boolean: bool = False) -> dict[str, object]:
    return {"name": "conflict_resolver", "state": state,
            "gates": [{"key": "boolean", "value": boolean},
                      *({"key": k, "value": v} for k, v in gates)],
            "definition": None}


TEAM = ("groups", ["gitlab_team_members"])
DEV_INTERNAL = feature("conditional", TEAM)
DEV_25 = feature("conditional", TEAM, ("percentage_of_actors", 25))
DEV_10 = feature("conditional", TEAM, ("percentage_of_actors", 10))
DEV_OFF = feature("off")


@pytest.fixture(autouse=True)
def gitlab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLO_GITLAB_TOKEN", TOKEN)
    monkeypatch.setenv("CI_API_V4_URL", API)
    monkeypatch.delenv("CI_PROJECT_ID", raising=False)  # development flags need no project


@pytest.fixture
def gitlab() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def dev_gate(pytester: pytest.Pytester, data: tuple[int, int], *objectives: str,
             extra: str = "") -> None:
    make_db(pytester.path / "events.db", data)
    write_spec(pytester, *objectives, stages=DEV_STAGES + extra)


def posted(mock: responses.RequestsMock) -> list[dict[str, str]]:
    return [dict(parse_qsl(str(c.request.body))) for c in mock.calls if c.request.method == "POST"]


# -- development feature flags ------------------------------------------------------------


def test_development_flag_at_the_stage_lets_the_gate_run(pytester: pytest.Pytester,
                                                         gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, GREEN)
    gitlab.get(FEATURES, json=[DEV_25])
    result = run(pytester, "beta-25", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.OK
    assert methods(gitlab) == [f"GET {FEATURES}"]


def test_development_flag_elsewhere_is_a_usage_error_in_chatops_words(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, RED)
    gitlab.get(FEATURES, json=[DEV_10])
    result = run(pytester, "beta-25", "--slo-rollback")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert methods(gitlab) == [f"GET {FEATURES}"]  # refused after the mismatch: no write
    result.stderr.fnmatch_lines([
        "ERROR: development feature flag conflict_resolver on * does not match the rollout the "
        "stage gates: conflict_resolver is conditional: 10% of users (percentage_of_actors), "
        "as `feature set conflict_resolver 10 --actors`; feature group gitlab_team_members, but "
        "stage beta-25 expects 25% of users (percentage_of_actors). Set it with `/chatops run "
        "feature set conflict_resolver 25 --actors` *"])


def test_red_development_stage_rolls_back_by_post(pytester: pytest.Pytester,
                                                  gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, RED)
    gitlab.get(FEATURES, json=[DEV_25])
    gitlab.post(SET, json=DEV_10)
    result = run(pytester, "beta-25", "--slo-rollback")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert posted(gitlab) == [{"value": "10", "key": "percentage_of_actors"}]
    result.stdout.fnmatch_lines([
        "*= SLO feature flag =*",
        "rollback: Rolled development feature flag conflict_resolver back to 10% of users "
        "(percentage_of_actors) (stage beta-10) on *"], consecutive=True)


def test_red_internal_stage_turns_the_development_flag_off(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, RED)
    gitlab.get(FEATURES, json=[DEV_INTERNAL])
    gitlab.post(SET, json=DEV_OFF)
    result = run(pytester, "internal", "--slo-rollback")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert posted(gitlab) == [{"value": "false"}]
    result.stdout.fnmatch_lines(["rollback: Turned development feature flag conflict_resolver "
                                 "off on *"])


def test_non_admin_token_is_a_usage_error_saying_so(pytester: pytest.Pytester,
                                                    gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, GREEN)
    gitlab.get(FEATURES, status=403, json={"message": "403 Forbidden"})
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cannot check feature flag: the token may not read "
                                 "development feature flags (*403 Forbidden): it is not an "
                                 "administrator's token; *"])


# -- when a rollback may act ------------------------------------------------------------


def test_partial_run_never_rolls_back(pytester: pytest.Pytester,
                                      gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, RED, ERROR_RATE, LATENCY)
    gitlab.get(FEATURES, json=[DEV_25])
    result = run(pytester, "beta-25", "--slo-rollback", "-k", "error_rate")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert posted(gitlab) == []
    result.stdout.fnmatch_lines([
        "rollback: not done: a partial run: 1 of the 2 objectives of stage beta-25 were "
        "judged (narrowed by -k, -m, --lf or node ids, or stopped by -x or --maxfail); only a "
        "run of the whole stage rolls its flag back"])


def test_error_verdict_does_not_roll_back_without_rollback_on(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    dev_gate(pytester, GREEN, ERROR_RATE, BROKEN)
    gitlab.get(FEATURES, json=[DEV_25])
    result = run(pytester, "beta-25", "--slo-rollback", "--slo-report-md=slo.md")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert posted(gitlab) == []
    why = ("rollback: not done for flag conflict_resolver: the failed objectives are error (1), "
           "and flags.yaml rolls back on fail only (rollback_on: [fail]); an outage or missing "
           "data is not a breach")
    result.stdout.fnmatch_lines([lit(why)])
    markdown = (pytester.path / "slo.md").read_text(encoding="utf-8")
    assert "**Feature flag**\n\n- rollback: not done for flag conflict_resolver:" in markdown


def test_rollback_on_error_at_the_stage_rolls_back(pytester: pytest.Pytester,
                                                   gitlab: responses.RequestsMock) -> None:
    stages = DEV_STAGES.replace("percent: 25%}\n",
                                "percent: 25%}\n    rollback_on: [fail, error]\n")
    make_db(pytester.path / "events.db", GREEN)
    write_spec(pytester, ERROR_RATE, BROKEN, stages=stages)
    gitlab.get(FEATURES, json=[DEV_25])
    gitlab.post(SET, json=DEV_10)
    result = run(pytester, "beta-25", "--slo-rollback")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert posted(gitlab) == [{"value": "10", "key": "percentage_of_actors"}]


# -- project flags: stickiness ------------------------------------------------------------


def test_project_flag_stickiness_random_is_requests_not_users(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_PROJECT_ID", "42")
    make_db(pytester.path / "events.db", GREEN)
    random = _strategy(11, "flexibleRollout",
                       {"groupId": "default", "rollout": "10", "stickiness": "random"},
                       "production")
    write_spec(pytester, stages="stages:\n  beta-10:\n    rollout: {flag: conflict_resolver, "
                                "percent: 10}\n  beta-10r:\n    rollout: {flag: "
                                "conflict_resolver, percent: 10, of: requests}\n")
    gitlab.get(FLAG_URL, json=_flag(random))
    result = run(pytester, "beta-10", "--slo-check-flag")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([lit(
        "ERROR: feature flag conflict_resolver does not match the rollout the stage gates: "
        "the flag is at 10% of requests (flexibleRollout, stickiness random, in production) "
        "but stage beta-10 expects 10% in production.") + "*"])
    gitlab.get(FLAG_URL, json=_flag(random))
    assert run(pytester, "beta-10r", "--slo-check-flag").ret == pytest.ExitCode.OK


def test_project_rollback_still_needs_the_project(pytester: pytest.Pytester,
                                                  gitlab: responses.RequestsMock) -> None:
    make_db(pytester.path / "events.db", RED)
    write_spec(pytester, stages="stages:\n  beta-25:\n    rollout: {flag: conflict_resolver, "
                                "percent: 25}\n")
    result = run(pytester, "beta-25", "--slo-rollback")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(gitlab.calls) == 0
    result.stderr.fnmatch_lines(["ERROR: feature-flag check and rollback of a project flag need "
                                 "the project (--slo-gitlab-project, *"])


# -- under pytest-xdist: the workers collect and check, the controller decides ------------


class _FakeFeatures(BaseHTTPRequestHandler):
    """GitLab's Features API on loopback, for runs in other processes than the test's."""

    posts: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self._answer([DEV_25] if self.path == "/api/v4/features" else None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).posts.append(dict(parse_qsl(self.rfile.read(length).decode())))
        self._answer(DEV_10 if self.path == "/api/v4/features/conflict_resolver" else None)

    def _answer(self, body: object) -> None:
        data = json.dumps(body if body is not None else {"message": "404 Not Found"}).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_gitlab() -> Iterator[str]:
    _FakeFeatures.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeFeatures)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("narrow", "posts"), [
    ((), [{"value": "10", "key": "percentage_of_actors"}]),
    (("-k", "error_rate"), []),
], ids=["whole", "partial"])
def test_xdist_run_rolls_back_only_when_whole(pytester: pytest.Pytester, loopback_gitlab: str,
                                              narrow: tuple[str, ...],
                                              posts: list[dict[str, str]]) -> None:
    dev_gate(pytester, RED, ERROR_RATE, LATENCY)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-n", "2",
        "--slo-stage=beta-25", f"--slo-at={AT}", "--slo-rollback",
        f"--slo-gitlab-url={loopback_gitlab}", *narrow)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _FakeFeatures.posts == posts
    line = "rollback: Rolled *" if posts else "rollback: not done: a partial run: 1 of the 2 *"
    result.stdout.fnmatch_lines([line])
