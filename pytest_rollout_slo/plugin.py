"""The pytest11 entry point: options, ini keys and our hookspecs, and nothing else.

Without ``--slo-stage`` (or the ``slo_stage`` ini key) the plugin collects nothing, imports
none of its machinery, so a repository's ordinary test run is unchanged, fast and offline.
With a stage, :mod:`pytest_rollout_slo.session` is imported and registered: it holds every
other hook.
"""

from __future__ import annotations

import time

import pytest

from pytest_rollout_slo import hookspecs
from pytest_rollout_slo.options import option

DEFAULT_CONCURRENCY = 8
DEFAULT_DEADLINE = "5m"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollout-slo", "rollout SLO gates (pytest-rollout-slo)")
    group.addoption("--slo-stage", dest="slo_stage", default=None, metavar="STAGE",
                    help="Gate this rollout stage: collect spec files and check every objective "
                         "of the stage (ini: slo_stage). Default: none, nothing is collected.")
    group.addoption("--slo-at", dest="slo_at", default=None, metavar="TIME",
                    help="Evaluate every query at this time: RFC 3339 (2026-11-26T12:00:00Z) or "
                         "unix seconds (ini: slo_at). Default: when the session started.")
    group.addoption("--slo-full-trace", dest="slo_full_trace", action="store_true",
                    default=None,
                    help="Show Python tracebacks for failed objectives instead of the plain "
                         "verdict text (ini: slo_full_trace). Default: off.")
    group.addoption("--slo-strict", dest="slo_strict", action="store_true", default=None,
                    help="Fail objectives whose verdict is warn (outside their warning level) "
                         "(ini: slo_strict). Default: off, warn passes with a warning.")
    group.addoption("--slo-confidence-adjustment", dest="slo_confidence_adjustment",
                    default=None, metavar="holm|bh|none",
                    help="How the run's confidence tests are adjusted as one family: holm "
                         "(controls the chance of any false fail), bh (Benjamini-Hochberg, the "
                         "share of false fails) or none (ini: slo_confidence_adjustment). "
                         "Default: holm.")
    parser.addini("slo_confidence_adjustment", "Family adjustment of confidence tests.",
                  default="holm")
    group.addoption("--slo-concurrency", dest="slo_concurrency", default=None, type=int,
                    metavar="N",
                    help="Run at most N queries at once (ini: slo_concurrency). "
                         f"Default: {DEFAULT_CONCURRENCY}.")
    group.addoption("--slo-deadline", dest="slo_deadline", default=None, metavar="DURATION",
                    help="End the run in time: a query that has not answered this long after "
                         "the run started (after collection) is an error for its objectives; "
                         "5m, 90s or seconds (ini: slo_deadline). "
                         f"Default: {DEFAULT_DEADLINE}.")
    group.addoption("--slo-report-md", dest="slo_report_md", default=None, metavar="PATH",
                    help="Write a Markdown summary for a merge request note or job summary "
                         "(ini: slo_report_md). Default: none.")
    group.addoption("--slo-report-json", dest="slo_report_json", default=None, metavar="PATH",
                    help="Write the versioned JSON evidence of the run (ini: slo_report_json). "
                         "Default: none.")
    parser.addini("slo_report_md", "Path of the Markdown summary.", default="")
    parser.addini("slo_report_json", "Path of the JSON evidence file.", default="")
    group.addoption("--slo-check-flag", dest="slo_check_flag", action="store_true",
                    default=None,
                    help="Before evaluating, check through the GitLab API that the feature flag "
                         "of the stage's rollout is where the stage says (ini: slo_check_flag). "
                         "Default: off.")
    group.addoption("--slo-rollback", dest="slo_rollback", action="store_true", default=False,
                    help="When the gate fails with a verdict the spec rolls back on "
                         "(rollback_on, default fail), set the flag back to the previous "
                         "stage's rollout, or turn it off after the first stage; implies "
                         "--slo-check-flag, and never acts on a partial run. Default: off.")
    group.addoption("--slo-mr-note", dest="slo_mr_note", action="store_true", default=None,
                    help="Create or update one note per merge request and stage holding the "
                         "Markdown summary, on every outcome, through the GitLab API "
                         "($CI_MERGE_REQUEST_IID, $CI_PROJECT_ID, the token in "
                         "$SLO_GITLAB_TOKEN) (ini: slo_mr_note). Default: off.")
    group.addoption("--slo-note-issue", dest="slo_note_issue", default=None, metavar="IID",
                    help="With --slo-mr-note: note on this issue of the project instead of "
                         "the merge request. Default: the pipeline's merge request.")
    parser.addini("slo_mr_note", "Post the summary as a merge request note.", type="bool",
                  default=False)
    group.addoption("--slo-gitlab-url", dest="slo_gitlab_url", default=None, metavar="URL",
                    help="GitLab (API) URL for flags (ini: slo_gitlab_url). "
                         "Default: $CI_API_V4_URL.")
    group.addoption("--slo-gitlab-project", dest="slo_gitlab_project", default=None,
                    metavar="ID", help="Project id or path holding the flag "
                                       "(ini: slo_gitlab_project). Default: $CI_PROJECT_ID.")
    parser.addini("slo_check_flag", "Check the stage's feature flag before evaluating.",
                  type="bool", default=False)
    parser.addini("slo_gitlab_url", "GitLab (API) URL for feature flags.", default="")
    parser.addini("slo_gitlab_project", "Project id or path holding the feature flag.",
                  default="")
    parser.addini("slo_gitlab_token_env", "Environment variable holding the GitLab token.",
                  default="SLO_GITLAB_TOKEN")
    group.addoption("--slo-record", dest="slo_record", default=None, metavar="PATH",
                    help="Store every backend answer of the run in PATH (JSON), to replay or "
                         "attach it later. Default: none.")
    group.addoption("--slo-replay", dest="slo_replay", default=None, metavar="PATH",
                    help="Evaluate the specs from the answers recorded in PATH, with no network; "
                         "the evaluation time defaults to the recorded one. Default: none.")
    parser.addini("slo_stage", "Rollout stage to gate when --slo-stage is not given.",
                  default="")
    parser.addini("slo_at", "Evaluation time when --slo-at is not given.", default="")
    parser.addini("slo_full_trace", "Show tracebacks for failed objectives.", type="bool",
                  default=False)
    parser.addini("slo_strict", "Fail objectives whose verdict is warn.", type="bool",
                  default=False)
    parser.addini("slo_concurrency", "Queries run at once.", default=str(DEFAULT_CONCURRENCY))
    parser.addini("slo_deadline", "Deadline of the whole run, counted from after collection.",
                  default=DEFAULT_DEADLINE)
    group.addoption("--slo-with-tests", dest="slo_with_tests", action="store_true",
                    default=None,
                    help="With a stage gated, also collect the ordinary tests of the paths given "
                         "(ini: slo_with_tests). Default: off, only spec files are collected, "
                         "since a unit test would count towards the gate.")
    parser.addini("slo_with_tests", "Collect ordinary tests beside the spec files when a stage "
                  "is gated.", type="bool", default=False)
    parser.addini("slo_files", "Glob patterns of spec files, replacing the default "
                  "(YAML files in a slo_specs/ directory, and *.slo.yaml / *.slo.yml).",
                  type="linelist", default=[])


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    given = config.getoption("slo_stage")
    if given is not None and not str(given).strip():
        # `--slo-stage=$STAGE` with STAGE unset must not quietly turn the gate off.
        raise pytest.UsageError("--slo-stage is empty; name the stage to gate "
                                "(a CI variable may be unset)")
    stage = option(config, "slo_stage").strip()
    if stage:
        # `import a.b`, not `from a import b`: the latter takes the package's attribute,
        # which outlives the module when something unloads it (pytester's in-process
        # runs do), and would mix an old session module with fresh ones it imports.
        import pytest_rollout_slo.session as session

        note = None
        if (config.getoption("slo_mr_note") or config.getini("slo_mr_note")) \
                and not hasattr(config, "workerinput"):
            import pytest_rollout_slo.note as note_glue

            # Registered before the session's hooks, so that its end-of-run hooks run after
            # theirs and it sees the whole outcome.
            note = note_glue.NotePoster(config, stage)
            config.pluginmanager.register(note, "rollout-slo-note")
        config.pluginmanager.register(session, "rollout-slo-session")
        try:
            session.start(config, stage)
        except pytest.UsageError as exc:
            # Before any session: the report files and JUnit still say the gate did not run.
            session.report_gate_not_run(config, stage, str(exc), at=time.time())
            if note is not None:
                note.usage_error = str(exc)  # posted when pytest unconfigures
            raise
