"""One GitLab note per merge request (or issue) and stage, found again by a hidden marker.

Owns the notes client: list the notes of a merge request or issue page by page (GitLab's
``X-Next-Page``, else its ``Link: rel="next"``), update the note holding the marker, or add
one. Imports no pytest; :mod:`pytest_rollout_slo.note` decides what the note says.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import requests

from pytest_rollout_slo.flags.gitlab import (
    GitLabError,
    GitLabNotFoundError,
    GitLabPermissionError,
    GitLabProjectClient,
    answer_text,
)


def note_marker(stage: str) -> str:
    """The hidden line that makes a note this plugin's note for ``stage``."""
    return f"<!-- pytest-rollout-slo:note:{stage} -->"


class GitLabNotes(GitLabProjectClient):
    """Notes of one project's merge requests and issues, through a project access token."""

    def upsert(self, kind: str, iid: str, marker: str, body: str) -> str:
        """Update the note of ``kind`` (merge_requests or issues) ``iid`` holding ``marker``,
        or add one; says which it did."""
        where = f"{'merge request !' if kind == 'merge_requests' else 'issue #'}{iid}"
        path = f"/projects/{self._project}/{kind}/{quote(str(iid), safe='')}/notes"
        found = self._find(path, marker, where)
        if found is not None:
            self._call("PUT", f"{path}/{found}", f"note {found} of {where}",
                       json_body={"body": body})
            return f"updated note {found} of {where} in project {self.project}"
        data, _ = self._call("POST", path, f"a note on {where}", json_body={"body": body})
        number = data.get("id") if isinstance(data, Mapping) else None
        return f"added note {number} to {where} in project {self.project}"

    def _find(self, path: str, marker: str, where: str) -> int | None:
        params = {"per_page": "100", "sort": "asc", "order_by": "created_at"}
        for data in self._pages(path, f"the notes of {where}", params,
                                runaway="not adding another note"):
            if not isinstance(data, list):
                raise self._error(GitLabError, f"GitLab's answer listing the notes of {where} "
                                  "is not a list")
            for note in data:
                if isinstance(note, Mapping) and not note.get("system") \
                        and marker in str(note.get("body", "")) and isinstance(note.get("id"), int):
                    return int(note["id"])
        return None

    def _status_problem(self, resp: requests.Response, method: str, what: str,
                        shown: str) -> tuple[type[GitLabError], str]:
        status, head = resp.status_code, f"{resp.status_code} {resp.reason}"
        if status == 401:
            return GitLabPermissionError, (
                f"GitLab refused the token for {shown} ({head}): it is invalid, expired or "
                "revoked, or it is a CI job token, which cannot write notes. Use a project "
                "access token with the api scope and at least the Reporter role")
        if status == 403:
            return GitLabPermissionError, (
                f"the token may not write {what} ({head}: {answer_text(resp)}): that needs the "
                "api scope and at least the Reporter role in the project")
        if status == 404:
            return GitLabNotFoundError, (
                f"{what} not found ({shown} answered {head}); check CI_MERGE_REQUEST_IID or "
                "--slo-note-issue and CI_PROJECT_ID")
        return super()._status_problem(resp, method, what, shown)


__all__ = ["GitLabNotes", "note_marker"]
