"""Beside the data path: GitLab, where the flag a stage gates lives and where verdicts are noted.

``model`` is a project feature flag (Unleash) and the rule that says whether it is at a
stage's rollout, ``gitlab`` the shared API client and the project flags client that reads it
and rolls it back; ``features`` does the same for GitLab's development feature flags (Flipper,
the instance Features API); ``notes`` keeps one merge request (or issue) note per stage.
No pytest here.
"""
