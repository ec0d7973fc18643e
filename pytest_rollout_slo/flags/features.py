"""GitLab's development feature flags (Flipper) through the instance Features API.

Owns the model of such a flag as ``GET /features`` reports it (``state`` on, off or
conditional, and its gates ``boolean``, ``actors``, ``percentage_of_actors``,
``percentage_of_time``, ``groups``), the rule that says whether it is at a stage's rollout,
the words a release manager knows for it (ChatOps ``feature set ...``), and the client that
reads it and rolls it back with ``POST /features/:name``. The API needs an administrator's
token; there are no environments (staging and production are separate instances). No pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from pytest_rollout_slo.flags.gitlab import (
    GitLabClient,
    GitLabError,
    GitLabNotFoundError,
    GitLabPermissionError,
    answer_text,
)
from pytest_rollout_slo.flags.model import AnswerError, percent_text

_ADMIN = ("the Features API is open to administrators only: on a self-managed instance use a "
          "personal access token of an administrator with the api scope (and the admin_mode "
          "scope where Admin Mode is on), stored as a masked CI/CD variable; on GitLab.com "
          "only GitLab team members set development flags, through ChatOps")


@dataclass(frozen=True)
class FeatureExpectation:
    """The rollout a stage declares for a development flag.

    ``percent`` of ``of`` (users: ``percentage_of_actors``; requests: ``percentage_of_time``),
    and/or ``actors`` (Flipper ids such as ``User:1``) and ``feature_group``; or ``all_users``
    (the boolean gate). ``stage`` only names the stage in messages.
    """

    flag: str
    percent: float | None = None
    of: str = "users"
    actors: frozenset[str] = frozenset()
    feature_group: str | None = None
    all_users: bool = False
    stage: str | None = None

    @property
    def groups(self) -> frozenset[str]:
        return frozenset([self.feature_group]) if self.feature_group else frozenset()

    def describe(self) -> str:
        """``10% of users (percentage_of_actors)``, ``feature group gitlab_team_members``."""
        if self.all_users:
            return "on for everyone (boolean gate)"
        parts = []
        if self.percent is not None:
            parts.append(_percent_words(self.percent, self.of))
        parts += [f"feature group {g}" for g in sorted(self.groups)]
        if self.actors:
            parts.append(f"actors {', '.join(sorted(self.actors))}")
        return " and ".join(parts)

    def chatops(self) -> str:
        """The ChatOps commands that set the flag to this rollout."""
        name = self.flag
        if self.all_users:
            return f"`/chatops run feature set {name} true`"
        commands = [f"`/chatops run feature set --feature-group={g} {name} true`"
                    for g in sorted(self.groups)]
        commands += [f"`/chatops run feature set {_actor_option(a)} {name} true`"
                     for a in sorted(self.actors)]
        if self.percent is not None:
            actors = " --actors" if self.of == "users" else ""
            commands.append(f"`/chatops run feature set {name} {self.percent:g}{actors}`")
        return ", then ".join(commands)


def _percent_words(percent: float, of: str) -> str:
    key = "percentage_of_actors" if of == "users" else "percentage_of_time"
    return f"{percent_text(percent)} of {of} ({key})"


def _actor_option(actor: str) -> str:
    kind, _, number = actor.rpartition(":")
    option = {"User": "user", "Project": "project", "Group": "group"}.get(kind)
    return f"--{option}=<{option} {number}>" if option else f"<actor {actor}>"


@dataclass(frozen=True)
class FeatureState:
    """A development flag as ``GET /features`` reports it; a percentage of 0 is unset."""

    name: str
    state: str
    boolean: bool = False
    actors: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    percentage_of_actors: float = 0.0
    percentage_of_time: float = 0.0

    def describe(self) -> str:
        """``conflict_resolver is conditional: 25% of users (percentage_of_actors), ...``."""
        if self.boolean:
            return f"{self.name} is on for everyone (boolean gate; `feature set {self.name} true`)"
        parts = []
        if self.percentage_of_actors:
            parts.append(f"{_percent_words(self.percentage_of_actors, 'users')}, as "
                         f"`feature set {self.name} {self.percentage_of_actors:g} --actors`")
        if self.percentage_of_time:
            parts.append(f"{_percent_words(self.percentage_of_time, 'requests')}, as "
                         f"`feature set {self.name} {self.percentage_of_time:g}`")
        parts += [f"feature group {g}" for g in sorted(self.groups)]
        if self.actors:
            parts.append(f"actors {', '.join(sorted(self.actors))}")
        return f"{self.name} is {self.state}: {'; '.join(parts) or 'no gate is open'}"


def feature_mismatch(state: FeatureState | None, expected: FeatureExpectation) -> str | None:
    """Why ``state`` is not the rollout ``expected`` declares, or None when it is.

    A percentage must be the stage's own, of the stage's own kind; the other kind must be
    unset, since it reaches requests (or users) the stage does not count. At a stage without
    a percentage (internal) the actors and groups are exactly the declared ones; at a
    percentage stage the declared ones must be there and more may be (the internal testers
    keep the feature through the beta).
    """
    stage = f"stage {expected.stage}" if expected.stage else "the stage"
    wants = f"{stage} expects {expected.describe()}"
    if state is None:
        return ("GET /features does not list it, so no gate was ever set on this instance and "
                f"it follows the default_enabled of its YAML definition, but {wants}")
    # Flipper reports `on` for a flag fully on by any gate (the boolean, or a percentage of
    # time at 100), whatever the gates list shows.
    full = state.boolean or state.state == "on"
    if expected.all_users:
        return None if full else f"{state.describe()}, but {wants}"
    if full:
        return f"{state.describe()}, so it reaches more than {wants}"
    if state.state == "off":
        return f"{state.describe()}, so it is off for everyone, but {wants}"
    own, other = ((state.percentage_of_actors, state.percentage_of_time)
                  if expected.of == "users" else
                  (state.percentage_of_time, state.percentage_of_actors))
    if round(own, 6) != round(expected.percent or 0.0, 6) or other:
        return f"{state.describe()}, but {wants}"
    exact = expected.percent is None
    for kind, have, declared in (("feature group", state.groups, expected.groups),
                                 ("actors", state.actors, expected.actors)):
        if not declared <= have:
            return (f"{state.describe()}: {kind} {', '.join(sorted(declared - have))} missing, "
                    f"but {wants}")
        if exact and have - declared:
            return (f"{state.describe()}: also {kind} {', '.join(sorted(have - declared))}, so "
                    f"it reaches more than {wants}")
    return None


def parse_features(data: Any, name: str) -> FeatureState | None:
    """The flag ``name`` in ``GET /features``'s list, or None when it is not there.

    Raises AnswerError for a list or gate without the documented shape.
    """
    if not isinstance(data, list):
        raise AnswerError("not a list of features")
    found = [item for item in data if isinstance(item, Mapping) and item.get("name") == name]
    if len(found) > 1:
        # Which one GitLab applies is unknown here: a check must not pick one.
        raise AnswerError(f"the feature {name!r} is listed {len(found)} times")
    return parse_feature(found[0]) if found else None


def parse_feature(data: Any) -> FeatureState:
    """One feature object: ``{name, state, gates: [{key, value}], definition}``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) \
            or data.get("state") not in ("on", "off", "conditional") \
            or not isinstance(data.get("gates"), list):
        raise AnswerError('no feature object with "name", "state" (on, off or conditional) '
                          'and a "gates" list')
    gates: dict[str, Any] = {}
    for gate in data["gates"]:
        if not isinstance(gate, Mapping) or not isinstance(gate.get("key"), str):
            raise AnswerError('a gate without a "key"')
        if gate["key"] in gates:
            raise AnswerError(f"the gate {gate['key']!r} is listed twice")
        gates[gate["key"]] = gate.get("value")
    return FeatureState(
        data["name"], data["state"], gates.get("boolean") is True,
        _names(gates.get("actors"), "actors"), _names(gates.get("groups"), "groups"),
        _percentage(gates.get("percentage_of_actors"), "percentage_of_actors"),
        _percentage(gates.get("percentage_of_time"), "percentage_of_time"))


