"""The JSON Schema of the spec format, version 1, shipped as ``spec/spec-v1.schema.json``.

Editors validate and complete spec files with it; a first line such as
``# yaml-language-server: $schema=spec-v1.schema.json`` (a path relative to the spec, or a
URL) points the YAML language server at it, and ``python -m pytest_rollout_slo.spec.schema``
prints it for a repository to keep a copy. The loader (:mod:`pytest_rollout_slo.spec.load`)
stays the authority: the schema cannot see across keys (undefined variables, unknown stages
or backends, min > max) and cannot know backend types added by other plugins, whose
settings it leaves open. The entries of the built-in backend types are
:func:`backend_schema` of their ``Setting`` declarations, which the tests check.
No pytest here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

from pytest_rollout_slo.spec.settings import Setting, SettingKind

SCHEMA_FILE = "spec-v1.schema.json"


def schema_text() -> str:
    """The schema file's text, as shipped in the package."""
    return (resources.files("pytest_rollout_slo.spec") / SCHEMA_FILE).read_text(
        encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The schema as a dict, ready for ``jsonschema.Draft202012Validator``."""
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


def backend_schema(type_name: str, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """The schema of one ``backends`` entry of ``type_name``, as the loader checks it.

    A setting accepts its kinds and choices; a setting that is not a mapping also accepts
    an ``${env:...}`` placeholder, which the loader checks only once it is resolved.
    """
    return {
        "description": f"A {type_name} backend.",
        **_object(settings, {"type": {"const": type_name}}, ("type",)),
    }


def _object(settings: Mapping[str, Setting], first: Mapping[str, Any] | None = None,
            required: tuple[str, ...] = ()) -> dict[str, Any]:
    properties = {**(first or {}), **{key: _setting(s) for key, s in settings.items()}}
    needed = [*required, *(key for key, s in settings.items() if s.required)]
    return {"type": "object", "properties": properties,
            **({"required": needed} if needed else {}), "additionalProperties": False}


def _setting(setting: Setting) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    for kind in setting.kinds:
        choices.append(_kind(kind, setting))
    if setting.choices:
        choices = [{"enum": list(setting.choices)}]
    if "mapping" not in setting.kinds and not (
            "string" in setting.kinds and not setting.choices):
        choices.append({"$ref": "#/$defs/env_placeholder"})
    body = choices[0] if len(choices) == 1 else {"anyOf": choices}
    return {"description": setting.help, **body} if setting.help else body


def _kind(kind: SettingKind, setting: Setting) -> dict[str, Any]:
    if kind == "duration":
        return {"$ref": "#/$defs/duration"}
    if kind == "mapping":
        if setting.keys is not None:
            return _object(setting.keys)
        return {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
    if kind in ("integer", "number") and setting.minimum is not None:
        return {"type": kind, "minimum": setting.minimum}
    return {"type": kind}


def main() -> None:
    """``python -m pytest_rollout_slo.spec.schema``: print the schema, to keep a copy of it."""
    sys.stdout.write(schema_text())


if __name__ == "__main__":
    main()


__all__ = ["SCHEMA_FILE", "backend_schema", "load_schema", "main", "schema_text"]
