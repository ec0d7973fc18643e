"""``--slo-mr-note``: the run's summary as one GitLab note per merge request (or issue) and stage.

Registered on the controller before the session's hooks, so it runs after them and sees the
run's end: a judged run posts the Markdown summary (with what the flag guard did), anything
else says why the gate did not judge (usage error, spec error, interruption), so a red job
never leaves the merge request silent. The note is found again by a hidden marker and updated
in place. Warn verdicts, which GitLab's test report shows nowhere, reach the merge request
this way. A failure to post is reported and never changes the exit code.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Generator

import pytest

from pytest_rollout_slo import __version__
from pytest_rollout_slo.flags.gitlab import GitLabError
from pytest_rollout_slo.flags.notes import GitLabNotes, note_marker
from pytest_rollout_slo.items import STATE, record_of
from pytest_rollout_slo.options import option
from pytest_rollout_slo.report.markdown import markdown_report
from pytest_rollout_slo.report.run import run_meta
from pytest_rollout_slo.rollout import DEFAULT_TOKEN_ENV, FlagGuard
from pytest_rollout_slo.verdict.record import VerdictRecord

_REASONS: dict[int, str] = {
    pytest.ExitCode.INTERRUPTED: "a spec file could not be loaded, or the run was interrupted",
    pytest.ExitCode.INTERNAL_ERROR: "an internal error",
    pytest.ExitCode.USAGE_ERROR: "a usage error",
    pytest.ExitCode.NO_TESTS_COLLECTED: "no objective was collected"}
# GitLab refuses notes over 1,000,000 characters; error texts are cut well before that.
_MAX_DETAIL = 20_000


class NotePoster:
    """Collects what the note needs during the run and posts it once at the end."""

    def __init__(self, config: pytest.Config, stage: str) -> None:
        self.config = config
        self.stage = stage
        self.usage_error = ""
        self.collect_errors: list[str] = []
        self.records: list[VerdictRecord] = []
        self.lines: list[str] = []
        self.posted = False
        url = option(config, "slo_gitlab_url") or os.environ.get("CI_API_V4_URL", "")
        project = option(config, "slo_gitlab_project") or os.environ.get("CI_PROJECT_ID", "")
        token_env = str(config.getini("slo_gitlab_token_env") or DEFAULT_TOKEN_ENV)
        token = os.environ.get(token_env, "")
        missing = [what for what, value in (
            ("the GitLab URL (--slo-gitlab-url, ini slo_gitlab_url or $CI_API_V4_URL)", url),
            ("the project (--slo-gitlab-project, ini slo_gitlab_project or $CI_PROJECT_ID)",
             project),
            (f"a token in ${token_env} (a project access token with the api scope and the "
             "Reporter role; the CI job token cannot write notes)", token)) if not value]
        if missing:
            raise pytest.UsageError("--slo-mr-note needs " + "; ".join(missing))
        if token != token.strip() or any(ord(c) < 32 for c in token):
            raise pytest.UsageError(f"${token_env} contains a line break, a control character "
                                    "or surrounding spaces (often a trailing newline); remove "
                                    "them")
        issue = str(config.getoption("slo_note_issue") or "").strip()
        self.target = (("issues", issue) if issue else
                       ("merge_requests", os.environ.get("CI_MERGE_REQUEST_IID", "").strip()))
        self._client = (str(url), str(project), token)

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(report.longreprtext)

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_finish(self, session: pytest.Session) -> Generator[None, None, None]:
        try:
            return (yield)
        except pytest.UsageError as exc:
            self.usage_error = str(exc)
            raise

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = record_of(report)
        if record is not None:
            self.records.append(record)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not session.config.option.collectonly:
            self.post(int(session.exitstatus))

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.write_sep("=", "SLO merge request note")
            for line in self.lines:
                terminalreporter.write_line(line, red="FAILED" in line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # A usage error while the run was configured ends it before any session hook.
        if not self.posted and self.usage_error:
            self.post(pytest.ExitCode.USAGE_ERROR)
            for line in self.lines:
                sys.stderr.write(line + "\n")

    def body(self, exit_status: int) -> str:
        state = self.config.stash.get(STATE, None)
        usage = self.usage_error or (state.usage_error if state is not None else "")
        judged = exit_status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not usage
        if judged and state is not None:
            meta = run_meta(self.records, stage=state.stage, at=state.at,
                            plugin_version=__version__, started=state.started,
                            finished=time.time(), exit_status=exit_status)
            guards = [p for p in self.config.pluginmanager.get_plugins()
                      if isinstance(p, FlagGuard)]
            text = markdown_report(meta, self.records, guards[0].lines if guards else ())
        else:
            code = pytest.ExitCode.USAGE_ERROR if usage else exit_status
            reason = _REASONS.get(int(code), f"exit code {exit_status}")
            detail = usage or "\n\n".join(self.collect_errors) or "see the job log"
            detail = detail[:_MAX_DETAIL]
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", detail)),
                                         default=0))
            job = os.environ.get("CI_JOB_URL", "")
            text = (f"## ❌ SLO gate **{self.stage}** did not judge its objectives: {reason}\n\n"
                    f"{fence}text\n{detail}\n{fence}\n\n"
                    + (f"Job: {job}\n\n" if job else "")
                    + f"<sub>pytest-rollout-slo {__version__} · exit code {int(code)}</sub>\n")
        return f"{text.rstrip()}\n\n{note_marker(self.stage)}\n"

    def post(self, exit_status: int) -> None:
        self.posted = True
        kind, iid = self.target
        if not iid:
            self.lines.append("note: not posted: this is not a merge request pipeline "
                              "($CI_MERGE_REQUEST_IID is unset) and no --slo-note-issue was "
                              "given")
            return
        client = GitLabNotes(*self._client)
        try:
            done = client.upsert(kind, iid, note_marker(self.stage), self.body(exit_status))
            self.lines.append(f"note: {done}")
        except GitLabError as exc:
            self.lines.append(f"note FAILED (the gate's outcome stands): {exc}")
        finally:
            client.close()


__all__ = ["NotePoster"]
