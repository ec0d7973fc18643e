"""Unit tests of the development feature flags client (instance Features API) with ``responses``.

The bodies follow GitLab's ``doc/api/features.md``: ``GET /features`` lists
``{name, state, gates: [{key, value}], definition}`` with gates ``boolean``, ``actors``,
``percentage_of_actors``, ``percentage_of_time`` and ``groups``; ``POST /features/:name``
takes form fields ``value`` (true, false or a number), ``key`` and targets such as
``feature_group`` and ``user``, and answers the feature. A check that passes on a flag at
another stage, or a rollback that sends the wrong gates, would let a rollout go on unguarded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from pytest_rollout_slo.flags.features import (
    FeatureExpectation,
    FeatureState,
    GitLabFeatures,
    feature_mismatch,
    parse_feature,
)
from pytest_rollout_slo.flags.gitlab import GitLabError, GitLabNotFoundError, GitLabPermissionError

ROOT = "https://gitlab.example.com"
TOKEN = "glpat-Adm1nSeCrEt-t0ken_xyz"
LIST_URL = f"{ROOT}/api/v4/features"
SET_URL = f"{ROOT}/api/v4/features/conflict_resolver"
DEFINITION = {"name": "conflict_resolver", "introduced_by_url": None, "rollout_issue_url": None,
              "milestone": "18.7", "log_state_changes": None, "type": "beta",
              "group": "group::code review", "default_enabled": False}


def feature(state: str, *gates: tuple[str, Any], name: str = "conflict_resolver",
            boolean: bool = False) -> dict[str, Any]:
    return {"name": name, "state": state,
            "gates": [{"key": "boolean", "value": boolean},
                      *({"key": k, "value": v} for k, v in gates)],
            "definition": DEFINITION}


OFF = feature("off")
INTERNAL = feature("conditional", ("groups", ["gitlab_team_members"]))
BETA_10 = feature("conditional", ("groups", ["gitlab_team_members"]),
                  ("percentage_of_actors", 10))
BETA_25 = feature("conditional", ("actors", ["User:1", "User:15"]),
                  ("groups", ["gitlab_team_members"]), ("percentage_of_actors", 25))
TIME_10 = feature("conditional", ("percentage_of_time", 10))
GA = feature("on", boolean=True)
OTHER = feature("on", name="vim_bindings", boolean=True)

STAGE_INTERNAL = FeatureExpectation("conflict_resolver", feature_group="gitlab_team_members",
                                    stage="internal")
STAGE_10 = FeatureExpectation("conflict_resolver", percent=10, stage="beta-10")
STAGE_25 = FeatureExpectation("conflict_resolver", percent=25, stage="beta-25")
STAGE_50 = FeatureExpectation("conflict_resolver", percent=50, stage="beta-50")
STAGE_GA = FeatureExpectation("conflict_resolver", all_users=True, stage="ga")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def make(**kwargs: Any) -> GitLabFeatures:
    return GitLabFeatures(ROOT, TOKEN, **kwargs)


def form(call: Any) -> dict[str, str]:
    return dict(parse_qsl(call.request.body))


def failure(call: Any, kind: type[GitLabError] = GitLabError) -> str:
    with pytest.raises(kind) as info:
        call()
    assert TOKEN not in str(info.value)
    return str(info.value)


# --- parsing and matching ------------------------------------------------------------------

def test_every_gate_kind_is_parsed() -> None:
    state = parse_feature(feature("conditional", ("actors", ["User:1", "Project:278964"]),
                                  ("groups", ["gitlab_team_members"]),
                                  ("percentage_of_actors", 25), ("percentage_of_time", 5)))
    assert state == FeatureState("conflict_resolver", "conditional", False,
                                 frozenset({"User:1", "Project:278964"}),
                                 frozenset({"gitlab_team_members"}), 25.0, 5.0)
    assert parse_feature(GA).boolean


@pytest.mark.parametrize("body", [
    {"name": "conflict_resolver", "state": "maybe", "gates": []},
    {"name": "conflict_resolver", "state": "on"},
    feature("conditional", ("percentage_of_actors", "lots")),
    feature("conditional", ("percentage_of_actors", 250)),
    feature("conditional", ("actors", "User:1")),
], ids=["state", "no-gates", "percent-text", "percent-range", "actors-not-list"])
def test_answer_without_the_documented_shape_is_an_error(api: responses.RequestsMock,
                                                         body: dict[str, Any]) -> None:
    api.get(LIST_URL, json=[body])
    message = failure(lambda: make().get("conflict_resolver"))
    assert message.startswith("GitLab's answer to GET /features is not the documented list")


@pytest.mark.parametrize(("body", "expected"), [
    (INTERNAL, STAGE_INTERNAL),
    (feature("conditional", ("actors", ["User:1", "User:15"])),
     FeatureExpectation("conflict_resolver", actors=frozenset({"User:1", "User:15"}))),
    (BETA_10, STAGE_10),
    (BETA_25, STAGE_25),  # the testers' actors and group stay through the beta
    (TIME_10, FeatureExpectation("conflict_resolver", percent=10, of="requests")),
    (GA, STAGE_GA),
    (feature("on", ("percentage_of_time", 100)), STAGE_GA),
    (BETA_25, FeatureExpectation("conflict_resolver", percent=25,
                                 feature_group="gitlab_team_members")),
], ids=["group", "actors", "10", "25-with-testers", "time", "ga", "ga-by-time",
        "25-and-group"])
def test_flag_at_the_rollout_matches(body: dict[str, Any], expected: FeatureExpectation) -> None:
    assert feature_mismatch(parse_feature(body), expected) is None


@pytest.mark.parametrize(("body", "expected", "reason"), [
    (BETA_25, STAGE_10,
     "conflict_resolver is conditional: 25% of users (percentage_of_actors), as `feature set "
     "conflict_resolver 25 --actors`; feature group gitlab_team_members; actors User:1, User:15, "
     "but stage beta-10 expects 10% of users (percentage_of_actors)"),
    (TIME_10, STAGE_10,
     "conflict_resolver is conditional: 10% of requests (percentage_of_time), as `feature set "
     "conflict_resolver 10`, but stage beta-10 expects 10% of users (percentage_of_actors)"),
    (GA, STAGE_50,
     "conflict_resolver is on for everyone (boolean gate; `feature set conflict_resolver "
     "true`), so it reaches more than stage beta-50 expects 50% of users (percentage_of_actors)"),
    (OFF, STAGE_INTERNAL,
     "conflict_resolver is off: no gate is open, so it is off for everyone, but stage internal "
     "expects feature group gitlab_team_members"),
    (BETA_10, STAGE_INTERNAL,
     "conflict_resolver is conditional: 10% of users (percentage_of_actors), as `feature set "
     "conflict_resolver 10 --actors`; feature group gitlab_team_members, but stage internal "
     "expects feature group gitlab_team_members"),
    (feature("conditional", ("groups", ["gitlab_team_members"]), ("actors", ["User:9"])),
     STAGE_INTERNAL,
     "conflict_resolver is conditional: feature group gitlab_team_members; actors User:9: also "
     "actors User:9, so it reaches more than stage internal expects feature group "
     "gitlab_team_members"),
    (BETA_10, FeatureExpectation("conflict_resolver", percent=10, feature_group="qa",
                                 stage="beta-10"),
     "conflict_resolver is conditional: 10% of users (percentage_of_actors), as `feature set "
     "conflict_resolver 10 --actors`; feature group gitlab_team_members: feature group qa "
     "missing, but stage beta-10 expects 10% of users (percentage_of_actors) and feature "
     "group qa"),
    (BETA_25, STAGE_GA,
     "conflict_resolver is conditional: 25% of users (percentage_of_actors), as `feature set "
     "conflict_resolver 25 --actors`; feature group gitlab_team_members; actors User:1, "
     "User:15, but stage ga expects on for everyone (boolean gate)"),
], ids=["other-percent", "time-not-actors", "ga-at-beta", "off", "internal-plus-percent",
        "extra-actor", "missing-group", "beta-at-ga"])
def test_mismatch_says_what_the_flag_is_and_what_the_stage_expects(
        body: dict[str, Any], expected: FeatureExpectation, reason: str) -> None:
    assert feature_mismatch(parse_feature(body), expected) == reason


def test_check_lists_all_features_and_words_the_fix_in_chatops(api: responses.RequestsMock
                                                                ) -> None:
    api.get(LIST_URL, json=[OTHER, BETA_25])
    assert make().check(STAGE_25) is None
    message = make().check(STAGE_10)
    assert message is not None and message.startswith(
        f"development feature flag conflict_resolver on {ROOT}/api/v4 does not match the "
        "rollout the stage gates: conflict_resolver is conditional: 25% of users")
    assert message.endswith("Set it with `/chatops run feature set conflict_resolver 10 "
                            "--actors` (or POST /features/:name) before gating, or gate the "
                            "stage it is really at.")
    assert api.calls[0].request.headers["PRIVATE-TOKEN"] == TOKEN


def test_flag_never_set_follows_its_definition_and_matches_no_stage(
        api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[OTHER])
    message = make().check(STAGE_INTERNAL)
    assert message is not None and "GET /features does not list it, so no gate was ever set" \
        in message
    assert "`/chatops run feature set --feature-group=gitlab_team_members conflict_resolver " \
           "true`" in message


def page(number: str) -> list[Any]:
    return [responses.matchers.query_param_matcher({"page": number} if number else {})]


def test_a_paged_listing_is_read_to_its_end(api: responses.RequestsMock) -> None:
    # GitLab documents GET /features as one answer; if a proxy or a later version pages it,
    # the flag on page 2 must not read as "never set".
    api.get(LIST_URL, json=[OTHER], headers={"X-Next-Page": "2"}, match=page(""))
    api.get(LIST_URL, json=[BETA_25], match=page("2"))
    assert make().check(STAGE_25) is None
    assert len(api.calls) == 2


def test_a_flag_listed_on_two_pages_is_an_error(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[BETA_10], headers={"X-Next-Page": "2"}, match=page(""))
    api.get(LIST_URL, json=[BETA_25], match=page("2"))
    assert "the feature 'conflict_resolver' is listed 2 times" in failure(
        lambda: make().get("conflict_resolver"))


def test_a_listing_that_never_ends_is_an_error(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[OTHER], headers={"X-Next-Page": "2"})
    message = failure(lambda: make().get("conflict_resolver"))
    assert message.startswith("GET /features (the development feature flags) went on for more "
                              "than 50 pages; a proxy may be repeating them: the flag's state "
                              "is unknown")
    assert len(api.calls) == 50


def test_chatops_for_the_internal_stage_names_every_target() -> None:
    stage = FeatureExpectation("conflict_resolver", actors=frozenset({"User:1", "Project:7"}),
                               feature_group="gitlab_team_members")
    assert stage.chatops() == (
        "`/chatops run feature set --feature-group=gitlab_team_members conflict_resolver true`, "
        "then `/chatops run feature set --project=<project 7> conflict_resolver true`, "
        "then `/chatops run feature set --user=<user 1> conflict_resolver true`")


# --- errors --------------------------------------------------------------------------------

def test_unauthorized_says_an_admin_token_is_needed(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, status=401, json={"message": "401 Unauthorized"})
    message = failure(lambda: make().get("conflict_resolver"), GitLabPermissionError)
    assert message.startswith(f"GitLab refused the token for GET {LIST_URL} (401 Unauthorized):")
    assert "personal access token of an administrator with the api scope" in message


def test_non_admin_token_is_told_so(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, status=403, json={"message": "403 Forbidden"})
    message = failure(lambda: make().get("conflict_resolver"), GitLabPermissionError)
    assert message.startswith(
        f"the token may not read development feature flags (GET {LIST_URL} answered 403 "
        "Forbidden): it is not an administrator's token; the Features API is open to "
        "administrators only: on a self-managed instance use a personal access token of an "
        "administrator")
    assert "on GitLab.com only GitLab team members set development flags, through ChatOps" \
        in message


def test_not_found_points_at_the_url(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, status=404, json={"message": "404 Not Found"})
    message = failure(lambda: make().get("conflict_resolver"), GitLabNotFoundError)
    assert message == (f"the development feature flags is not there (GET {LIST_URL} answered "
                       "404 Not Found); check that the url is the GitLab instance's root or "
                       "/api/v4 root")


def test_rate_limit_is_retried_then_reported(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, status=429, headers={"Retry-After": "0"}, json={"message": "429"})
    api.get(LIST_URL, json=[BETA_10])
    assert make().check(STAGE_10) is None
    api.get(LIST_URL, status=429, headers={"Retry-After": "600"}, json={"message": "429"})
    message = failure(lambda: make().get("conflict_resolver"))
    assert "429 Too Many Requests; it asks to wait 600s" in message


def test_bad_request_quotes_gitlab(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[BETA_25])
    api.post(SET_URL, status=400, json={"message": "Cannot set 'conflict_resolver' to \"x\""})
    message = failure(lambda: make().rollback("conflict_resolver", STAGE_10))
    assert message == (f"GitLab refused to set development feature flag conflict_resolver "
                       f"(POST {SET_URL} answered 400 Bad Request: Cannot set "
                       "'conflict_resolver' to \"x\")")
    assert len(api.calls) == 2  # a POST is never retried


# --- rollback ------------------------------------------------------------------------------

def test_rollback_lowers_the_percentage_in_place(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[BETA_25])
    lowered = feature("conditional", ("actors", ["User:1", "User:15"]),
                      ("groups", ["gitlab_team_members"]), ("percentage_of_actors", 10))
    api.post(SET_URL, json=lowered)
    message = make().rollback("conflict_resolver", STAGE_10)
    assert [form(c) for c in list(api.calls)[1:]] == [
        {"value": "10", "key": "percentage_of_actors"}]
    assert message.startswith(
        "Rolled development feature flag conflict_resolver back to 10% of users "
        f"(percentage_of_actors) (stage beta-10) on {ROOT}/api/v4: it was: conflict_resolver is "
        "conditional: 25% of users")
    assert "sent POST /features/conflict_resolver with value=10 key=percentage_of_actors;" \
        in message


def test_rollback_from_ga_clears_then_sets_the_previous_percentage(
        api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[GA])
    api.post(SET_URL, json=OFF)
    api.post(SET_URL, json=feature("conditional", ("percentage_of_actors", 50)))
    make().rollback("conflict_resolver", STAGE_50)
    assert [form(c) for c in list(api.calls)[1:]] == [
        {"value": "false"}, {"value": "50", "key": "percentage_of_actors"}]


def test_rollback_to_internal_sets_the_group_and_users_again(api: responses.RequestsMock
                                                             ) -> None:
    api.get(LIST_URL, json=[BETA_10])
    api.get(f"{ROOT}/api/v4/users/1", json={"id": 1, "username": "root", "state": "active"})
    api.post(SET_URL, json=OFF)
    api.post(SET_URL, json=feature("conditional", ("groups", ["gitlab_team_members"])))
    api.post(SET_URL, json=feature("conditional", ("groups", ["gitlab_team_members"]),
                                   ("actors", ["User:1"])))
    to = FeatureExpectation("conflict_resolver", feature_group="gitlab_team_members",
                            actors=frozenset({"User:1"}), stage="internal")
    make().rollback("conflict_resolver", to)
    # The user is looked up before value=false clears the flag.
    assert [c.request.method for c in api.calls] == ["GET", "GET", "POST", "POST", "POST"]
    assert [form(c) for c in list(api.calls)[2:]] == [
        {"value": "false"}, {"value": "true", "feature_group": "gitlab_team_members"},
        {"value": "true", "user": "root"}]


def test_rollback_to_an_actor_the_api_cannot_set_writes_nothing(api: responses.RequestsMock
                                                                ) -> None:
    api.get(LIST_URL, json=[BETA_10])
    to = FeatureExpectation("conflict_resolver", actors=frozenset({"Runner:4"}))
    message = failure(lambda: make().rollback("conflict_resolver", to))
    assert message.startswith("actor Runner:4 cannot be set again through the Features API")
    assert len(api.calls) == 1


def test_rollback_after_the_first_stage_turns_the_flag_off(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[INTERNAL])
    api.post(SET_URL, json=OFF)
    message = make().rollback("conflict_resolver", None)
    assert form(api.calls[1]) == {"value": "false"}
    assert message.startswith(f"Turned development feature flag conflict_resolver off on "
                              f"{ROOT}/api/v4 (POST /features/conflict_resolver value=false, as "
                              "`feature set conflict_resolver false`)")


def test_rollback_finds_the_flag_on_a_later_page(api: responses.RequestsMock) -> None:
    # Read from the first page only, the flag would look never set and stay on, "already off".
    api.get(LIST_URL, json=[OTHER], headers={"X-Next-Page": "2"}, match=page(""))
    api.get(LIST_URL, json=[INTERNAL], match=page("2"))
    api.post(SET_URL, json=OFF)
    message = make().rollback("conflict_resolver", None)
    assert form(api.calls[2]) == {"value": "false"}
    assert message.startswith("Turned development feature flag conflict_resolver off")


def test_rollback_never_turns_an_off_flag_on(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[OFF])
    message = make().rollback("conflict_resolver", STAGE_10)
    assert message == (f"Development feature flag conflict_resolver was already off on "
                       f"{ROOT}/api/v4; left it off rather than setting it to 10% of users "
                       "(percentage_of_actors).")
    assert len(api.calls) == 1


def test_rollback_that_gitlab_does_not_apply_is_reported(api: responses.RequestsMock) -> None:
    api.get(LIST_URL, json=[BETA_25])
    api.post(SET_URL, json=BETA_25)
    message = failure(lambda: make().rollback("conflict_resolver", STAGE_10))
    assert message.startswith("GitLab accepted the rollback of development feature flag "
                              "conflict_resolver but now reports")
    assert message.endswith("set it with `/chatops run feature set conflict_resolver 10 "
                            "--actors` now")


def test_token_never_appears_in_repr() -> None:
    assert TOKEN not in repr(make())
