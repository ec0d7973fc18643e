"""End-to-end tests of ``--slo-mr-note``: one note per merge request and stage, on every outcome.

An in-process pytester run over a SQLite events database, with ``responses`` standing in for
GitLab's notes API (``GET/POST /projects/:id/merge_requests/:iid/notes``, ``PUT .../:note_id``,
pages through ``X-Next-Page``). The first run adds the note, the next finds it by its hidden
marker and updates it, whether the gate passed, failed, warned or was a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from specdata import ERROR_RATE
from test_plugin_flags_e2e import API, GREEN, RED, TOKEN, make_db, run, write_spec

pytest_plugins = ["pytester"]

NOTES = f"{API}/projects/42/merge_requests/7/notes"
MARKER = "<!-- pytest-rollout-slo:note:beta-10 -->"
STAGES = "stages:\n  beta-10: {}\n"
WARNED = (40, 1000)  # 4.00%: under max 5%, over the warn level 3%
WARN_RATE = ERROR_RATE.replace("  max: 5%\n", "  max: 5%\n  warn: {max: 3%}\n")


def note(nid: int, body: str, *, system: bool = False) -> dict[str, Any]:
    return {"id": nid, "type": None, "body": body, "author": {"id": 9, "username": "rollout-bot"},
            "created_at": "2026-11-26T11:00:00.000Z", "system": system, "noteable_id": 3,
            "noteable_type": "MergeRequest", "noteable_iid": 7}


@pytest.fixture(autouse=True)
def gitlab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLO_GITLAB_TOKEN", TOKEN)
    monkeypatch.setenv("CI_API_V4_URL", API)
    monkeypatch.setenv("CI_PROJECT_ID", "42")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "7")


@pytest.fixture
def gitlab() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def body_of(mock: responses.RequestsMock, method: str) -> str:
    calls = [c for c in mock.calls if c.request.method == method]
    assert len(calls) == 1, [f"{c.request.method} {c.request.url}" for c in mock.calls]
    text = json.loads(calls[0].request.body or "{}")["body"]
    assert isinstance(text, str) and TOKEN not in text
    return text


def gate(pytester: pytest.Pytester, data: tuple[int, int], objective: str = ERROR_RATE) -> None:
    make_db(pytester.path / "events.db", data)
    write_spec(pytester, objective, stages=STAGES)


@pytest.mark.parametrize(("data", "objective", "exit_code", "headline"), [
    (GREEN, ERROR_RATE, pytest.ExitCode.OK, "## ✅ SLO gate **beta-10** passed"),
    (RED, ERROR_RATE, pytest.ExitCode.TESTS_FAILED, "## ❌ SLO gate **beta-10** failed"),
    (WARNED, WARN_RATE, pytest.ExitCode.OK, "## ⚠️ SLO gate **beta-10** passed with warnings"),
], ids=["pass", "fail", "warn"])
def test_first_run_adds_the_note_and_the_next_updates_it(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock, data: tuple[int, int],
        objective: str, exit_code: pytest.ExitCode, headline: str) -> None:
    gate(pytester, data, objective)
    gitlab.get(NOTES, json=[note(300, "LGTM")])
    gitlab.post(NOTES, status=201, json=note(301, "..."))
    # A warn verdict passes with a warning; this suite's own filterwarnings=error must not
    # reach the inner run.
    result = run(pytester, "beta-10", "--slo-mr-note", "-W", "default")
    assert result.ret == exit_code
    created = body_of(gitlab, "POST")
    assert created.startswith(headline) and created.endswith(f"\n{MARKER}\n")
    result.stdout.fnmatch_lines(["*= SLO merge request note =*",
                                 "note: added note 301 to merge request !7 in project 42"])

    gitlab.reset()
    gitlab.get(NOTES, json=[note(300, "LGTM"), note(301, created)])
    gitlab.put(f"{NOTES}/301", json=note(301, "..."))
    result = run(pytester, "beta-10", "--slo-mr-note", "-W", "default")
    assert result.ret == exit_code
    assert body_of(gitlab, "PUT") == created  # same run, same bytes
    result.stdout.fnmatch_lines(["note: updated note 301 of merge request !7 in project 42"])


def test_warning_text_reaches_the_note(pytester: pytest.Pytester,
                                       gitlab: responses.RequestsMock) -> None:
    gate(pytester, WARNED, WARN_RATE)
    gitlab.get(NOTES, json=[])
    gitlab.post(NOTES, status=201, json=note(301, "..."))
    run(pytester, "beta-10", "--slo-mr-note", "-W", "default")
    assert "error_rate[beta-10] WARN: 4.00% > warn max 3.00%" in body_of(gitlab, "POST")


def test_usage_error_still_posts_what_went_wrong(pytester: pytest.Pytester,
                                                 gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(NOTES, json=[note(301, f"old\n\n{MARKER.replace('beta-10', 'beta-25')}\n")])
    gitlab.put(f"{NOTES}/301", json=note(301, "..."))
    result = pytester.runpytest("-p", "no:cacheprovider", "--slo-stage=beta-25", "--slo-mr-note")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = json.loads(gitlab.calls[1].request.body or "{}")["body"]
    assert gitlab.calls[1].request.method == "PUT" and gitlab.calls[1].request.url == \
        f"{NOTES}/301"
    assert text.startswith("## ❌ SLO gate **beta-25** did not judge its objectives: a usage "
                           "error\n\n```text\nunknown stage 'beta-25'; the collected spec files "
                           "define: beta-10\n```")


def test_usage_error_while_configuring_is_posted_too(pytester: pytest.Pytester,
                                                     gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(NOTES, json=[])
    gitlab.post(NOTES, status=201, json=note(302, "..."))
    result = pytester.runpytest("-p", "no:cacheprovider", "--slo-stage=beta-10",
                                "--slo-at=tomorrow", "--slo-mr-note")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--slo-at 'tomorrow' is not a time" in body_of(gitlab, "POST")


def test_notes_are_found_on_a_later_page(pytester: pytest.Pytester,
                                         gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    first = [note(n, "comment") for n in range(1, 101)]
    gitlab.get(NOTES, json=first, headers={"X-Next-Page": "2"},
               match=[responses.matchers.query_param_matcher(
                   {"per_page": "100", "sort": "asc", "order_by": "created_at"})])
    gitlab.get(NOTES, json=[note(150, f"x\n{MARKER}\n", system=True), note(151, f"x\n{MARKER}")],
               match=[responses.matchers.query_param_matcher(
                   {"per_page": "100", "sort": "asc", "order_by": "created_at", "page": "2"})])
    gitlab.put(f"{NOTES}/151", json=note(151, "..."))
    result = run(pytester, "beta-10", "--slo-mr-note")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["note: updated note 151 of merge request !7 in project 42"])


def test_a_listing_of_notes_that_never_ends_adds_no_note(pytester: pytest.Pytester,
                                                         gitlab: responses.RequestsMock) -> None:
    gate(pytester, GREEN)
    gitlab.get(NOTES, json=[note(1, "comment")], headers={"X-Next-Page": "2"})
    result = run(pytester, "beta-10", "--slo-mr-note")
    assert result.ret == pytest.ExitCode.OK  # the gate's verdict, whatever the note did
    result.stdout.fnmatch_lines(["*GET /projects/42/merge_requests/7/notes (the notes of merge "
                                 "request !7) went on for more than 50 pages; a proxy may be "
                                 "repeating them: not adding another note*"])
    assert {c.request.method for c in gitlab.calls} == {"GET"} and len(gitlab.calls) == 50


def test_note_on_an_issue_and_a_failure_to_post_keeps_the_exit_code(
        pytester: pytest.Pytester, gitlab: responses.RequestsMock) -> None:
    gate(pytester, RED)
    issue_notes = f"{API}/projects/42/issues/12/notes"
    gitlab.get(issue_notes, status=403, json={"message": "403 Forbidden"})
    result = run(pytester, "beta-10", "--slo-mr-note", "--slo-note-issue=12")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["note FAILED (the gate's outcome stands): the token may not "
                                 "write the notes of issue #12 (403 Forbidden: 403 Forbidden): "
                                 "that needs the api scope and at least the Reporter role*"])


def test_outside_a_merge_request_nothing_is_posted(pytester: pytest.Pytester,
                                                   gitlab: responses.RequestsMock,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_MERGE_REQUEST_IID")
    gate(pytester, GREEN)
    result = run(pytester, "beta-10", "--slo-mr-note")
    assert result.ret == pytest.ExitCode.OK
    assert len(gitlab.calls) == 0
    result.stdout.fnmatch_lines(["note: not posted: this is not a merge request pipeline*"])


def test_missing_token_is_a_usage_error(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLO_GITLAB_TOKEN")
    gate(pytester, GREEN)
    result = pytester.runpytest("-p", "no:cacheprovider", "--slo-stage=beta-10", "--slo-mr-note")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --slo-mr-note needs a token in $SLO_GITLAB_TOKEN*"])
