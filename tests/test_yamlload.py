"""The YAML loader's two paths agree: built from parser events, or node by node.

``load_yaml_fast`` builds plain documents straight from the parser's events and hands anything
else (anchors, aliases, tags, merge keys, errors) to the node-by-node path. Whatever the
text, the result, its line numbers and its errors must be what the node path gives.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.spec import yamlfast, yamlload
from pytest_rollout_slo.spec.yamlfast import Unusual as _Unusual
from pytest_rollout_slo.spec.yamlfast import from_events as _from_events
from pytest_rollout_slo.spec.yamlfast import load_yaml_fast as load_yaml
from pytest_rollout_slo.spec.yamlload import (
    YamlList,
    YamlMap,
    YamlSyntaxError,
)
from pytest_rollout_slo.spec.yamlload import from_nodes as _from_nodes
from pytest_rollout_slo.spec.yamlload import load_yaml as load_yaml_nodes

ROOT = Path(__file__).resolve().parent.parent

PLAIN = {
    "flow-and-block": """\
        version: 1
        service: svc
        backends: {db: {type: sqlite, path: e.db}, prom: {type: prometheus, url: 'http://x'}}
        stages:
          beta: {}
          ga:
            variables: {window: 24h}
        objectives:
          - name: rate
            query: SELECT 1
            max: 5%
          - {name: other, query: "SELECT 2", min: 1, max: 2.5}
        """,
    "scalars": """\
        ints: [1, -2, 0x1F, 0o17, 1_000, +3]
        floats: [1.5, 1e3, .inf, -.Inf, .nan, 6.2e-2]
        bools: [yes, no, on, off, true, False]
        nulls: [~, null, ]
        empty:
        strings: ['1', "2", 'yes', abc, "tab\\tquote\\"", 'it''s', ünïcode]
        """,
    "block-scalars": """\
        folded: >-
          SELECT count(*)
          FROM req
        literal: |
          line one
            line two
        after: x
        """,
    "nesting": """\
        a:
          - [1, [2, [3]]]
          - {}
          - []
          - - x
            - y: {z: [ ]}
        "quoted key": 1
        'single: colon': 2
        ? complex
        : 3
        """,
    "comments-only": "# nothing here\n",
    "empty": "",
    "top-level-list": "- 1\n- two\n",
    "top-level-scalar": "just text\n",
    "document-markers": "---\na: 1\n...\n",
}

UNUSUAL = {
    "anchor-alias": """\
        base: &b {x: 1}
        copy: *b
        """,
    "merge-key": """\
        objectives:
          - &base
            name: rate
            max: 5%
          - <<: *base
            name: other
        """,
    "inline-merge": "a:\n  <<: {x: 1}\n  y: 2\n",
    "explicit-str-tag": "a: !!str 5\n",
    "set-tag": "a: !!set {x, y}\n",
    "timestamp": "when: 2026-11-26\n",
    "value-tag": "a: =\n",
    "duplicate-key": "a: 1\nb: 2\na: 3\n",
    "duplicate-after-merge": "a: {<<: {x: 1}, x: 2}\n",
    "bool-key": "on: 1\n",
    "int-key": "1: x\n",
    "two-documents": "a: 1\n---\nb: 2\n",
    "syntax-error": "a: b: c\n",
    "unclosed-flow": "a: [1, 2\n",
    "bad-indent-after-duplicate": "a: 1\na: 2\n b: 3\n",
    "tab": "a:\n\t- 1\n",
}


def _shape(value: Any) -> Any:
    """Value, type and every line number of a loaded document, comparable with ==."""
    if isinstance(value, YamlMap):
        return ("map", value.line, value.key_lines,
                [(key, _shape(item)) for key, item in value.items()])
    if isinstance(value, YamlList):
        return ("list", value.line, value.item_lines, [_shape(item) for item in value])
    if isinstance(value, float) and value != value:
        return ("nan",)
    return (type(value).__name__, value)


def _outcome(load: Any, text: str) -> Any:
    try:
        return ("ok", _shape(load(text)))
    except YamlSyntaxError as exc:
        return ("error", exc.line, exc.key, exc.message)


def _repo_specs() -> list[Path]:
    return sorted([*ROOT.glob("slo_specs/*.yaml"), *ROOT.glob("examples/**/*.slo.yaml")])


@pytest.mark.parametrize("text", list(PLAIN.values()), ids=list(PLAIN))
def test_plain_documents_are_built_from_events_as_the_node_path_builds_them(text: str) -> None:
    text = textwrap.dedent(text)
    assert _shape(_from_events(text)) == _shape(_from_nodes(text))


@pytest.mark.parametrize("path", _repo_specs(), ids=lambda p: p.name)
def test_the_shipped_specs_take_the_event_path_and_agree(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _shape(_from_events(text)) == _shape(_from_nodes(text))


def test_the_shipped_specs_were_found() -> None:
    assert {p.name for p in _repo_specs()} >= {"conflict_resolver.yaml", "rollout.slo.yaml"}


@pytest.mark.parametrize("text", list(UNUSUAL.values()), ids=list(UNUSUAL))
def test_anything_else_goes_to_the_node_path_with_the_same_result(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = textwrap.dedent(text)
    with pytest.raises((_Unusual, yaml.YAMLError)):
        _from_events(text)
    got = _outcome(load_yaml, text)

    def refuse(text: str) -> Any:
        raise _Unusual

    monkeypatch.setattr(yamlfast, "from_events", refuse)  # load_yaml on the node path only
    assert got == _outcome(load_yaml, text)


def test_unusual_documents_still_load_as_safe_load_would() -> None:
    assert load_yaml("base: &b {x: 1}\ncopy: *b\n") == {"base": {"x": 1}, "copy": {"x": 1}}
    assert load_yaml("when: 2026-11-26\n") == {"when": datetime.date(2026, 11, 26)}
    merged = load_yaml("a: {<<: {x: 1, y: 1}, y: 2}\n")
    assert merged == {"a": {"x": 1, "y": 2}}


def test_errors_keep_their_line_and_wording() -> None:
    with pytest.raises(YamlSyntaxError) as duplicate:
        load_yaml("a: 1\nb: 2\na: 3\n")
    assert (duplicate.value.line, duplicate.value.key) == (3, "a")
    assert "first defined on line 1" in duplicate.value.message
    with pytest.raises(YamlSyntaxError) as boolean:
        load_yaml("x: 1\non: 2\n")
    assert boolean.value.line == 2
    assert "keys must be strings, got bool True" in boolean.value.message
    with pytest.raises(YamlSyntaxError) as two:
        load_yaml("a: 1\n---\nb: 2\n")
    assert "expected a single document" in two.value.message


def test_a_second_import_of_yaml_still_loads_specs(tmp_path: Path) -> None:
    # pytester's in-process runs unload `yaml` and import it again, while libyaml's extension
    # module keeps the first import's classes; the loader must notice and still type values.
    script = tmp_path / "reimport.py"
    script.write_text(textwrap.dedent("""\
        import sys
        import pytest_rollout_slo.spec.yamlload as first
        first.load_yaml("a: 1")
        for name in list(sys.modules):
            if name == "yaml" or name.startswith(("yaml.", "pytest_rollout_slo.spec.yamlload")):
                del sys.modules[name]
        import pytest_rollout_slo.spec.yamlload as again
        assert again is not first
        print(again.load_yaml("a: 1\\nb: [x, 2.5, true, ~]\\n"))
        print(again.load_yaml("a: &x {n: 1}\\nb: *x\\n"))
        try:
            again.load_yaml("a: 1\\nb: 2\\na: 3\\n")
        except again.YamlSyntaxError as exc:
            print(exc.line, exc.message)
        """), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "{'a': 1, 'b': ['x', 2.5, True, None]}",
        "{'a': {'n': 1}, 'b': {'n': 1}}",
        "3 duplicate key (first defined on line 1); each key may appear once in a mapping",
    ]


def test_a_resolver_added_later_is_honoured_by_the_event_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Another library may teach PyYAML's safe loader a new implicit type after this module
    # was imported; the shortcut for plain strings must not hide it.
    resolvers = {key: list(value)
                 for key, value in yamlload.LineLoader.yaml_implicit_resolvers.items()}
    resolvers.setdefault("q", []).append(("tag:yaml.org,2002:null", re.compile(r"^qnone$")))
    monkeypatch.setattr(yamlload.LineLoader, "yaml_implicit_resolvers", resolvers)
    assert _from_events("a: qnone\nb: qno\n") == {"a": None, "b": "qno"}


_keys = st.text(st.sampled_from("abcxyz_:-#&*!<{}[], 01.\n'\""), min_size=1, max_size=6)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=True), _keys)
_documents = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(document=_documents, flow=st.booleans(), cut=st.integers(0, 400),
       insert=st.sampled_from(["", "&a ", "*a", "!!str ", "<<: ", "\t", ": ", "- ", "{", "]",
                               "!!float ", "!!map ", "0b_ ", "9" * 50, "2026-13-45 ", "\x07",
                               "[" * 40, "{a: " * 40, "? [a]\n: ", "&b [*a, *a, *a] "]))
def test_both_loaders_agree_on_any_text(document: Any, flow: bool, cut: int,
                                        insert: str) -> None:
    # Dumped documents (block or flow style) and the same text broken at one place: the fast
    # path gives the node path's result, line numbers and error, or hands the text to it.
    text = yaml.safe_dump(document, default_flow_style=flow, sort_keys=False)
    cut = min(cut, len(text))
    for variant in (text, text[:cut] + insert + text[cut:]):
        assert _outcome(load_yaml, variant) == _outcome(load_yaml_nodes, variant)


# -- what the loader refuses before building, with line and key path ------------------------

def _both(text: str) -> YamlSyntaxError:
    """The error both paths give for ``text`` (the node path alone too)."""
    with pytest.raises(YamlSyntaxError) as fast:
        load_yaml(text)
    with pytest.raises(YamlSyntaxError) as nodes:
        load_yaml_nodes(text)
    assert (fast.value.line, fast.value.key, fast.value.message) == (
        nodes.value.line, nodes.value.key, nodes.value.message)
    return fast.value


@pytest.mark.parametrize(("value", "shown"), [
    ("!!float abc", "!!float"), ("!!int ''", "!!int"), ("!!map up", "!!map"),
    ("!!str 5", "!!str"), ("!!set {x}", "!!set"), ("! plain", "!"),
    ("!!python/object:os.system ls", "!!python/object:os.system"),
])
def test_explicit_tags_are_refused_with_line_and_key(value: str, shown: str) -> None:
    error = _both(f"a: 1\nobjectives:\n  - name: x\n    max: {value}\n")
    assert (error.line, error.key) == (4, "objectives[0].max")
    assert error.message == (f"explicit YAML tags ({shown}) are not accepted; write the value "
                             "plainly (in quotes for a string)")


def test_nesting_is_bounded_in_block_and_flow_style() -> None:
    deepest_allowed = "".join(f"{'  ' * level}k{level}:\n" for level in range(31)) + \
        f"{'  ' * 31}k31: 1\n"
    assert load_yaml(deepest_allowed) == load_yaml_nodes(deepest_allowed)
    block = "".join(f"{'  ' * level}k{level}:\n" for level in range(400)) + f"{'  ' * 400}x: 1\n"
    error = _both(block)
    assert error.line == 33
    assert error.message == "nested more than 32 levels deep; a spec needs about six"
    assert error.key is not None and error.key.startswith("k0.k1.k2") and "..." in error.key
    flow = "a: " + "{b: " * 1000 + "1" + "}" * 1000 + "\n"
    assert _both(flow).message == "nested more than 32 levels deep; a spec needs about six"
    lists = "a: " + "[" * 40 + "]" * 40 + "\n"
    assert _both(lists).line == 1


def test_an_alias_bomb_is_refused_at_once() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    text = "\n".join([*lines, "max: *a9"]) + "\n"
    started = time.perf_counter()
    error = _both(text)
    assert time.perf_counter() - started < 2
    assert error.message == ("aliases here expand to more than 10000 values; write the values "
                             "out, or use fewer aliases")
    assert (error.line, error.key) == (5, "a4[0]")


def test_aliases_within_the_bound_still_load() -> None:
    text = "base: &b {x: 1, y: [1, 2]}\n" + "".join(f"o{n}: *b\n" for n in range(200))
    assert load_yaml(text)["o199"] == {"x": 1, "y": [1, 2]}


@pytest.mark.parametrize(("value", "message"), [
    ("9" * 320, "a number of 320 characters; numbers here have at most 40 (quote the value if "
                "it is text)"),
    ("9" * 4400, "a number of 4400 characters; numbers here have at most 40 (quote the value "
                 "if it is text)"),
    ("0b_", "'0b_' looks like a number but is not one (quote the value if it is text)"),
    ("0x_", "'0x_' looks like a number but is not one (quote the value if it is text)"),
    ("2026-13-45", "'2026-13-45' looks like a date but is not one (quote the value if it is "
                   "text)"),
])
def test_scalars_the_resolver_types_but_cannot_read_are_refused(value: str,
                                                                message: str) -> None:
    error = _both(f"a:\n  b: [1, {value}]\n")
    assert (error.line, error.key, error.message) == (2, "a.b[1]", message)
    assert load_yaml(f"a: '{value[:50]}'\n") == {"a": value[:50]}  # quoted, it is text


@pytest.mark.parametrize(("text", "line", "code"), [
    ("a: 1\nb: x\x07y\n", 2, "U+0007"),
    ("a: 1\n\nb: ü\x00\n", 3, "U+0000"),
    ("a: ünï\ncödé: 1\nc: \ufffe\n", 3, "U+FFFE"),
])
def test_characters_yaml_refuses_are_named_with_their_line(text: str, line: int,
                                                           code: str) -> None:
    error = _both(text)
    assert (error.line, error.key) == (line, None)
    assert error.message == f"the file holds the character {code}, which YAML does not allow; " \
                            "remove it"


def test_an_error_at_the_end_of_a_file_names_its_last_line() -> None:
    error = _both("a: 1\nb: [1, 2")
    assert (error.line, error.key) == (2, "b[1]")


def test_a_parser_error_names_the_key_it_was_found_under() -> None:
    error = _both("objectives:\n  - name: x\n    max: 5%: 3\n")
    assert (error.line, error.key) == (3, "objectives[0].max")
    assert error.message.startswith("invalid YAML: mapping values are not allowed")


def test_a_huge_key_is_quoted_short() -> None:
    error = _both("x: 1\n? " + "k" * 100_000 + "\n: !!str 1\n")
    assert error.key is not None and len(error.key) < 100
    error = _both("? [" + ", ".join(["x"] * 10_000) + "]\n: 1\n")
    assert "keys must be strings, got YamlList a list" in error.message
