"""Feature-flag glue: check that the flag is at the gated stage, and roll it back after a red gate.

Off unless asked for: ``--slo-check-flag`` reads the flag of the stage's ``rollout:`` through
the GitLab API before any objective is evaluated, and a flag that is not where the stage says
is a usage error. ``--slo-rollback`` sets the flag back to the previous stage's rollout (or
disables it after the first stage) when the gate failed, and says what it did. The token
comes from an environment variable and is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_rollout_slo.errors import SloError, SpecError
from pytest_rollout_slo.flags.gitlab import GitLabError, GitLabFlags
from pytest_rollout_slo.flags.model import RolloutExpectation
from pytest_rollout_slo.items import STATE
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.model import Rollout, Spec

DEFAULT_TOKEN_ENV = "SLO_GITLAB_TOKEN"


def expectation(rollout: Rollout, stage: str) -> RolloutExpectation:
    return RolloutExpectation(flag=rollout.flag, percent=rollout.percent, users=rollout.users,
                              all_users=rollout.all_users, environment=rollout.environment,
                              stage=stage, of=rollout.of)


def previous_rollout(spec: Spec, stage: str, flag: str) -> tuple[str, Rollout] | None:
    """The nearest earlier stage that rolls out the same flag, with its rollout."""
    names = list(spec.stages)
    for name in reversed(names[:names.index(stage)]):
        rollout = spec.stages[name].rollout
        if rollout is not None and rollout.flag == flag:
            return name, rollout
    return None


class FlagGuard:
    """Registered when --slo-check-flag or --slo-rollback is given."""

    def __init__(self, config: pytest.Config, stage: str, check: bool, rollback: bool) -> None:
        self.config = config
        self.stage = stage
        self.check = check
        self.rollback = rollback
        self.spec_paths: set[Path] = set()
        self.lines: list[str] = []
        # Settings are checked now: a missing token found only after a red gate would turn
        # its exit code 1 into a usage error and hide the failures.
        self.client().close()

    def client(self) -> GitLabFlags:
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
            ("the project (--slo-gitlab-project, ini slo_gitlab_project or $CI_PROJECT_ID)",
             project),
            (f"a token in ${token_env} (a project access token with the api scope; the CI "
             "job token cannot read or change feature flags)", token)) if not value]
        if missing:
            raise pytest.UsageError("feature-flag check and rollback need " + "; ".join(missing))
        return GitLabFlags(str(url), str(project), token)

    def rollouts(self, specs: list[Spec]) -> list[tuple[Spec, Rollout]]:
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
        client = self.client()
        try:
            for _, rollout in rollouts:
                problem = client.check(expectation(rollout, self.stage))
                if problem is not None:
                    raise pytest.UsageError(problem)
        except GitLabError as exc:
            raise pytest.UsageError(f"cannot check feature flag: {exc}") from None
        finally:
            client.close()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.spec_paths.add(self.config.rootpath / report.location[0])

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.rollback or hasattr(self.config, "workerinput"):
            return
        if exitstatus != pytest.ExitCode.TESTS_FAILED:
            if exitstatus == pytest.ExitCode.OK:
                self.lines.append(f"rollback: stage {self.stage} is green; the flag is "
                                  "left as it is")
            return
        try:
            self.lines.extend(self._roll_back())
        except (GitLabError, SloError, pytest.UsageError) as exc:
            self.lines.append(f"rollback FAILED, the flag may still be at stage {self.stage}: "
                              f"{exc}")

    def _roll_back(self) -> list[str]:
        types = self.config.stash[STATE].backend_types
        specs = []
        for path in sorted(self.spec_paths):
            try:
                specs.append(load_spec(path, types))
            except SpecError:
                continue  # a spec that failed to load ran no objective
        rollouts = self.rollouts(specs)
        if not rollouts:
            return [f"rollback: stage {self.stage!r} declares no rollout; nothing to roll back"]
        lines = []
        client = self.client()
        try:
            done: set[str] = set()
            for spec, rollout in rollouts:
                if rollout.flag in done:
                    continue
                done.add(rollout.flag)
                previous = previous_rollout(spec, self.stage, rollout.flag)
                target = (expectation(previous[1], previous[0]) if previous is not None
                          else None)
                lines.append(f"rollback: {client.rollback(rollout.flag, target)}")
        finally:
            client.close()
        return lines

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.write_sep("=", "SLO feature flag")
            for line in self.lines:
                terminalreporter.write_line(line, red="FAILED" in line)
