"""Generated spec files: every one loads, or is a spec error naming its line; never anything else.

Two sources of files: documents generated from the shipped JSON Schema (so they reach past
the top-level checks) and the shipped specs mutated at random (a hostile value for a value,
a token inserted, a slice cut, a line repeated, a byte that is not UTF-8). A file that loads
must also resolve at every stage, as collection does. How many examples each property runs
comes from the Hypothesis profile (tests/conftest.py): ``ci`` by default, ``long`` locally
(``pytest --hypothesis-profile=long tests/test_spec_properties.py``).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.registry import BUILTIN_TYPES
from pytest_rollout_slo.errors import SpecError
from pytest_rollout_slo.spec.load import load_spec
from pytest_rollout_slo.spec.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
TYPES = {t.name: t for t in BUILTIN_TYPES}
SCHEMA = load_schema()
_MESSAGE_LIMIT = 700
"""A spec error's text without its path: whatever the file holds, it stays this short."""


def _shipped() -> list[str]:
    paths = sorted([*ROOT.glob("slo_specs/*.yaml"), *ROOT.glob("examples/**/*.slo.yaml")])
    texts = [path.read_text(encoding="utf-8") for path in paths]
    reference = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    section = reference.split("## A complete example", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None and len(texts) >= 2
    return [*texts, match.group(1)]


SHIPPED = _shipped()

# Values a person, a merge conflict or an attacker may leave where a value belongs.
_HOSTILE = [
    "!!float abc", "!!int ''", "!!map up", "!!str 5", "!!binary aGk=", "!!python/none ''",
    ".nan", ".inf", "-.inf", "1e999", "9" * 320, "9" * 320 + "%", "9" * 320 + "s", "9" * 4400,
    "0b_", "0x_", "2026-13-45", "1:30", "1.0e+300", "-1.0e+300", "[{a: 1}]", "{a: {b: 1}}",
    "[]", "{}", "~", "''",
    "'5'", "5", "-5", "0", "1.0", "250ms", "5%", "150%", "99.9%", "1h30m", "0s", "3651d",
    "10y", "\uff15%", "true", "yes", "${env:SECRET}", "${nope}", "'${window}'", ":nope",
    "SELECT :cohort_id", "up or vector(0)", "a\\nb", '"x\\n"', '"\\x07"', "*a", "&a x",
    "? x", "<<: {}", "| \n  text", "{offset: 7d, max_increase: 0.005}",
    "{long: 1h, short: 5m, factor: .nan}", "[" * 40 + "]" * 40, "{a: " * 40 + "1" + "}" * 40,
]
_INSERTS = ["\t", ": ", "- ", "{", "}", "[", "]", "#", "&a ", "*a", "!!str ", "<<: *a",
            "\n  ", "\n", "'", '"', "%", "\x07", "\x00", "\ufeff", "\u2028", "---\n",
            "...\n", "? ", "|", ">"]
_VALUE = re.compile(r"(?m)(?<=: )[^\n#]+")


def _mutated(data: st.DataObject) -> bytes:
    text = data.draw(st.sampled_from(SHIPPED), label="shipped")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["value", "insert", "cut", "repeat"]), label="kind")
        if kind == "value":
            values = list(_VALUE.finditer(text))
            if values:
                match = data.draw(st.sampled_from(values), label="value at")
                hostile = data.draw(st.sampled_from(_HOSTILE), label="hostile")
                text = text[:match.start()] + hostile + text[match.end():]
            continue
        at = data.draw(st.integers(0, len(text)), label="at")
        if kind == "insert":
            text = text[:at] + data.draw(st.sampled_from(_INSERTS), label="insert") + text[at:]
        elif kind == "cut":
            text = text[:at] + text[at + data.draw(st.integers(1, 80), label="cut"):]
        else:
            lines = text.splitlines(keepends=True)
            index = min(at, len(lines) - 1)
            text = "".join([*lines[:index + 1], *lines[index:]])
    raw = text.encode("utf-8", "surrogatepass")
    if data.draw(st.integers(0, 30), label="bad byte") == 0:
        at = data.draw(st.integers(0, len(raw)), label="byte at")
        raw = raw[:at] + b"\xff" + raw[at:]
    return raw


# -- documents from the JSON Schema --------------------------------------------------------

_POOL = ["beta", "ga", "x", "error_rate", "up", "${window}", "5%", "1h", "", "SELECT 1",
         "sum(rate(x[${window}]))", ":window_start", "region", "window", "cohort", "0.5",
         "250ms", "10s", "1h30m", "99.9%", "150%", "-5%", "0s", "7d", "${env:URL}", "http://x",
         "SELECT count(*) FROM t WHERE ts >= :window_start AND c = :cohort", "at",
         "request_duration_seconds", "error_rate_vs_control", "p95", "5", "a.b-c"]
_WORDS = st.sampled_from(_POOL)


