"""Beside the data path: the feature flag a stage gates, as GitLab holds it.

``model`` is a flag and the rule that says whether it is at a stage's rollout, ``gitlab`` the
client that reads it and rolls it back. No pytest here.
"""
