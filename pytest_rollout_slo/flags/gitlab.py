"""GitLab product feature flags over HTTP: read a flag, check it against a stage, roll it back.

Owns the client of GitLab's REST API v4 for Unleash-compatible feature flags
(``/projects/:id/feature_flags``), its errors, and the rollback write; the model of a flag
and the rule that decides whether it is at a stage's rollout live in
:mod:`pytest_rollout_slo.flags.model`.
Imports no pytest; the plugin wires it in only when a stage declares ``rollout:``. The token
travels in the ``PRIVATE-TOKEN`` header only, and every text leaving this module passes a
Redactor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests

from pytest_rollout_slo.backends.http import HttpClient, transport_message
from pytest_rollout_slo.backends.redact import (
    Redactor,
    printable,
    strip_url_credentials,
)
from pytest_rollout_slo.errors import SloError
from pytest_rollout_slo.flags.model import (
    OF_STICKINESS,
    STICKINESS_OF,
    AnswerError,
    FlagState,
    RolloutExpectation,
    Strategy,
    mismatch,
    parse_flag,
    percent_text,
)

# The longest Retry-After worth waiting for inside a gate run; GitLab's own limits ask for
# up to a minute, which a release manager would rather see as an error to retry later.
_RETRY_AFTER = 30.0
# A listing with more pages than this is a runaway (or a proxy repeating the first page).
MAX_PAGES = 50


class GitLabError(SloError):
    """GitLab could not answer, or answered something this module cannot trust."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


class GitLabPermissionError(GitLabError):
    """401 or 403: the token is invalid, or lacks the scope or role the call needs."""


class GitLabNotFoundError(GitLabError):
    """404: the project, the flag or the user list does not exist (or is hidden from the token)."""