def _matching(pattern: str) -> st.SearchStrategy[str]:
    # Drawing from a regex is slow; the pool's matching words reach the loader as well.
    words = [word for word in _POOL if re.search(pattern, word)]
    return st.sampled_from(words) if words else st.from_regex(pattern, fullmatch=True)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target: dict[str, Any] = SCHEMA["$defs"][ref.removeprefix("#/$defs/")]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _merge(node: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
    merged = {**node, **option}
    for key, empty in (("required", []), ("properties", {})):
        if key in node and key in option:
            merged[key] = ([*node[key], *option[key]] if key == "required"
                           else {**node[key], **option[key]})
        elif key in node or key in option:
            merged[key] = node.get(key, option.get(key, empty))
    return merged


def _consistent(document: Any) -> Any:
    """The document with the cross-key rules the schema cannot state kept where that is easy:
    objectives name defined backends and stages, so generated files reach further."""
    if not isinstance(document, dict):
        return document
    backends = document.get("backends")
    stages = document.get("stages")
    for objective in document.get("objectives") or []:
        if not isinstance(objective, dict):
            continue
        if isinstance(backends, dict) and objective.get("backend") not in backends:
            objective.pop("backend", None)
        if isinstance(stages, dict):
            if isinstance(objective.get("stages"), list):
                objective["stages"] = [s for s in objective["stages"] if s in stages] or None
                if objective["stages"] is None:
                    del objective["stages"]
            if isinstance(objective.get("thresholds"), dict):
                objective["thresholds"] = {k: v for k, v in objective["thresholds"].items()
                                           if k in stages}
    return document


def _from_schema(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the schema describes, in the loose sense that ``pattern``, ``anyOf`` and
    ``properties`` give: enough to reach every section of the loader."""
    node = _resolve(node)
    if depth > 8:
        return _WORDS
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            # Each option narrows the node it sits in (`{required: [query]}`): merge them.
            rest = {k: v for k, v in node.items() if k != key}
            return st.one_of([_from_schema(_merge(rest, _resolve(option)), depth + 1)
                              for option in node[key]])
    if "allOf" in node:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            if "if" not in part:  # if/then only forbids combinations: left to the loader
                merged = _merge(merged, _resolve(part))
        return _from_schema(merged, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        return st.one_of([_from_schema({**node, "type": one}, depth) for one in kind])
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        required = [k for k in node.get("required", []) if k in properties]
        if properties:
            return st.fixed_dictionaries(
                {k: _from_schema(properties[k], depth + 1) for k in required},
                optional={k: _from_schema(v, depth + 1) for k, v in properties.items()
                          if k not in required})
        names = _resolve(node.get("propertyNames", {}))
        keys = _matching(names["pattern"]) if "pattern" in names else _WORDS
        extra = node.get("additionalProperties")
        values = _from_schema(extra, depth + 1) if isinstance(extra, dict) else _WORDS
        return st.dictionaries(keys, values, min_size=node.get("minProperties", 0), max_size=2)
    if kind == "array":
        items = node.get("items")
        inner = _from_schema(items, depth + 1) if isinstance(items, dict) else _WORDS
        return st.lists(inner, min_size=node.get("minItems", 0), max_size=2)
    if kind == "string":
        return _matching(node["pattern"]) if "pattern" in node else _WORDS
    if kind == "integer":
        return st.integers(node.get("minimum", -5), node.get("maximum", 100))
    if kind == "number":
        return st.one_of(st.integers(-5, 200), st.floats(-5, 200))
    if kind == "boolean":
        return st.booleans()
    return st.one_of(st.none(), _WORDS, st.integers(-5, 100))


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter: much faster
_DOCUMENTS = st.one_of(_from_schema(SCHEMA), _from_schema(SCHEMA).map(_consistent))


def _check(path: Path, raw: bytes) -> None:
    path.write_bytes(raw)
    try:
        spec = load_spec(path, TYPES)
    except SpecError as exc:
        lines = raw.count(b"\n") + 1
        assert exc.line is not None and 1 <= exc.line <= lines, str(exc)
        shown = str(exc).removeprefix(str(path))
        assert len(shown) < _MESSAGE_LIMIT, shown
        event(f"spec error at {(exc.key or '').split('.')[0].split('[')[0] or 'YAML'}")
        return
    event("loads")
    # Collection resolves every objective at its stages: that must not fail either.
    for objective in spec.objectives:
        for stage in objective.stages:
            for combination in itertools.islice(objective.combinations(), 3):
                spec.resolve(objective, stage, combination)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated") / "spec.slo.yaml"


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_mutated_shipped_spec_loads_or_is_a_spec_error_with_a_line(
        spec_path: Path, data: st.DataObject) -> None:
    _check(spec_path, _mutated(data))


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=_DOCUMENTS, flow=st.booleans())
def test_a_spec_generated_from_the_schema_loads_or_is_a_spec_error_with_a_line(
        spec_path: Path, document: Any, flow: bool) -> None:
    text = yaml.dump(document, Dumper=_DUMPER, default_flow_style=flow, sort_keys=False,
                     allow_unicode=True)
    _check(spec_path, text.encode("utf-8"))


def test_the_generators_reach_loading_specs(tmp_path: Path) -> None:
    # The properties are only worth their examples if some generated files load: each
    # shipped spec does, unmutated.
    for number, text in enumerate(SHIPPED):
        path = tmp_path / f"shipped{number}.slo.yaml"
        path.write_text(text, encoding="utf-8")
        assert load_spec(path, TYPES).objectives
