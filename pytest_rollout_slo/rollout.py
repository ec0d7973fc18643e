"""Feature-flag glue: check that the flag is at the gated stage, and roll it back after a breach.

Off unless asked for: ``--slo-check-flag`` reads the flag of the stage's ``rollout:`` through
the GitLab API before any objective is evaluated (a project flag, or with ``api: features`` a
development flag of the instance), and a flag that is not where the stage says is a usage
error. ``--slo-rollback`` implies the check, and sets the flag back to the previous stage's
rollout (or turns it off after the first stage) only after a checked, whole, red run whose
failed verdicts are ones the spec rolls back on (``rollback_on``, default ``[fail]``); it says
why it did or did not. The token comes from an environment variable and is never printed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout_slo.errors import SloError, SpecError
from pytest_rollout_slo.flags.features import FeatureExpectation, GitLabFeatures
from pytest_rollout_slo.flags.gitlab import GitLabError, GitLabFlags
from pytest_rollout_slo.flags.model import RolloutExpectation
from pytest_rollout_slo.items import STATE, record_of
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Rollout, Spec

DEFAULT_TOKEN_ENV = "SLO_GITLAB_TOKEN"
_CHECKED = "slo_flag_checked"
_SELECTED = "slo_objectives_selected"


def expectation(rollout: Rollout, stage: str) -> RolloutExpectation:
    return RolloutExpectation(flag=rollout.flag, percent=rollout.percent, users=rollout.users,
                              all_users=rollout.all_users, environment=rollout.environment,
                              stage=stage, of=rollout.of)


def feature_expectation(rollout: Rollout, stage: str) -> FeatureExpectation:
    return FeatureExpectation(flag=rollout.flag, percent=rollout.percent, of=rollout.of,
                              actors=frozenset(rollout.actors),
                              feature_group=rollout.feature_group,
                              all_users=rollout.all_users, stage=stage)


def previous_rollout(spec: Spec, stage: str, flag: str,
                     api: str = "project") -> tuple[str, Rollout] | None:
    """The nearest earlier stage that rolls out the same flag of the same API, with its rollout."""
    names = list(spec.stages)
    for name in reversed(names[:names.index(stage)]):
        rollout = spec.stages[name].rollout
        if rollout is not None and rollout.flag == flag and rollout.api == api:
            return name, rollout
    return None


@dataclass(frozen=True)
class _Settings:
    url: str
    project: str
    token: str


class FlagGuard:
    """Registered when --slo-check-flag or --slo-rollback is given."""

    def __init__(self, config: pytest.Config, stage: str, check: bool, rollback: bool) -> None:
        self.config = config
        self.stage = stage
        # A rollback acts on the flag the stage gates: without the check in the same run, a
        # schedule gating `internal` while the flag is at 25% would "roll back" to nothing.
        self.check = check or rollback
        self.rollback = rollback
        self.checked = False
        self.verdicts: dict[Path, list[str]] = {}
        """The verdict of every objective that failed, per spec file."""
        self.ran: set[str] = set()
        self.selected = 0
        """The objectives of the stage the collected specs hold (counted where they were
        collected: here, or on the xdist workers)."""
        self.lines: list[str] = []
        # Settings are checked now: a missing token found only after a red gate would turn
        # its exit code 1 into a usage error and hide the failures.
        self.settings()

    def settings(self) -> _Settings:
        config = self.config
        url = (config.getoption("slo_gitlab_url") or config.getini("slo_gitlab_url")
               or os.environ.get("CI_API_V4_URL", ""))
        project = (config.getoption("slo_gitlab_project") or config.getini("slo_gitlab_project")
                   or os.environ.get("CI_PROJECT_ID", ""))
        token_env = str(config.getini("slo_gitlab_token_env") or DEFAULT_TOKEN_ENV)
        token = os.environ.get(token_env, "")
        if token != token.strip() or any(ord(c) < 32 for c in token):
            # requests would quote such a header value back in its error message.
            raise pytest.UsageError(f"${token_env} contains a line break, a control character "
                                    "or surrounding spaces (often a trailing newline); remove "
                                    "them")
        missing = [what for what, value in (
            ("the GitLab URL (--slo-gitlab-url, ini slo_gitlab_url or $CI_API_V4_URL)", url),
            (f"a token in ${token_env} (for project flags a project access token with the api "
             "scope; for development flags, api: features, an administrator's personal "
             "access token; the CI job token can do neither)", token)) if not value]
        if missing:
            raise pytest.UsageError("feature-flag check and rollback need " + "; ".join(missing))
        return _Settings(str(url), str(project), token)

    def flags_client(self) -> GitLabFlags:
        settings = self.settings()
        if not settings.project:
            raise pytest.UsageError(
                "feature-flag check and rollback of a project flag need the project "
                "(--slo-gitlab-project, ini slo_gitlab_project or $CI_PROJECT_ID)")
        return GitLabFlags(settings.url, settings.project, settings.token)

    def features_client(self) -> GitLabFeatures:
        settings = self.settings()
        return GitLabFeatures(settings.url, settings.token)

    def rollouts(self, specs: Sequence[Spec]) -> list[tuple[Spec, Rollout]]:
        return [(spec, rollout) for spec in specs if self.stage in spec.stages
                for rollout in [spec.stages[self.stage].rollout] if rollout is not None]

    def check_before_run(self, session: pytest.Session) -> None:
        """Raise a UsageError when the flag is not where the stage says; after collection."""
        if not self.check or session.config.option.collectonly:
            return
        specs = list(session.config.stash[STATE].specs.values())
        rollouts = self.rollouts(specs)
        if not rollouts:
            raise pytest.UsageError(f"--slo-check-flag: stage {self.stage!r} declares no "
                                    "`rollout: {flag: ..., percent: ...}` in the collected specs")
        for _, rollout in rollouts:
            problem = self._check(rollout)
            if problem is not None:
                raise pytest.UsageError(problem)
        self.checked = True

    def _check(self, rollout: Rollout) -> str | None:
        client: GitLabFlags | GitLabFeatures
        try:
            if rollout.api == "features":
                client = self.features_client()
                try:
                    return client.check(feature_expectation(rollout, self.stage))
                finally:
                    client.close()
            client = self.flags_client()
            try:
                return client.check(expectation(rollout, self.stage))
            finally:
                client.close()
        except GitLabError as exc:
            raise pytest.UsageError(f"cannot check feature flag: {exc}") from None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = record_of(report)
        if record is None:
            return
        self.ran.add(report.nodeid)
        if report.failed:
            path = self.config.rootpath / report.location[0]
            self.verdicts.setdefault(path, []).append(record.verdict.value)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """On the xdist controller, which collects nothing: what a worker checked and counted."""
        output = getattr(node, "workeroutput", {})
        self.checked = self.checked or bool(output.get(_CHECKED))
        self.selected = max(self.selected, int(output.get(_SELECTED, 0)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # First among the session-finish hooks, so that the Markdown summary and the merge
        # request note written after it say what the rollback did.
        state = self.config.stash[STATE]
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[_CHECKED] = self.checked
            workeroutput[_SELECTED] = state.selected
            return
        if not self.rollback or session.config.option.collectonly:
            return
        self.selected = max(self.selected, state.selected)
        if exitstatus == pytest.ExitCode.OK:
            self.lines.append(f"rollback: stage {self.stage} is green; the flag is left as it is")
            return
        if exitstatus != pytest.ExitCode.TESTS_FAILED or state.usage_error:
            self.lines.append(f"rollback: not done: the run ended with exit code {exitstatus}, "
                              "so it judged no objective")
            return
        if not self.checked:
            self.lines.append("rollback: not done: the flag was not checked in this run, so it "
                              f"may not be at stage {self.stage}")
            return
        partial = self._partial(session, self.selected)
        if partial:
            self.lines.append(f"rollback: not done: {partial}")
            return
        try:
            self.lines.extend(self._roll_back())
        except (GitLabError, SloError, pytest.UsageError) as exc:
            self.lines.append(f"rollback FAILED, the flag may still be at stage {self.stage}: "
                              f"{exc}")

    def _partial(self, session: pytest.Session, selected: int) -> str:
        """Why the run did not judge the whole stage, or ''."""
        # Kept here, next to the rollback it guards: the run counts every objective of the
        # stage the collected specs hold, before -k, -m, --lf or node ids narrow it.
        if session.shouldstop or session.shouldfail or len(self.ran) < selected:
            return (f"a partial run: {len(self.ran)} of the {selected} objectives of stage "
                    f"{self.stage} were judged (narrowed by -k, -m, --lf or node ids, or "
                    "stopped by -x or --maxfail); only a run of the whole stage rolls its flag "
                    "back")
        return ""

    def _roll_back(self) -> list[str]:
        types = self.config.stash[STATE].backend_types
        specs: dict[Path, Spec] = {}
        for path in sorted(self.verdicts):
            try:
                specs[path] = load_spec(path, types)
            except SpecError:
                continue  # a spec that failed to load ran no objective
        lines = []
        done: set[tuple[str, str]] = set()
        for path, spec in specs.items():
            if self.stage not in spec.stages:
                continue
            rollout = spec.stages[self.stage].rollout
            if rollout is None:
                lines.append(f"rollback: stage {self.stage} of {path.name} declares no rollout; "
                             "nothing to roll back")
                continue
            if (rollout.api, rollout.flag) in done:
                continue
            on = spec.rollback_verdicts(self.stage)
            failed = Counter(self.verdicts[path])
            if not set(failed) & set(on):
                seen = ", ".join(f"{v} ({n})" for v, n in sorted(failed.items()))
                lines.append(f"rollback: not done for flag {rollout.flag}: the failed objectives "
                             f"are {seen}, and {path.name} rolls back on "
                             f"{', '.join(on)} only (rollback_on: [{', '.join(on)}]); an "
                             "outage or missing data is not a breach")
                continue
            done.add((rollout.api, rollout.flag))
            lines.append(f"rollback: {self._roll_back_one(spec, rollout)}")
        return lines

    def _roll_back_one(self, spec: Spec, rollout: Rollout) -> str:
        previous = previous_rollout(spec, self.stage, rollout.flag, rollout.api)
        if rollout.api == "features":
            features = self.features_client()
            try:
                target = (feature_expectation(previous[1], previous[0])
                          if previous is not None else None)
                return features.rollback(rollout.flag, target)
            finally:
                features.close()
        flags = self.flags_client()
        try:
            to = expectation(previous[1], previous[0]) if previous is not None else None
            return flags.rollback(rollout.flag, to)
        finally:
            flags.close()

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.write_sep("=", "SLO feature flag")
            for line in self.lines:
                terminalreporter.write_line(line, red="FAILED" in line)
