"""The feature-flag model: a flag, its strategies, and the rollout a stage declares.

Owns what a GitLab (Unleash-compatible) feature flag is once read: ``FlagState`` with its
``Strategy`` list and ``UserList``, the ``RolloutExpectation`` a stage's ``rollout:`` becomes,
the rule (``mismatch``) that decides whether a flag is at that rollout, and the parsing of
GitLab's JSON answer into the model. Pure: no HTTP, no pytest, no token; the client in
:mod:`pytest_rollout_slo.flags.gitlab` reads and writes flags and builds on this.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def percent_text(value: float) -> str:
    """``25%``, ``12.5%``: a percentage as messages show it."""
    return f"{value:g}%"


@dataclass(frozen=True)
class _Audience:
    """Who a strategy turns the flag on for: kind all, percent, list, ids or unknown."""

    kind: str
    percent: float = 0.0
    name: str = ""
    ids: frozenset[str] = frozenset()
    of: str = "users"
    """What a percentage counts: users, sessions or requests (the strategy's stickiness)."""

    def wider_than(self, other: _Audience) -> bool:
        # Unleash enables a flag for a user when ANY strategy matches, so one broader strategy
        # next to the expected one decides who really has the feature.
        if other.kind == "all" or self.kind not in ("all", "percent"):
            return False
        return self.kind == "all" or self.percent > other.percent


def _percent_audience(raw: object, of: str = "users") -> _Audience:
    try:
        value = round(float(str(raw)), 6)
    except ValueError:
        return _Audience("unknown")
    if not 0 <= value <= 100:
        return _Audience("unknown")
    return _Audience("all") if value == 100 else _Audience("percent", value, of=of)


# Unleash's stickiness decides what a flexibleRollout percentage hashes
# (app/models/operations/feature_flags/strategy.rb): only default and userId keep a user in or
# out across sessions; sessionId is a share of sessions, random a share of requests.
STICKINESS_OF = {"default": "users", "userId": "users", "sessionId": "sessions",
                 "random": "requests"}
OF_STICKINESS = {"users": "default", "sessions": "sessionId", "requests": "random"}


def _share(percent: float, of: str) -> str:
    return percent_text(percent) + ("" if of == "users" else f" of {of}")


_SETTINGS = {"default": "default (all users)",
             "flexibleRollout": "flexibleRollout {rollout}% (stickiness {stickiness})",
             "gradualRolloutUserId": "gradualRolloutUserId {percentage}%",
             "userWithId": "userWithId {userIds}", "gitlabUserList": "gitlabUserList {list}"}


def _ids(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class RolloutExpectation:
    """The rollout a stage declares: exactly one of ``percent``, ``users`` or ``all_users``.

    ``users`` names a gitlabUserList, or is ``ids:1,2,3`` for a userWithId strategy.
    ``stage`` only names the stage in messages.
    """

    flag: str
    percent: float | None = None
    users: str | None = None
    all_users: bool = False
    environment: str = "production"
    stage: str | None = None
    of: str = "users"

    def __post_init__(self) -> None:
        given = [k for k, on in (("percent", self.percent is not None),
                                 ("users", self.users is not None), ("all", self.all_users)) if on]
        if len(given) != 1:
            raise ValueError(f"rollout of flag {self.flag!r} needs exactly one of percent, users "
                             f"or all; got {', '.join(given) or 'none'}")
        if self.percent is not None and not (math.isfinite(self.percent)
                                             and 0 <= self.percent <= 100):
            raise ValueError(f"rollout percent of flag {self.flag!r} must be within 0 and 100, "
                             f"got {self.percent}")

    @property
    def audience(self) -> _Audience:
        if self.percent is not None:
            return _percent_audience(self.percent, self.of)
        if self.users is not None:
            if self.users.startswith("ids:"):
                return _Audience("ids", ids=_ids(self.users[4:]))
            return _Audience("list", name=self.users)
        return _Audience("all")

    def describe(self) -> str:
        """``10% in production``, ``user list internal in production``, ``all users in *``."""
        audience = self.audience
        what = {"all": "all users", "percent": _share(float(self.percent or 0), self.of),
                "list": f"user list {self.users}",
                "ids": f"user ids {','.join(sorted(audience.ids))}"}[audience.kind]
        where = "every environment" if self.environment == "*" else self.environment
        return f"{what} in {where}"


@dataclass(frozen=True)
class UserList:
    """A feature-flag user list as a gitlabUserList strategy embeds it."""

    id: int
    name: str
    iid: int | None = None
    user_xids: str = ""


@dataclass(frozen=True)
class Strategy:
    """One strategy of a flag; ``scopes`` are its environment scopes (``*`` = every one)."""

    name: str
    parameters: Mapping[str, str] = field(default_factory=dict, hash=False)
    scopes: tuple[str, ...] = ()
    user_list: UserList | None = None
    id: int | None = None

    def applies_to(self, environment: str) -> bool:
        if environment == "*":
            return bool(self.scopes)
        # GitLab environment scopes are literal names in which ``*`` matches any text.
        return any(re.fullmatch(".*".join(map(re.escape, scope.split("*"))), environment)
                   for scope in self.scopes)

    @property
    def audience(self) -> _Audience:
        if self.name == "default":
            return _Audience("all")
        if self.name == "flexibleRollout":
            stickiness = self.parameters.get("stickiness", "default")
            return _percent_audience(self.parameters.get("rollout"),
                                     STICKINESS_OF.get(stickiness, f"stickiness {stickiness}"))
        if self.name == "gradualRolloutUserId":
            return _percent_audience(self.parameters.get("percentage"))
        if self.name == "userWithId":
            return _Audience("ids", ids=_ids(self.parameters.get("userIds", "")))
        if self.name == "gitlabUserList" and self.user_list is not None:
            return _Audience("list", name=self.user_list.name)
        return _Audience("unknown")

    def setting(self) -> str:
        """``flexibleRollout 25% (stickiness default)``: the strategy without its scopes."""
        p = {**self.parameters, "list": self.user_list.name if self.user_list else "(no list)"}
        shape = _SETTINGS.get(self.name)
        return shape.format_map(defaultdict(str, p)) if shape else \
            f"{self.name} {dict(self.parameters)}"

    def where(self) -> str:
        return f"in {', '.join(self.scopes)}" if self.scopes else "in no environment"

    def describe(self) -> str:
        return f"{self.setting()} {self.where()}"

    def reach(self) -> str:
        """What the strategy does for a mismatch message: ``at 25% (flexibleRollout in x)``."""
        audience, how = self.audience, f"({self.name} {self.where()})"
        if audience.kind == "percent":
            if audience.of != "users":
                how = (f"({self.name}, stickiness {self.parameters.get('stickiness')}, "
                       f"{self.where()})")
            return f"at {_share(audience.percent, audience.of)} {how}"
        return {"all": "on for all users", "list": f"on for user list {audience.name}",
                "ids": f"on for user ids {self.parameters.get('userIds')}",
                }.get(audience.kind, f"set to {self.setting()}") + f" {how}"


@dataclass(frozen=True)
class FlagState:
    """A flag as GitLab reports it."""

    name: str
    active: bool
    strategies: tuple[Strategy, ...] = ()

    def strategies_for(self, environment: str) -> tuple[Strategy, ...]:
        return tuple(s for s in self.strategies if s.applies_to(environment))

    def describe(self) -> str:
        state = "active" if self.active else "inactive (off for everyone)"
        kept = "; ".join(s.describe() for s in self.strategies) or "no strategies"
        return f"{self.name}: {state}, {kept}"


def mismatch(state: FlagState, expected: RolloutExpectation) -> str | None:
    """Why ``state`` is not the rollout ``expected`` declares, or None when it is."""
    stage = f"stage {expected.stage}" if expected.stage else "the stage"
    wants = f"{stage} expects {expected.describe()}"
    if not state.active:
        return f"the flag is inactive, so it is off for everyone, but {wants}"
    here = state.strategies_for(expected.environment)
    if not here:
        return (f"the flag has no strategy for environment {expected.environment}, so it is off "
                f"there, but {wants}")
    target = expected.audience
    wider = [s for s in here if s.audience.wider_than(target)]
    if not any(s.audience == target for s in here):
        return f"the flag is {' and '.join(s.reach() for s in here)} but {wants}"
    if wider:
        return (f"the flag has the expected rollout but is also "
                f"{' and '.join(s.reach() for s in wider)}, so it reaches more users than {wants}")
    return None


class AnswerError(Exception):
    """GitLab's JSON does not have the documented shape; the text says what is missing."""


def parse_flag(data: Any) -> FlagState:
    """The flag in GitLab's JSON answer.

    Raises AnswerError for a missing part, and may raise KeyError, TypeError or ValueError for
    a part of the wrong type; the caller turns either into its own error naming the flag.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) \
            or not isinstance(data.get("active"), bool):
        raise AnswerError('no flag object with "name" and "active"')
    if data.get("version", "new_version_flag") != "new_version_flag":
        raise AnswerError(f"a {data.get('version')} flag; only new_version_flag strategies are "
                          "supported (GitLab removed legacy flags in 14.0)")
    raw = data.get("strategies")
    if not isinstance(raw, list):
        raise AnswerError('no "strategies" list')
    return FlagState(data["name"], data["active"], tuple(_parse_strategy(s) for s in raw))


def _parse_strategy(data: Any) -> Strategy:
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise AnswerError('a strategy without a "name"')
    params = data.get("parameters") or {}
    scopes = data.get("scopes") or []
    if not isinstance(params, Mapping) or not isinstance(scopes, list) \
            or not all(isinstance(s, Mapping) and "environment_scope" in s for s in scopes):
        raise AnswerError(f'strategy {data["name"]} without "parameters" and "scopes"')
    lst = data.get("user_list")
    user_list = None
    if isinstance(lst, Mapping) and "id" in lst and "name" in lst:
        # GitLab's ids are JSON integers; a float (1e999 is infinity), a string or a boolean
        # is not an answer GitLab sends, so it is refused rather than converted.
        if type(lst["id"]) is not int:
            raise AnswerError(f"user list {lst['name']!r} of strategy {data['name']} has the "
                              f"id {lst['id']!r}, not an integer")
        iid = lst.get("iid")
        user_list = UserList(lst["id"], str(lst["name"]), iid if type(iid) is int else None,
                             str(lst.get("user_xids") or ""))
    return Strategy(data["name"], {str(k): str(v) for k, v in params.items()},
                    tuple(str(s["environment_scope"]) for s in scopes), user_list,
                    data["id"] if isinstance(data.get("id"), int) else None)


__all__ = ["OF_STICKINESS", "STICKINESS_OF", "AnswerError", "FlagState", "RolloutExpectation",
           "Strategy", "UserList", "mismatch", "parse_flag", "percent_text"]