class GitLabClient:
    """GitLab's REST API v4 with a token: the request, and the errors every endpoint shares.

    ``url`` is GitLab's root (``https://gitlab.example.com``) or its API root (``CI_API_V4_URL``).
    Subclasses word 401, 403 and 404 for their endpoints in :meth:`_status_problem`.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 10.0, retries: int = 2) -> None:
        api = url.rstrip("/")
        self._api = api if api.endswith("/api/v4") else f"{api}/api/v4"
        self._token = token
        self._redact = Redactor([token])
        # Only reads are retried: replaying a write (a rollback PUT whose _destroy ids are
        # already gone, a note POST) would fail, or worse, apply twice. GitLab's rate limit
        # answers 429 with Retry-After; a wait up to _RETRY_AFTER is honoured, a longer one
        # ends in the 429's own message.
        self._http = HttpClient(timeout=timeout, retries=retries, retried_methods=("GET",),
                                retry_after=_RETRY_AFTER, headers={"PRIVATE-TOKEN": token})

    @property
    def host(self) -> str:
        """GitLab's API root, without credentials, for messages."""
        return strip_url_credentials(self._api)

    def close(self) -> None:
        """Close the HTTP session."""
        self._http.close()

    def _error(self, kind: type[GitLabError], message: str,
               status: int | None = None) -> GitLabError:
        return kind(self._redact(message), status=status)

    def _pages(self, path: str, what: str, params: Mapping[str, str] | None = None, *,
               runaway: str) -> Iterator[Any]:
        """The JSON answer of each page of a listing, following :func:`next_page`.

        GitLabError after ``MAX_PAGES``, ending with ``runaway`` (what that means for the
        caller): a listing that long is a runaway, or a proxy repeating a page, and reading
        it as complete could miss what it was asked for.
        """
        query = dict(params or {})
        for _ in range(MAX_PAGES):
            data, resp = self._call("GET", path, what, params=query or None)
            yield data
            following = next_page(resp)
            if following is None:
                return
            query = {**query, **following}
        raise self._error(GitLabError, f"GET {path} ({what}) went on for more than {MAX_PAGES} "
                          f"pages; a proxy may be repeating them: {runaway}")

    def _call(self, method: str, path: str, what: str, *,
              json_body: Mapping[str, Any] | None = None,
              form: Mapping[str, str] | None = None,
              params: Mapping[str, str] | None = None) -> tuple[Any, requests.Response]:
        """Send one request to ``path`` under the API root; its JSON answer and the response."""
        url = f"{self._api}{path}"
        shown = f"{method} {strip_url_credentials(url)}"
        timeout = self._http.attempt_timeout()
        try:
            resp = self._http.request(method, url, json=json_body, data=form, params=params,
                                      timeout=timeout)
        except requests.RequestException as exc:
            raise self._error(GitLabError, transport_message(exc, f"GitLab ({shown})",
                                                             timeout)) from exc
        status = resp.status_code
        if status >= 300:
            raise self._error(*self._status_problem(resp, method, what, shown), status=status)
        try:
            return resp.json(), resp
        except ValueError:
            kind = resp.headers.get("Content-Type", "no content type")
            raise self._error(GitLabError, f"GitLab answered {shown} with a body that is not "
                              f"JSON ({kind}): {printable(resp.content)}; check that the url "
                              "is GitLab's root or its /api/v4 root, not a proxy or login "
                              "page", status=status) from None

    def _status_problem(self, resp: requests.Response, method: str, what: str,
                        shown: str) -> tuple[type[GitLabError], str]:
        status, head = resp.status_code, f"{resp.status_code} {resp.reason}"
        text = answer_text(resp)
        if status == 401:
            return GitLabPermissionError, (
                f"GitLab refused the token for {shown} ({head}): it is invalid, expired or "
                "revoked, or it is a CI job token, which this API does not accept")
        if status == 403:
            return GitLabPermissionError, f"the token may not {method} {what} ({head}: {text})"
        if status == 404:
            return GitLabNotFoundError, f"{what} does not exist ({shown} answered {head})"
        if 300 <= status < 400:
            return GitLabError, (f"GitLab answered {shown} with {head}, a redirect to "
                                 f"{resp.headers.get('Location')}; set the url to GitLab's "
                                 "final address (https, no trailing path)")
        if status == 429:
            wait = resp.headers.get("Retry-After")
            after = f"; it asks to wait {wait}s" if wait else ""
            return GitLabError, (f"GitLab rate-limited {shown} ({head}{after}); run the job "
                                 "again later, or ask the instance's admins about the limit")
        if status >= 500:
            return GitLabError, (f"GitLab failed on {shown} ({head}: {text}); GitLab is down "
                                 "or overloaded, try again later")
        return GitLabError, f"GitLab rejected {shown} ({head}): {text}"


def next_page(resp: requests.Response) -> dict[str, str] | None:
    """The query of the next page: offset pagination's ``X-Next-Page``, else the parameters of
    keyset pagination's ``Link: rel="next"`` (only its query: the token goes nowhere else)."""
    page = resp.headers.get("X-Next-Page", "").strip()
    if page:
        return {"page": page}
    link: Any = resp.links.get("next", {}).get("url")
    if isinstance(link, str) and link:
        return dict(parse_qsl(urlsplit(link).query))
    return None


