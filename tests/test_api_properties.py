"""Generated API replies: every parser of outside JSON either reads it or says why, with its
own error; none lets a Python exception through, and none reads an ambiguous reply.

The Prometheus answers have their own property test (test_prometheus_answers.py); these are
the other replies the plugin trusts: GitLab's Features API and the metric-name listing.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.prometheus.answer import AnswerError as PromAnswerError
from pytest_rollout_slo.backends.prometheus.answer import label_values
from pytest_rollout_slo.flags.features import GitLabFeatures, parse_features
from pytest_rollout_slo.flags.gitlab import GitLabError
from pytest_rollout_slo.flags.model import AnswerError, RolloutExpectation, mismatch, parse_flag

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(max_size=8), st.sampled_from(["on", "off", "conditional"]))
gate_values = st.one_of(scalars, st.lists(st.one_of(st.text(max_size=6), st.integers()),
                                          max_size=3))
gates = st.lists(st.one_of(
    st.fixed_dictionaries({"key": st.sampled_from(
        ["boolean", "actors", "groups", "percentage_of_actors", "percentage_of_time", "x"]),
        "value": gate_values}),
    scalars, st.dictionaries(st.text(max_size=4), scalars, max_size=2)), max_size=4)
features = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(["conflict_resolver", "other"]),
                           "state": st.sampled_from(["on", "off", "conditional", "maybe"]),
                           "gates": gates}),
    scalars)
replies = st.one_of(st.lists(features, max_size=4), scalars,
                    st.dictionaries(st.text(max_size=4), scalars, max_size=2))


@settings(max_examples=500, deadline=None)
@given(reply=replies)
def test_features_replies_are_read_or_refused(reply: Any) -> None:
    try:
        state = parse_features(reply, "conflict_resolver")
    except AnswerError:
        return
    if state is None:
        return
    # Read: one entry of that name, every percentage a real percentage.
    assert len([f for f in reply if isinstance(f, dict)
                and f.get("name") == "conflict_resolver"]) == 1
    for percent in (state.percentage_of_actors, state.percentage_of_time):
        assert math.isfinite(percent) and 0 <= percent <= 100


@settings(max_examples=200, deadline=None)
@given(listed=st.lists(features, max_size=6), cuts=st.lists(st.integers(0, 6), max_size=3))
def test_a_paged_features_reply_reads_as_the_whole_list(listed: list[Any], cuts: list[int]
                                                        ) -> None:
    # However GitLab (or a proxy) pages GET /features, the flag reads as from one list: the
    # same state, or refused as that list would be; never "not listed" for want of a page.
    bounds = sorted({0, len(listed), *(min(c, len(listed)) for c in cuts)})
    pages = [listed[a:b] for a, b in itertools.pairwise(bounds)] or [[]]
    url = "https://gitlab.example.com/api/v4/features"
    with responses.RequestsMock() as api:
        for number, page in enumerate(pages, start=1):
            query = {"page": str(number)} if number > 1 else {}
            following = {"X-Next-Page": str(number + 1)} if number < len(pages) else {}
            api.get(url, json=page, headers=following,
                    match=[responses.matchers.query_param_matcher(query)])
        try:
            expected: Any = parse_features(listed, "conflict_resolver")
        except AnswerError:
            expected = AnswerError
        try:
            got: Any = GitLabFeatures("https://gitlab.example.com", "t0k3n").get(
                "conflict_resolver")
        except GitLabError:
            got = AnswerError
        assert got == expected
        assert len(api.calls) == len(pages)


def test_a_feature_listed_twice_or_a_gate_twice_is_refused() -> None:
    one = {"name": "conflict_resolver", "state": "conditional",
           "gates": [{"key": "percentage_of_actors", "value": 10}]}
    with pytest.raises(AnswerError, match="listed 2 times"):
        parse_features([one, {**one, "gates": []}], "conflict_resolver")
    twice = {**one, "gates": [*one["gates"], {"key": "percentage_of_actors", "value": 100}]}
    with pytest.raises(AnswerError, match="'percentage_of_actors' is listed twice"):
        parse_features([twice], "conflict_resolver")


@settings(max_examples=500, deadline=None)
@given(payload=st.one_of(
    st.fixed_dictionaries({"status": st.sampled_from(["success", "error", 1]),
                           "data": st.one_of(st.lists(st.one_of(st.text(max_size=6), scalars),
                                                      max_size=4), scalars)}),
    scalars), status=st.sampled_from([200, 200, 404, 500]))
def test_metric_name_listings_are_read_or_refused(payload: Any, status: int) -> None:
    try:
        names = label_values(status, json.dumps(payload).encode(), "application/json")
    except PromAnswerError:
        return
    assert status == 200 and payload["status"] == "success"
    assert names == payload["data"] and all(isinstance(n, str) for n in names)


# Project (Unleash) feature flags as GET /projects/:id/feature_flags/:name may answer them.
flag_numbers = st.one_of(st.sampled_from(["0", "10", "25", "50", "100", "10.5", "-5", "1e999",
                                          "nan", "abc", ""]), st.integers(-5, 105),
                         st.floats(allow_nan=True))
strategies_json = st.fixed_dictionaries(
    {"name": st.sampled_from(["default", "flexibleRollout", "gradualRolloutUserId",
                              "userWithId", "gitlabUserList", "unknownStrategy", 3])},
    optional={"parameters": st.one_of(st.fixed_dictionaries({}, optional={
        "rollout": flag_numbers, "percentage": flag_numbers,
        "stickiness": st.sampled_from(["default", "userId", "sessionId", "random", "odd"]),
        "groupId": st.just("default"), "userIds": st.sampled_from(["1,2", "", "1, 15"])}),
        scalars),
        "scopes": st.one_of(st.lists(st.one_of(st.fixed_dictionaries({
            "environment_scope": st.sampled_from(["production", "*", "prod*", "staging"])}),
            scalars), max_size=3), scalars),
        "user_list": st.one_of(st.fixed_dictionaries({"id": st.one_of(
            st.integers(), st.floats(), st.text(max_size=3)), "name": scalars}), scalars),
        "id": scalars})
flags_json = st.one_of(st.fixed_dictionaries(
    {"name": st.sampled_from(["conflict_resolver", 7]), "active": st.one_of(st.booleans(),
                                                                            scalars)},
    optional={"version": st.sampled_from(["new_version_flag", "legacy_flag"]),
              "strategies": st.one_of(st.lists(strategies_json, max_size=3), scalars)}),
    scalars)
expectations = st.builds(
    RolloutExpectation, flag=st.just("conflict_resolver"),
    percent=st.sampled_from([10.0, 25.0, 50.0]),
    environment=st.sampled_from(["production", "staging", "*"]),
    of=st.sampled_from(["users", "sessions", "requests"]))


@settings(max_examples=1000, deadline=None)
@given(reply=flags_json, expected=expectations)
def test_project_flag_replies_are_read_or_refused_and_never_match_by_accident(
        reply: Any, expected: RolloutExpectation) -> None:
    try:
        state = parse_flag(reply)
    except (AnswerError, KeyError, TypeError, ValueError):
        # The errors GitLabFlags turns into a message naming the flag; anything else would be
        # a traceback in the middle of a rollout.
        return
    problem = mismatch(state, expected)
    if problem is not None:
        assert isinstance(problem, str) and problem
        return
    # A match: the flag is on, one strategy for the environment gives exactly the expected
    # share of the expected unit, and none gives more.
    assert state.active
    here = state.strategies_for(expected.environment)
    assert any(s.audience == expected.audience for s in here)
    assert not any(s.audience.wider_than(expected.audience) for s in here)
    share = next(s for s in here if s.audience == expected.audience).audience
    assert share.kind == "percent" and share.percent == expected.percent
    assert share.of == expected.of


@pytest.mark.parametrize("list_id", [float("inf"), 1.5, "7", True, None])
def test_a_user_list_id_that_is_not_an_integer_is_refused(list_id: Any) -> None:
    reply = {"name": "conflict_resolver", "active": True, "strategies": [
        {"name": "gitlabUserList", "parameters": {}, "scopes": [
            {"environment_scope": "production"}], "user_list": {"id": list_id, "name": "team"}}]}
    with pytest.raises(AnswerError, match=r"user list 'team' of strategy gitlabUserList has the "
                       r"id .*, not an integer"):
        parse_flag(reply)
