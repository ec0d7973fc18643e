"""YAML loading with line numbers and without PyYAML's silent surprises.

``yaml.safe_load`` semantics (no Python tags), plus: every mapping and sequence remembers
the line it starts on and the line of each key, and a duplicate key is an error instead of
the last value silently winning. No pytest here.
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlMap(dict[str, Any]):
    """A mapping from the spec file that knows its line and each key's line (1-based)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YamlList(list[Any]):
    """A sequence from the spec file that knows its line and each item's line (1-based)."""

    line: int
    item_lines: list[int]


class YamlSyntaxError(ValueError):
    """Bad YAML or a duplicate key; ``line`` and ``key`` say where."""

    def __init__(self, line: int | None, key: str | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.key = key
        self.message = message


# libyaml's parser, when PyYAML was built with it, parses about five times faster; the
# constructors below are ours either way, so line numbers and safe_load semantics are the same.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> YamlMap:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # resolves `<<` merge keys the way safe_load does
    # flatten_mapping puts merged pairs first; the mapping's own keys may override them.
    merged = len(node.value) - explicit
    result = YamlMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    own: set[str] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        key_line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            # YAML 1.1 reads `on:`, `yes:` and `1:` as booleans and numbers; say so plainly.
            raise YamlSyntaxError(key_line, str(key),
                                  f"keys must be strings, got {type(key).__name__} {key!r}; "
                                  "quote the key")
        if index >= merged and key in own:
            raise YamlSyntaxError(key_line, key,
                                  f"duplicate key (first defined on line {result.key_lines[key]}); "
                                  "each key may appear once in a mapping")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_line
        if index >= merged:
            own.add(key)
    return result


def _construct_list(loader: _LineLoader, node: yaml.SequenceNode) -> YamlList:
    result = YamlList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_list)


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raise YamlSyntaxError with the line of the problem."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: safe_load semantics
    except YamlSyntaxError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise YamlSyntaxError(line, None, f"invalid YAML: {problem}{context}") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(None, None, f"invalid YAML: {exc}") from exc
