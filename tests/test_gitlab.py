"""Unit tests of the GitLab feature-flag module against a fake API (``responses``).

The bodies below follow the shapes the GitLab REST API v4 documents for
``GET/PUT /projects/:id/feature_flags/:name`` (``version: new_version_flag``) and
``GET /projects/:id/feature_flags_user_lists``: a check that passes on a flag at the wrong
stage, or a rollback that sends the wrong strategies, would let a rollout go on unguarded.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import requests
import responses

from pytest_rollout_slo.errors import SloError
from pytest_rollout_slo.flags.gitlab import (
    GitLabError,
    GitLabFlags,
    GitLabNotFoundError,
    GitLabPermissionError,
)
from pytest_rollout_slo.flags.model import (
    FlagState,
    RolloutExpectation,
    Strategy,
    UserList,
    mismatch,
)

ROOT = "https://gitlab.example.com"
TOKEN = "glpat-Xy9SeCrEt-t0ken_abc"
PROJECT = 42
FLAG_URL = f"{ROOT}/api/v4/projects/42/feature_flags/conflict_resolver"
LISTS_URL = f"{ROOT}/api/v4/projects/42/feature_flags_user_lists"

INTERNAL = {"id": 7, "iid": 1, "project_id": 42, "name": "internal",
            "user_xids": "1,15,27,311", "created_at": "2026-11-20T09:12:41.017Z",
            "updated_at": "2026-11-20T09:12:41.017Z"}


def strategy(sid: int, name: str, parameters: dict[str, str], *scopes: str,
             user_list: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sid, "name": name, "parameters": parameters,
        "scopes": [{"id": 100 + sid * 10 + i, "environment_scope": e}
                   for i, e in enumerate(scopes)],
        "user_list": None,
    }
    if user_list is not None:
        body["user_list"] = {k: user_list[k] for k in ("id", "iid", "name", "user_xids")}
    return body


def flag(*strategies: dict[str, Any], active: bool = True) -> dict[str, Any]:
    return {"name": "conflict_resolver", "description": "Conflict Resolver agent",
            "active": active, "version": "new_version_flag",
            "created_at": "2026-11-20T09:14:03.312Z", "updated_at": "2026-11-24T16:02:55.781Z",
            "scopes": [], "strategies": list(strategies)}


def rollout(percent: str, *scopes: str, sid: int = 11, stickiness: str = "default",
            group: str = "default") -> dict[str, Any]:
    return strategy(sid, "flexibleRollout",
                    {"groupId": group, "rollout": percent, "stickiness": stickiness}, *scopes)


# What GitLab answers for the rollout plan's stages, recorded in the documented shapes.
STAGE_INTERNAL = flag(strategy(12, "gitlabUserList", {}, "production", user_list=INTERNAL))
STAGE_BETA_25 = flag(rollout("25", "production"),
                     strategy(12, "gitlabUserList", {}, "production", user_list=INTERNAL),
                     strategy(13, "default", {}, "staging"))
STAGE_GA = flag(strategy(14, "default", {}, "*"))
EVERY_KIND = flag(
    strategy(21, "default", {}, "staging"),
    rollout("25", "production", sid=22),
    strategy(23, "gradualRolloutUserId", {"groupId": "default", "percentage": "50"}, "review/*"),
    strategy(24, "userWithId", {"userIds": "1,15,27"}, "production", "canary"),
    strategy(25, "gitlabUserList", {}, "production", user_list=INTERNAL),
)


def expect(**kwargs: Any) -> RolloutExpectation:
    return RolloutExpectation("conflict_resolver", **kwargs)


def state(body: dict[str, Any]) -> FlagState:
    with responses.RequestsMock() as mock:
        mock.get(FLAG_URL, json=body)
        return make().get("conflict_resolver")


def make(url: str = ROOT, project: str | int = PROJECT, **kwargs: Any) -> GitLabFlags:
    return GitLabFlags(url, project, TOKEN, **kwargs)


def sent(call: Any) -> Any:
    return json.loads(call.request.body)


def failure(call: Any, kind: type[GitLabError] = GitLabError) -> GitLabError:
    with pytest.raises(kind) as info:
        call()
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    return info.value


# --- parsing ---------------------------------------------------------------------------------

def test_every_strategy_kind_is_parsed() -> None:
    got = state(EVERY_KIND)
    assert got.name == "conflict_resolver" and got.active
    assert got.strategies == (
        Strategy("default", {}, ("staging",), None, 21),
        Strategy("flexibleRollout", {"groupId": "default", "rollout": "25",
                                     "stickiness": "default"}, ("production",), None, 22),
        Strategy("gradualRolloutUserId", {"groupId": "default", "percentage": "50"},
                 ("review/*",), None, 23),
        Strategy("userWithId", {"userIds": "1,15,27"}, ("production", "canary"), None, 24),
        Strategy("gitlabUserList", {}, ("production",), UserList(7, "internal", 1, "1,15,27,311"),
                 25),
    )


def test_describe_names_every_strategy_with_its_scopes() -> None:
    assert state(flag(rollout("25", "production"))).describe() == (
        "conflict_resolver: active, flexibleRollout 25% (stickiness default) in production")
    assert state(EVERY_KIND).describe() == (
        "conflict_resolver: active, default (all users) in staging; flexibleRollout 25% "
        "(stickiness default) in production; gradualRolloutUserId 50% in review/*; userWithId "
        "1,15,27 in production, canary; gitlabUserList internal in production")
    assert state(flag(active=False)).describe() == (
        "conflict_resolver: inactive (off for everyone), no strategies")


def test_unknown_strategy_is_shown_and_never_matches() -> None:
    got = state(flag(strategy(31, "remoteAddress", {"IPs": "10.0.0.1"}, "production")))
    assert got.describe() == (
        "conflict_resolver: active, remoteAddress {'IPs': '10.0.0.1'} in production")
    assert mismatch(got, expect(all_users=True)) == (
        "the flag is set to remoteAddress {'IPs': '10.0.0.1'} (remoteAddress in production) but "
        "the stage expects all users in production")


def test_request_sends_the_token_header_and_a_timeout(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_GA)
    make(timeout=3.0).get("conflict_resolver")
    request = api.calls[0].request
    assert request.headers["PRIVATE-TOKEN"] == TOKEN
    assert TOKEN not in str(request.url)
    assert vars(request)["req_kwargs"]["timeout"] == (3.0, 3.0)


@pytest.mark.parametrize(("project", "path"), [
    ("gitlab-org/ai/conflict-resolver", "gitlab-org%2Fai%2Fconflict-resolver"),
    ("42", "42"),
])
def test_project_path_is_url_encoded(api: responses.RequestsMock, project: str,
                                     path: str) -> None:
    api.get(f"{ROOT}/api/v4/projects/{path}/feature_flags/conflict_resolver", json=STAGE_GA)
    make(project=project).get("conflict_resolver")
    assert api.calls[0].request.url == (
        f"{ROOT}/api/v4/projects/{path}/feature_flags/conflict_resolver")


@pytest.mark.parametrize("url", [f"{ROOT}/api/v4", f"{ROOT}/", f"{ROOT}/api/v4/"])
def test_gitlab_root_or_ci_api_v4_url_are_both_accepted(api: responses.RequestsMock,
                                                        url: str) -> None:
    api.get(FLAG_URL, json=STAGE_GA)
    assert make(url=url).get("conflict_resolver").active


@pytest.mark.parametrize(("body", "problem"), [
    ({"name": "conflict_resolver", "active": True, "version": "legacy_flag", "scopes": []},
     "a legacy_flag flag"),
    ({"name": "conflict_resolver", "active": "yes", "strategies": []}, '"name" and "active"'),
    ({**flag(), "strategies": [{"id": 1, "parameters": {}}]}, 'a strategy without a "name"'),
    ([1, 2], '"name" and "active"'),
])
def test_json_without_the_documented_shape_is_an_error(api: responses.RequestsMock, body: Any,
                                                       problem: str) -> None:
    api.get(FLAG_URL, json=body)
    message = str(failure(lambda: make().get("conflict_resolver")))
    assert message.startswith("GitLab's answer for feature flag 'conflict_resolver' is not the "
                              "documented feature flag: ")
    assert problem in message


# --- matching --------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expectation"), [
    (flag(rollout("10", "production")), expect(percent=10)),
    (flag(rollout("10", "production")), expect(percent=10.0, stage="beta-10")),
    (flag(strategy(11, "gradualRolloutUserId", {"groupId": "default", "percentage": "25"},
                   "production")), expect(percent=25)),
    (STAGE_INTERNAL, expect(users="internal")),
    (flag(strategy(11, "userWithId", {"userIds": "27, 1,15"}, "production")),
     expect(users="ids:1,15,27")),
    (STAGE_GA, expect(all_users=True)),
    (STAGE_GA, expect(percent=100)),
    (flag(rollout("100", "production")), expect(all_users=True)),
    (flag(rollout("10", "*")), expect(percent=10)),
    (flag(rollout("10", "review/*")), expect(percent=10, environment="review/mr-118")),
    (flag(rollout("10", "staging")), expect(percent=10, environment="*")),
    # the internal testers stay on through the beta: explicit users never widen a percent
    (flag(rollout("10", "production"), strategy(12, "gitlabUserList", {}, "production",
                                                 user_list=INTERNAL)), expect(percent=10)),
    # other environments do not matter
    (flag(rollout("10", "production"), strategy(13, "default", {}, "staging")),
     expect(percent=10)),
])
def test_flag_at_the_expected_rollout_matches(body: dict[str, Any],
                                              expectation: RolloutExpectation) -> None:
    assert mismatch(state(body), expectation) is None


@pytest.mark.parametrize(("body", "expectation", "reason"), [
    (flag(rollout("25", "production")), expect(percent=10, stage="beta-10"),
     "the flag is at 25% (flexibleRollout in production) but stage beta-10 expects 10% in "
     "production"),
    (flag(strategy(11, "gradualRolloutUserId", {"groupId": "default", "percentage": "50"},
                   "production")), expect(percent=25),
     "the flag is at 50% (gradualRolloutUserId in production) but the stage expects 25% in "
     "production"),
    (flag(strategy(12, "gitlabUserList", {}, "production",
                   user_list={**INTERNAL, "name": "beta-testers"})),
     expect(users="internal", stage="internal"),
     "the flag is on for user list beta-testers (gitlabUserList in production) but stage "
     "internal expects user list internal in production"),
    (flag(strategy(11, "userWithId", {"userIds": "1,15"}, "production")),
     expect(users="ids:1,15,27"),
     "the flag is on for user ids 1,15 (userWithId in production) but the stage expects user "
     "ids 1,15,27 in production"),
    (flag(rollout("50", "production")), expect(all_users=True, stage="ga"),
     "the flag is at 50% (flexibleRollout in production) but stage ga expects all users in "
     "production"),
    (flag(rollout("10", "staging")), expect(percent=10, stage="beta-10"),
     "the flag has no strategy for environment production, so it is off there, but stage "
     "beta-10 expects 10% in production"),
    (flag(rollout("10", "production"), active=False), expect(percent=10, stage="beta-10"),
     "the flag is inactive, so it is off for everyone, but stage beta-10 expects 10% in "
     "production"),
    (flag(active=False), expect(all_users=True, environment="*"),
     "the flag is inactive, so it is off for everyone, but the stage expects all users in "
     "every environment"),
    (flag(rollout("10", "production"), strategy(14, "default", {}, "*")),
     expect(percent=10, stage="beta-10"),
     "the flag has the expected rollout but is also on for all users (default in *), so it "
     "reaches more users than stage beta-10 expects 10% in production"),
    (STAGE_BETA_25, expect(users="internal", stage="internal"),
     "the flag has the expected rollout but is also at 25% (flexibleRollout in production), so "
     "it reaches more users than stage internal expects user list internal in production"),
    (flag(strategy(11, "flexibleRollout", {"groupId": "default", "rollout": "ten",
                                           "stickiness": "default"}, "production")),
     expect(percent=10),
     "the flag is set to flexibleRollout ten% (stickiness default) (flexibleRollout in "
     "production) but the stage expects 10% in production"),
])
def test_flag_elsewhere_says_what_it_is_and_what_the_stage_expects(
        body: dict[str, Any], expectation: RolloutExpectation, reason: str) -> None:
    assert mismatch(state(body), expectation) == reason


def test_check_returns_none_or_one_paragraph(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    flags = make()
    assert flags.check(expect(percent=25, stage="beta-25")) is None
    message = flags.check(expect(percent=10, stage="beta-10"))
    assert message == (
        "feature flag conflict_resolver does not match the rollout the stage gates: the flag is "
        "at 25% (flexibleRollout in production) and on for user list internal (gitlabUserList "
        "in production) but stage beta-10 expects 10% in production. GitLab reports "
        "conflict_resolver: active, flexibleRollout 25% (stickiness default) in production; "
        "gitlabUserList internal in production; default (all users) in staging. Set the flag "
        "in GitLab (Deploy > Feature flags) to the stage's rollout before gating, or gate the "
        "stage it is really at.")


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({}, "needs exactly one of percent, users or all; got none"),
    ({"percent": 10, "all_users": True}, "got percent, all"),
    ({"percent": 120}, "must be within 0 and 100, got 120"),
    ({"percent": float("nan")}, "must be within 0 and 100"),
])
def test_expectation_needs_exactly_one_audience(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        expect(**kwargs)


# --- errors ----------------------------------------------------------------------------------

def test_unauthorized_names_the_token_kind_scope_and_role(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=401, json={"message": "401 Unauthorized"})
    error = failure(lambda: make().get("conflict_resolver"), GitLabPermissionError)
    assert str(error) == (
        f"GitLab refused the token for GET {FLAG_URL} (401 Unauthorized): it is invalid, "
        "expired or revoked, or it is a CI job token, which cannot use the feature flags API. "
        "Use a project access token with the read_api (or api) scope and at least the Developer "
        "role, stored as a masked CI/CD variable (SLO_GITLAB_TOKEN)")
    assert error.status == 401
    assert isinstance(error, SloError)


def test_forbidden_read_names_the_project_scope_and_role(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=403, json={"message": "403 Forbidden"})
    assert str(failure(lambda: make().get("conflict_resolver"), GitLabPermissionError)) == (
        "the token may not read feature flags of project 42 (403 Forbidden: 403 Forbidden): "
        "that needs the read_api (or api) scope and at least the Developer role in the project; "
        "CI_JOB_TOKEN can never change feature flags, so use a project access token")


def test_forbidden_write_with_a_read_only_token_asks_for_the_api_scope(
        api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    api.put(FLAG_URL, status=403, json={
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the "
                             "access token.", "scope": "api"})
    message = str(failure(lambda: make().rollback("conflict_resolver", None),
                          GitLabPermissionError))
    assert message.startswith("the token may not change feature flags of project 42 (403 "
                              "Forbidden: insufficient_scope): that needs the api scope and")
    assert "CI_JOB_TOKEN can never change feature flags" in message


def test_missing_flag_is_named(api: responses.RequestsMock) -> None:
    api.get(f"{ROOT}/api/v4/projects/42/feature_flags/conflict_resolvr", status=404,
            json={"message": "404 Not found"})
    error = failure(lambda: make().get("conflict_resolvr"), GitLabNotFoundError)
    assert str(error) == (
        "feature flag 'conflict_resolvr' does not exist in project 42 (GET "
        f"{ROOT}/api/v4/projects/42/feature_flags/conflict_resolvr answered 404 Not Found); "
        "create it under Deploy > Feature flags, or fix the name in the stage's rollout")
    assert error.status == 404


def test_missing_project_is_named(api: responses.RequestsMock) -> None:
    url = f"{ROOT}/api/v4/projects/gitlab-org%2Fconflict-resolver/feature_flags/conflict_resolver"
    api.get(url, status=404, json={"message": "404 Project Not Found"})
    message = str(failure(lambda: make(project="gitlab-org/conflict-resolver")
                          .get("conflict_resolver"), GitLabNotFoundError))
    assert message.startswith("project gitlab-org/conflict-resolver does not exist, or the token "
                              "cannot see it")
    assert message.endswith("check CI_PROJECT_ID or the project path")


def test_server_error_is_retried_then_reported(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=502, body="<html><body><h1>502 Bad Gateway</h1></body></html>",
            content_type="text/html")
    message = str(failure(lambda: make(retries=1).get("conflict_resolver")))
    assert message == (
        f"GitLab failed on GET {FLAG_URL} (502 Bad Gateway: \"<html><body><h1>502 Bad Gateway"
        "</h1></body></html>\"); GitLab is down or overloaded, try again later")
    assert len(api.calls) == 2


def test_server_error_then_success(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=503, json={"message": "503 Service Unavailable"})
    api.get(FLAG_URL, json=STAGE_GA)
    assert make().get("conflict_resolver").active
    assert len(api.calls) == 2


def test_rate_limit_is_retried_after_the_wait_gitlab_asks(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=429, headers={"Retry-After": "0"}, json={"message": "429"})
    api.get(FLAG_URL, json=STAGE_GA)
    assert make().get("conflict_resolver").active
    assert len(api.calls) == 2


def test_rate_limit_with_a_long_wait_is_reported_not_slept(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=429, headers={"Retry-After": "3600"},
            json={"message": "Retry later"})
    message = str(failure(lambda: make().get("conflict_resolver")))
    assert message == (f"GitLab rate-limited GET {FLAG_URL} (429 Too Many Requests; it asks to "
                       "wait 3600s); run the job again later, or ask the instance's admins "
                       "about the limit")
    assert len(api.calls) == 1


def test_rollback_write_is_never_retried(api: responses.RequestsMock) -> None:
    api.put(FLAG_URL, status=503, json={"message": "503 Service Unavailable"})
    with pytest.raises(GitLabError):
        make()._flag("PUT", "conflict_resolver", {"active": False})
    assert len(api.calls) == 1


def test_read_timeout(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    error = failure(lambda: make(timeout=2.5).get("conflict_resolver"))
    assert str(error) == f"timed out after 2.5s waiting for GitLab (GET {FLAG_URL})"
    assert isinstance(error.__cause__, requests.exceptions.ReadTimeout)


def test_connect_timeout_and_connection_error(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    assert str(failure(lambda: make().get("conflict_resolver"))) == (
        f"timed out after 5s connecting to GitLab (GET {FLAG_URL})")
    api.replace(responses.GET, FLAG_URL,
                body=requests.exceptions.ConnectionError("Name or service not known"))
    assert str(failure(lambda: make().get("conflict_resolver"))) == (
        f"could not connect to GitLab (GET {FLAG_URL}) (Name or service not known)")


def test_html_body_is_not_an_answer(api: responses.RequestsMock) -> None:
    page = "<!DOCTYPE html>\n<html><head><title>Sign in · GitLab</title></head>" + "x" * 200
    api.get(FLAG_URL, body=page, content_type="text/html; charset=utf-8")
    message = str(failure(lambda: make().get("conflict_resolver")))
    assert message.startswith(f"GitLab answered GET {FLAG_URL} with a body that is not JSON "
                              '(text/html; charset=utf-8): "<!DOCTYPE html> <html><head>')
    assert message.endswith("check that the url is GitLab's root or its /api/v4 root, not a "
                            "proxy or login page")


def test_redirect_is_not_followed_so_the_token_stays_home(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, status=302, headers={"Location": "https://sso.example/login"})
    message = str(failure(lambda: make().get("conflict_resolver")))
    assert "302 Found, a redirect to https://sso.example/login" in message
    assert len(api.calls) == 1


def test_token_never_appears_in_messages_or_repr(api: responses.RequestsMock) -> None:
    # A proxy echoing the request headers must not carry the token into a failure message.
    api.get(FLAG_URL, status=500, body=f"upstream error; PRIVATE-TOKEN: {TOKEN}")
    flags = make()
    message = str(failure(lambda: flags.get("conflict_resolver")))
    assert "PRIVATE-TOKEN: ***" in message
    assert repr(flags) == f"GitLabFlags('{ROOT}/api/v4', project='42')"
    assert TOKEN not in repr(vars(flags).get("_redact"))


# --- rollback --------------------------------------------------------------------------------

def test_rollback_to_the_previous_percent_replaces_the_percentage_strategy(
        api: responses.RequestsMock) -> None:
    after = copy.deepcopy(STAGE_BETA_25)
    after["strategies"][0] = rollout("10", "production", sid=15)
    api.get(FLAG_URL, json=STAGE_BETA_25)
    api.put(FLAG_URL, json=after)
    done = make().rollback("conflict_resolver", expect(percent=10, stage="beta-10"))
    assert sent(api.calls[1]) == {"strategies": [
        {"id": 11, "_destroy": True},
        {"name": "flexibleRollout",
         "parameters": {"groupId": "default", "rollout": "10", "stickiness": "default"},
         "scopes": [{"environment_scope": "production"}]},
    ]}
    assert api.calls[1].request.headers["Content-Type"] == "application/json"
    assert done == (
        "Rolled feature flag conflict_resolver back to 10% in production (stage beta-10): "
        "removed flexibleRollout 25% (stickiness default) in production; it now has "
        "flexibleRollout 10% (stickiness default) in production; gitlabUserList internal in "
        "production.")


def test_rollback_keeps_group_and_stickiness_so_the_cohort_shrinks(
        api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=flag(rollout("50", "production", stickiness="userId",
                                        group="conflict_resolver")))
    api.put(FLAG_URL, json=flag(rollout("25", "production", sid=16, stickiness="userId",
                                        group="conflict_resolver")))
    make().rollback("conflict_resolver", expect(percent=25))
    assert sent(api.calls[1])["strategies"][1]["parameters"] == {
        "groupId": "conflict_resolver", "rollout": "25", "stickiness": "userId"}


def test_rollback_from_ga_to_a_user_list_looks_the_list_up(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_GA)
    api.get(LISTS_URL, json=[INTERNAL, {**INTERNAL, "id": 8, "iid": 2, "name": "internal-qa"}])
    api.put(FLAG_URL, json=STAGE_INTERNAL)
    done = make().rollback("conflict_resolver", expect(users="internal", stage="internal"))
    assert api.calls[1].request.url == f"{LISTS_URL}?search=internal&per_page=100"
    assert sent(api.calls[2]) == {"strategies": [
        {"id": 14, "_destroy": True},
        {"name": "gitlabUserList", "parameters": {},
         "scopes": [{"environment_scope": "production"}], "user_list_id": 7},
    ]}
    assert done.startswith("Rolled feature flag conflict_resolver back to user list internal in "
                           "production (stage internal): removed default (all users) in *;")


def test_user_list_is_found_on_a_later_page(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_GA)
    others = [{**INTERNAL, "id": 100 + n, "iid": 10 + n, "name": f"internal-{n}"}
              for n in range(100)]
    api.get(LISTS_URL, json=others, headers={"X-Next-Page": "2"},
            match=[responses.matchers.query_param_matcher(
                {"search": "internal", "per_page": "100"})])
    # The third page comes by keyset pagination's Link header: only its query is used, never
    # its host.
    api.get(LISTS_URL, json=others[:3], headers={
        "Link": '<https://elsewhere.example/api/v4/x?search=internal&per_page=100&page=3>; '
                'rel="next"'},
            match=[responses.matchers.query_param_matcher(
                {"search": "internal", "per_page": "100", "page": "2"})])
    api.get(LISTS_URL, json=[{**INTERNAL, "id": 300}],
            match=[responses.matchers.query_param_matcher(
                {"search": "internal", "per_page": "100", "page": "3"})])
    api.put(FLAG_URL, json=STAGE_INTERNAL)
    make().rollback("conflict_resolver", expect(users="internal", stage="internal"))
    assert sent(api.calls[4])["strategies"][1]["user_list_id"] == 300
    assert all(str(c.request.url).startswith(ROOT) for c in api.calls)


def test_rollback_to_internal_keeps_the_list_already_there(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    api.put(FLAG_URL, json=flag(*STAGE_BETA_25["strategies"][1:]))
    make().rollback("conflict_resolver", expect(users="internal"))
    assert sent(api.calls[1]) == {"strategies": [{"id": 11, "_destroy": True}]}


def test_rollback_to_a_missing_user_list_changes_nothing(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_GA)
    api.get(LISTS_URL, json=[{**INTERNAL, "name": "internal-qa"}])
    message = str(failure(lambda: make().rollback("conflict_resolver", expect(users="internal")),
                          GitLabNotFoundError))
    assert message.startswith("project 42 has no feature flag user list named 'internal'")
    assert [c.request.method for c in api.calls] == ["GET", "GET"]


def test_rollback_to_user_ids(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=flag(rollout("10", "production")))
    api.put(FLAG_URL, json=flag(strategy(17, "userWithId", {"userIds": "1,15"}, "production")))
    make().rollback("conflict_resolver", expect(users="ids:15,1"))
    assert sent(api.calls[1])["strategies"][1] == {
        "name": "userWithId", "parameters": {"userIds": "1,15"},
        "scopes": [{"environment_scope": "production"}]}


def test_rollback_to_disabled_sends_active_false(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    api.put(FLAG_URL, json={**STAGE_BETA_25, "active": False})
    done = make().rollback("conflict_resolver", None)
    assert sent(api.calls[1]) == {"active": False}
    assert done == (
        "Disabled feature flag conflict_resolver in project 42 (it was conflict_resolver: "
        "active, flexibleRollout 25% (stickiness default) in production; gitlabUserList "
        "internal in production; default (all users) in staging); its strategies are kept, so "
        "it can be re-enabled in GitLab once the cause is fixed.")


def test_rollback_never_re_enables_an_inactive_flag(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json={**STAGE_BETA_25, "active": False})
    flags = make()
    assert flags.rollback("conflict_resolver", expect(percent=10)) == (
        "Feature flag conflict_resolver was already inactive; left it inactive rather than "
        "re-enabling it at 10% in production.")
    assert flags.rollback("conflict_resolver", None) == (
        "Feature flag conflict_resolver was already inactive; left it inactive.")
    assert all(c.request.method == "GET" for c in api.calls)


def test_rollback_to_where_the_flag_already_is_changes_nothing(
        api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=flag(rollout("10", "production")))
    assert make().rollback("conflict_resolver", expect(percent=10)) == (
        "Feature flag conflict_resolver is already at 10% in production; nothing changed.")
    assert len(api.calls) == 1


def test_rollback_put_is_not_retried_and_a_wrong_result_is_reported(
        api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    api.put(FLAG_URL, status=503, json={"message": "503 Service Unavailable"})
    failure(lambda: make().rollback("conflict_resolver", expect(percent=10)))
    assert [c.request.method for c in api.calls] == ["GET", "PUT"]
    api.replace(responses.PUT, FLAG_URL, json=STAGE_BETA_25)
    message = str(failure(lambda: make().rollback("conflict_resolver", expect(percent=10))))
    assert message.startswith("GitLab accepted the rollback of feature flag conflict_resolver "
                              "but now reports conflict_resolver: active, flexibleRollout 25%")


def test_rollback_to_a_fractional_percent_is_refused_before_writing(
        api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    message = str(failure(lambda: make().rollback("conflict_resolver", expect(percent=12.5))))
    assert message == ("GitLab takes whole percentages only; cannot roll feature flag "
                       "conflict_resolver back to 12.5%")
    assert len(api.calls) == 1


def test_rollback_rejected_by_gitlab_quotes_the_reason(api: responses.RequestsMock) -> None:
    api.get(FLAG_URL, json=STAGE_BETA_25)
    api.put(FLAG_URL, status=400, json={"message": {
        "strategies.parameters": ["rollout must be a string between 0 and 100 inclusive"]}})
    message = str(failure(lambda: make().rollback("conflict_resolver", expect(percent=10))))
    assert message == (f"GitLab rejected PUT {FLAG_URL} (400 Bad Request): {{'strategies."
                       "parameters': ['rollout must be a string between 0 and 100 inclusive']}")


def test_rollback_of_another_flag_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="rollback of flag 'other'"):
        make().rollback("other", expect(percent=10))