def _names(value: Any, key: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnswerError(f"gate {key} is not a list of names")
    return frozenset(value)


def _percentage(value: Any, key: str) -> float:
    if value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnswerError(f"gate {key} is not a number: {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 100:
        raise AnswerError(f"gate {key} is not a percentage: {value!r}")
    return number


# How an actor gate's Flipper id (``User:1``) is given back to POST /features/:name: the
# target parameter and the API path whose answer holds the name that parameter takes.
_TARGETS = {"User": ("user", "/users/{}", "username"),
            "Project": ("project", "/projects/{}", "path_with_namespace"),
            "Group": ("group", "/groups/{}", "full_path")}


class GitLabFeatures(GitLabClient):
    """The development feature flags of one GitLab instance, through an administrator's token."""

    def __repr__(self) -> str:
        return self._redact(f"GitLabFeatures({self.host!r})")

    def get(self, flag: str) -> FeatureState | None:
        """The flag in ``GET /features``, or None when no gate of it was ever set."""
        try:
            return parse_features(self._listing(), flag)
        except AnswerError as exc:
            raise self._error(GitLabError, f"GitLab's answer to GET /features is not the "
                              f"documented list of features: {exc}") from None

    def _listing(self) -> Any:
        """Every page of ``GET /features``.

        GitLab documents the list as one answer, but if a proxy or a later version pages it, a
        flag missing from the first page would read as never set: a check would hold a good
        stage, and a rollback would leave the flag on, saying it was already off. So pages
        that the answer points to are followed, and a listing that never ends is an error.
        """
        listed: list[Any] = []
        for data in self._pages("/features", "the development feature flags",
                                runaway="the flag's state is unknown"):
            if not isinstance(data, list):
                return data  # parse_features names what is wrong with it
            listed += data
        return listed

    def check(self, expected: FeatureExpectation) -> str | None:
        """None when the flag is at ``expected``, else one paragraph saying how it differs."""
        reason = feature_mismatch(self.get(expected.flag), expected)
        if reason is None:
            return None
        return self._redact(
            f"development feature flag {expected.flag} on {self.host} does not match the "
            f"rollout the stage gates: {reason}. Set it with {expected.chatops()} (or POST "
            "/features/:name) before gating, or gate the stage it is really at.")

    def rollback(self, flag: str, to: FeatureExpectation | None) -> str:
        """Put ``flag`` back to ``to`` (the previous stage), or turn it off when ``to`` is None.

        A percentage is lowered in place. Anything else (the boolean gate, the other kind of
        percentage, a stage without a percentage) needs Flipper's only way to close a gate
        through the API, ``value=false``, which clears every gate; the previous stage's gates,
        and at a percentage stage the actors and groups the flag had, are then set again.
        A flag that is off is left off: a rollback never widens the audience.
        """
        if to is not None and to.flag != flag:
            raise ValueError(f"rollback of flag {flag!r} to a rollout of flag {to.flag!r}")
        return self._redact(self._rollback(flag, to))

    def _rollback(self, flag: str, to: FeatureExpectation | None) -> str:
        state = self.get(flag)
        if state is None or state.state == "off":
            also = f" rather than setting it to {to.describe()}" if to else ""
            return (f"Development feature flag {flag} was already off on {self.host}; left it "
                    f"off{also}.")
        if to is None:
            after = self._set(flag, {"value": "false"})
            if after.state != "off":
                raise self._error(GitLabError, f"GitLab accepted turning development feature "
                                  f"flag {flag} off but reports {after.describe()}; run "
                                  f"`/chatops run feature set {flag} false` now")
            return (f"Turned development feature flag {flag} off on {self.host} (POST "
                    f"/features/{flag} value=false, as `feature set {flag} false`); it was: "
                    f"{state.describe()}. Flipper cleared all its gates.")
        if feature_mismatch(state, to) is None:
            return f"Development feature flag {flag} is already {to.describe()}; nothing changed."
        steps = self._steps(state, to)
        after = state
        for body in steps:
            after = self._set(flag, body)
        if feature_mismatch(after, to) is not None:
            raise self._error(GitLabError, f"GitLab accepted the rollback of development feature "
                              f"flag {flag} but now reports {after.describe()}, which is not "
                              f"{to.describe()}; set it with {to.chatops()} now")
        sent = "; ".join(" ".join(f"{k}={v}" for k, v in b.items()) for b in steps)
        stage = f" (stage {to.stage})" if to.stage else ""
        return (f"Rolled development feature flag {flag} back to {to.describe()}{stage} on "
                f"{self.host}: it was: {state.describe()}; sent POST /features/{flag} with "
                f"{sent}; now: {after.describe()}.")

    def _steps(self, state: FeatureState, to: FeatureExpectation) -> list[dict[str, str]]:
        key = "percentage_of_actors" if to.of == "users" else "percentage_of_time"
        other = state.percentage_of_time if to.of == "users" else state.percentage_of_actors
        percent = [{"value": f"{to.percent:g}", "key": key}] if to.percent else []
        if to.percent and not state.boolean and not other:
            # Lowering a percentage in place keeps the actors' buckets: the smaller cohort is
            # a subset of the larger one, and no one in it loses the feature in between.
            return [*self._targets(to.groups - state.groups, to.actors - state.actors), *percent]
        keep_groups = to.groups | (state.groups if to.percent else frozenset())
        keep_actors = to.actors | (state.actors if to.percent else frozenset())
        # Resolved before anything is written: an actor that cannot be set again must not be
        # found only after value=false has cleared the flag.
        targets = self._targets(keep_groups, keep_actors)
        return [{"value": "false"}, *targets, *percent]

    def _targets(self, groups: frozenset[str], actors: frozenset[str]) -> list[dict[str, str]]:
        bodies = [{"value": "true", "feature_group": g} for g in sorted(groups)]
        for actor in sorted(actors):
            kind, _, number = actor.rpartition(":")
            if kind not in _TARGETS or not number.isdigit():
                raise self._error(GitLabError, f"actor {actor} cannot be set again through the "
                                  "Features API (only User, Project and Group actors can); "
                                  "roll the flag back with ChatOps")
            param, path, field = _TARGETS[kind]
            data, _ = self._call("GET", path.format(number), f"actor {actor}")
            name = data.get(field) if isinstance(data, Mapping) else None
            if not isinstance(name, str):
                raise self._error(GitLabError, f"GitLab's answer for actor {actor} has no "
                                  f"{field}; roll the flag back with ChatOps")
            bodies.append({"value": "true", param: name})
        return bodies

    def _set(self, flag: str, form: dict[str, str]) -> FeatureState:
        data, _ = self._call("POST", f"/features/{quote(flag, safe='')}",
                             f"development feature flag {flag}", form=form)
        try:
            return parse_feature(data)
        except AnswerError as exc:
            raise self._error(GitLabError, f"GitLab's answer to POST /features/{flag} is not "
                              f"the documented feature: {exc}") from None

    def _status_problem(self, resp: requests.Response, method: str, what: str,
                        shown: str) -> tuple[type[GitLabError], str]:
        status, head = resp.status_code, f"{resp.status_code} {resp.reason}"
        if status == 401:
            return GitLabPermissionError, (
                f"GitLab refused the token for {shown} ({head}): it is invalid, expired or "
                f"revoked, or it is a CI job token; {_ADMIN}")
        if status == 403:
            action = "change" if method != "GET" else "read"
            return GitLabPermissionError, (
                f"the token may not {action} development feature flags ({shown} answered "
                f"{head}): it is not an administrator's token; {_ADMIN}")
        if status == 404:
            return GitLabNotFoundError, (
                f"{what} is not there ({shown} answered {head}); check that the url is the "
                "GitLab instance's root or /api/v4 root")
        if status == 400:
            return GitLabError, (f"GitLab refused to set {what} ({shown} answered {head}: "
                                 f"{answer_text(resp)})")
        return super()._status_problem(resp, method, what, shown)


__all__ = ["FeatureExpectation", "FeatureState", "GitLabFeatures", "feature_mismatch",
           "parse_feature", "parse_features"]