def answer_text(resp: requests.Response) -> str:
    """GitLab's own words in an error answer: its ``message`` or ``error``, else the body."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    detail = body.get("message") or body.get("error") if isinstance(body, Mapping) else None
    return str(detail) if detail else printable(resp.content)


class GitLabProjectClient(GitLabClient):
    """An API client for the endpoints under one project (``/projects/:id``, id or path)."""

    def __init__(self, url: str, project: str | int, token: str, *, timeout: float = 10.0,
                 retries: int = 2) -> None:
        super().__init__(url, token, timeout=timeout, retries=retries)
        self.project = str(project)
        self._project = quote(self.project, safe="")

    def __repr__(self) -> str:
        return self._redact(f"{type(self).__name__}({self.host!r}, project={self.project!r})")


class GitLabFlags(GitLabProjectClient):
    """The feature flags of one GitLab project, through a project (or personal) access token."""

    def get(self, flag: str) -> FlagState:
        """The flag's current state: ``GET /projects/:id/feature_flags/:name``."""
        return self._flag("GET", flag)

    def check(self, expected: RolloutExpectation) -> str | None:
        """None when the flag is at ``expected``, else one paragraph saying how it differs."""
        state = self.get(expected.flag)
        reason = mismatch(state, expected)
        if reason is None:
            return None
        return self._redact(
            f"feature flag {state.name} does not match the rollout the stage gates: {reason}. "
            f"GitLab reports {state.describe()}. Set the flag in GitLab (Deploy > Feature "
            "flags) to the stage's rollout before gating, or gate the stage it is really at.")

    def rollback(self, flag: str, to: RolloutExpectation | None) -> str:
        """Put ``flag`` back to ``to`` (the previous stage), or disable it when ``to`` is None.

        In ``to.environment``, strategies reaching users by percentage or everyone are sent with
        their id and ``_destroy: true``, and the previous stage's strategy is added unless an
        equal one is already there; user lists and user ids stay. A flag that is inactive is
        left inactive: a rollback never widens the audience.
        """
        if to is not None and to.flag != flag:
            raise ValueError(f"rollback of flag {flag!r} to a rollout of flag {to.flag!r}")
        return self._redact(self._rollback(flag, to))

    def _rollback(self, flag: str, to: RolloutExpectation | None) -> str:
        state = self.get(flag)
        if not state.active:
            also = f" rather than re-enabling it at {to.describe()}" if to else ""
            return f"Feature flag {flag} was already inactive; left it inactive{also}."
        if to is None:
            after = self._flag("PUT", flag, {"active": False})
            if after.active:
                raise self._error(GitLabError, f"GitLab accepted disabling feature flag {flag} "
                                  "but still reports it active; disable it in GitLab now")
            return (f"Disabled feature flag {flag} in project {self.project} (it was "
                    f"{state.describe()}); its strategies are kept, so it can be re-enabled "
                    "in GitLab once the cause is fixed.")
        if mismatch(state, to) is None:
            return f"Feature flag {flag} is already at {to.describe()}; nothing changed."
        here, target = state.strategies_for(to.environment), to.audience
        # Explicit user targeting stays, so internal testers keep the feature when 25% goes
        # back to 10%; what reaches users by chance, or everyone, is what is rolled back.
        old = tuple(s for s in here if s.audience.kind not in ("list", "ids"))
        if any(s.id is None for s in old):
            raise self._error(GitLabError, f"GitLab reported a strategy of {flag} without an id, "
                              "so it cannot be replaced; roll the flag back in GitLab")
        body: list[dict[str, Any]] = [{"id": s.id, "_destroy": True} for s in old]
        if not any(s.audience == target for s in here if s not in old):
            body.append(self._strategy_body(state, to, old))
        after = self._flag("PUT", flag, {"strategies": body})
        if mismatch(after, to) is not None:
            raise self._error(GitLabError, f"GitLab accepted the rollback of feature flag {flag} "
                              f"but now reports {after.describe()}, which is not "
                              f"{to.describe()}; check the flag in GitLab now")
        removed = "; ".join(s.describe() for s in old) or "nothing"
        now = "; ".join(s.describe() for s in after.strategies_for(to.environment))
        stage = f" (stage {to.stage})" if to.stage else ""
        return (f"Rolled feature flag {flag} back to {to.describe()}{stage}: removed {removed}; "
                f"it now has {now}.")

    def _strategy_body(self, state: FlagState, to: RolloutExpectation,
                       old: tuple[Strategy, ...]) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "default", "parameters": {},
                                "scopes": [{"environment_scope": to.environment}]}
        audience = to.audience
        if audience.kind == "percent":
            percent = float(to.percent or 0)
            if percent != int(percent):
                raise self._error(GitLabError, f"GitLab takes whole percentages only; cannot "
                                  f"roll feature flag {to.flag} back to {percent_text(percent)}")
            # Keeping the kind, groupId and stickiness of the strategy being replaced keeps the
            # same hash buckets, so the smaller cohort is a subset of the larger one.
            kinds = [s for s in old if s.name in ("flexibleRollout", "gradualRolloutUserId")]
            p = kinds[0].parameters if kinds else {}
            group = p.get("groupId", "default")
            if kinds and kinds[0].name == "gradualRolloutUserId" and to.of == "users":
                body.update(name="gradualRolloutUserId",
                            parameters={"groupId": group, "percentage": str(int(percent))})
            else:
                # The stage's own `of` decides the stickiness; among the ones counting users,
                # the replaced strategy's is kept.
                stickiness = p.get("stickiness", "default")
                if STICKINESS_OF.get(stickiness) != to.of:
                    stickiness = OF_STICKINESS[to.of]
                body.update(name="flexibleRollout", parameters={
                    "groupId": group, "rollout": str(int(percent)), "stickiness": stickiness})
        elif audience.kind == "ids":
            body.update(name="userWithId", parameters={
                "userIds": ",".join(sorted(audience.ids))})
        elif audience.kind == "list":
            body.update(name="gitlabUserList",
                        user_list_id=self._user_list_id(state, audience.name))
        return body

    def _user_list_id(self, state: FlagState, name: str) -> int:
        for strategy in state.strategies:
            if strategy.user_list is not None and strategy.user_list.name == name:
                return strategy.user_list.id
        for found in self._pages(f"/projects/{self._project}/feature_flags_user_lists",
                                 f"user list {name}", {"search": name, "per_page": "100"},
                                 runaway="the user list was not found, nothing was changed"):
            for item in found if isinstance(found, list) else ():
                if isinstance(item, Mapping) and item.get("name") == name and "id" in item:
                    return int(item["id"])
        raise self._error(GitLabNotFoundError, f"project {self.project} has no feature flag user "
                          f"list named {name!r}; create it under Deploy > Feature flags > "
                          "User lists, or fix users: in the stage's rollout", status=404)

    def _flag(self, method: str, flag: str, body: dict[str, Any] | None = None) -> FlagState:
        data = self._request(method, f"/feature_flags/{quote(flag, safe='')}",
                             f"feature flag {flag!r}", json_body=body)
        try:
            return parse_flag(data)
        except (AnswerError, KeyError, TypeError, ValueError) as exc:
            raise self._error(GitLabError, f"GitLab's answer for feature flag {flag!r} is not "
                              f"the documented feature flag: {exc}") from None

    def _request(self, method: str, path: str, what: str, *,
                 json_body: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None) -> Any:
        return self._call(method, f"/projects/{self._project}{path}", what,
                          json_body=json_body, params=params)[0]

    def _status_problem(self, resp: requests.Response, method: str, what: str,
                        shown: str) -> tuple[type[GitLabError], str]:
        status, head = resp.status_code, f"{resp.status_code} {resp.reason}"
        text = answer_text(resp)
        write = method != "GET"
        scope = "api" if write else "read_api (or api)"
        if status == 401:
            return GitLabPermissionError, (
                f"GitLab refused the token for {shown} ({head}): it is invalid, expired or "
                "revoked, or it is a CI job token, which cannot use the feature flags API. Use "
                f"a project access token with the {scope} scope and at least the Developer role, "
                "stored as a masked CI/CD variable (SLO_GITLAB_TOKEN)")
        if status == 403:
            action = "change" if write else "read"
            return GitLabPermissionError, (
                f"the token may not {action} feature flags of project {self.project} ({head}: "
                f"{text}): that needs the {scope} scope and at least the Developer role in the "
                "project; CI_JOB_TOKEN can never change feature flags, so use a project access "
                "token")
        if status == 404:
            if "project" in text.lower():
                return GitLabNotFoundError, (
                    f"project {self.project} does not exist, or the token cannot see it ({shown} "
                    f"answered {head}); check CI_PROJECT_ID or the project path")
            return GitLabNotFoundError, (
                f"{what} does not exist in project {self.project} ({shown} answered {head}); "
                "create it under Deploy > Feature flags, or fix the name in the stage's rollout")
        return super()._status_problem(resp, method, what, shown)


__all__ = ["MAX_PAGES", "GitLabClient", "GitLabError", "GitLabFlags", "GitLabNotFoundError",
           "GitLabPermissionError", "GitLabProjectClient", "answer_text", "next_page"]
