"""YAML loading with line numbers and without PyYAML's silent surprises.

``yaml.safe_load`` semantics (no Python tags), plus: every mapping and sequence remembers
the line it starts on and the line of each key, and a duplicate key is an error instead of
the last value silently winning. No pytest here.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
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
def _base_loader() -> type[yaml.SafeLoader]:
    loader: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return yaml.SafeLoader
    # libyaml's extension module outlives a re-import of `yaml` (pytester's in-process runs
    # unload and import it again) and keeps the node and event classes of the first import.
    # PyYAML's resolver and constructors compare classes, so with those every node would
    # come out untyped: use the pure-Python parser then, whose classes are the current ones.
    extension = sys.modules.get("yaml._yaml")
    if getattr(extension, "ScalarEvent", yaml.ScalarEvent) is not yaml.ScalarEvent:
        return yaml.SafeLoader
    return loader


_BaseLoader = _base_loader()


class _LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    # Whether a node may appear twice in the tree. Only an alias (`*name`) can do that, and
    # an alias needs an anchor (`&name`): without a `&` in the text every node is built once,
    # so nothing needs remembering and each one can be let go as soon as it is built.
    shared = True


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Scalars whose safe constructor is a plain function of the node (no generator, no state).
_PLAIN_SCALAR_TAGS = frozenset({"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool",
                                "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def _construct(loader: _LineLoader, node: yaml.Node) -> Any:
    """What ``loader.construct_object(node, deep=True)`` returns, without its machinery.

    Maps, sequences and plain scalars (most of a spec file) are built here directly; any
    other tag goes through PyYAML's own ``construct_object``. Both share the loader's
    ``constructed_objects`` (an alias is the same object) and ``recursive_objects`` (an
    alias to a node being built is the same error as before).
    """
    shared = loader.shared
    constructed = loader.constructed_objects
    if shared and node in constructed:
        return constructed[node]
    tag = node.tag
    if tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        data: Any = node.value
    elif tag in _PLAIN_SCALAR_TAGS and isinstance(node, yaml.ScalarNode):
        data = loader.yaml_constructors[tag](loader, node)
    elif tag == _MAP_TAG and isinstance(node, yaml.MappingNode):
        data = _guarded(loader, node, _construct_map) if shared else _construct_map(loader, node)
    elif tag == _SEQ_TAG and isinstance(node, yaml.SequenceNode):
        data = _guarded(loader, node, _construct_list) if shared else _construct_list(loader, node)
    else:
        return loader.construct_object(node, deep=True)
    if shared:
        constructed[node] = data
    return data


def _guarded(loader: _LineLoader, node: yaml.Node, build: Any) -> Any:
    recursive = loader.recursive_objects
    if node in recursive:
        raise yaml.constructor.ConstructorError(None, None, "found unconstructable recursive node",
                                                node.start_mark)
    recursive[node] = None
    data = build(loader, node)
    del recursive[node]
    return data


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> YamlMap:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # resolves `<<` merge keys the way safe_load does
    # flatten_mapping puts merged pairs first; the mapping's own keys may override them.
    merged = len(node.value) - explicit
    result = YamlMap()
    result.line = node.start_mark.line + 1
    key_lines: dict[str, int] = {}
    result.key_lines = key_lines
    own: set[str] = set()
    pairs = node.value
    release = not loader.shared
    for index, (key_node, value_node) in enumerate(pairs):
        if release:
            pairs[index] = None  # built once (see _LineLoader.shared): free it as we go
        key = _construct(loader, key_node)
        key_line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            # YAML 1.1 reads `on:`, `yes:` and `1:` as booleans and numbers; say so plainly.
            raise YamlSyntaxError(key_line, str(key),
                                  f"keys must be strings, got {type(key).__name__} {key!r}; "
                                  "quote the key")
        if index >= merged:
            if key in own:
                raise YamlSyntaxError(key_line, key,
                                      f"duplicate key (first defined on line {key_lines[key]}); "
                                      "each key may appear once in a mapping")
            own.add(key)
        result[key] = _construct(loader, value_node)
        key_lines[key] = key_line
    return result


def _construct_list(loader: _LineLoader, node: yaml.SequenceNode) -> YamlList:
    result = YamlList()
    result.line = node.start_mark.line + 1
    item_lines: list[int] = []
    result.item_lines = item_lines
    children = node.value
    release = not loader.shared
    for index, child in enumerate(children):
        if release:
            children[index] = None  # built once (see _LineLoader.shared): free it as we go
        item_lines.append(child.start_mark.line + 1)
        result.append(_construct(loader, child))
    return result


# Used when PyYAML's construct_object builds a map or sequence itself (inside a `!!set`, say).
_LineLoader.add_constructor(_MAP_TAG, _construct_map)
_LineLoader.add_constructor(_SEQ_TAG, _construct_list)


def _maybe_not_str(loader: type[yaml.SafeLoader]) -> frozenset[str] | None:
    """First characters of the plain scalars the resolver may read as something other than a
    string (null, bool, int, float, timestamp, merge, value); any other plain scalar is one.

    Exactly what Resolver.resolve does, as long as no resolver applies to every first
    character and none depends on the path; None (ask the resolver every time) otherwise.
    Read per file, so a resolver another library adds later is seen.
    """
    resolvers = loader.yaml_implicit_resolvers
    if None in resolvers or loader.yaml_path_resolvers:
        return None
    return frozenset(key for key in resolvers if key is not None)


class _Unusual(Exception):
    """The text uses what only the node-by-node path handles: anchors, aliases, tags, `<<`."""


def _from_events(text: str) -> Any:
    """Build the document straight from parser events, never composing a node tree.

    Composing creates a node and two position marks for every scalar before anything is
    built: about 40% of loading a large spec file. Most spec files use only plain mappings,
    sequences and scalars; this path builds exactly those, with the same line numbers, and
    raises _Unusual for anything else (an anchor or alias, an explicit tag, a merge key, a
    scalar that is not a string, number, boolean or null, a second document), so the node
    path decides it.
    """
    loader = _LineLoader(text)
    # Events are typed loosely on purpose: the C parser's marks are not yaml.Mark.
    next_event: Callable[[], Any] = loader.get_event
    resolve = loader.resolve
    constructors = loader.yaml_constructors
    # Keys repeat in every objective; resolving the tag of a plain scalar runs regexes.
    tags: dict[str, str] = {}
    maybe_not_str = _maybe_not_str(_LineLoader)

    def scalar(event: Any) -> Any:
        tag = event.tag
        if event.anchor is not None or (tag is not None and tag != "!"):
            raise _Unusual
        value = event.value
        if not event.implicit[0] or (maybe_not_str is not None
                                     and value[:1] not in maybe_not_str):
            return value  # quoted, or no implicit type starts with that character
        tag = tags.get(value)
        if tag is None:
            tag = tags[value] = resolve(yaml.ScalarNode, value, event.implicit)
        if tag == _STR_TAG:
            return value
        if tag not in _PLAIN_SCALAR_TAGS:
            raise _Unusual
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        return constructors[tag](loader, node)

    def build(event: Any) -> Any:
        # Scalars (most events) are handled inline by the loops below: a call less each.
        kind = type(event)
        if kind is yaml.ScalarEvent:
            return scalar(event)
        if kind is yaml.AliasEvent or event.anchor is not None or (
                event.tag is not None and event.tag != "!"):
            raise _Unusual
        if kind is yaml.MappingStartEvent:
            mapping = YamlMap()
            mapping.line = event.start_mark.line + 1
            key_lines: dict[str, int] = {}
            mapping.key_lines = key_lines
            while True:
                key_event = next_event()
                kind = type(key_event)
                if kind is yaml.MappingEndEvent:
                    return mapping
                key = scalar(key_event) if kind is yaml.ScalarEvent else build(key_event)
                line = key_event.start_mark.line + 1
                if not isinstance(key, str) or key in key_lines:
                    raise _Unusual  # the node path words the error
                value = next_event()
                mapping[key] = scalar(value) if type(value) is yaml.ScalarEvent else build(value)
                key_lines[key] = line
        sequence = YamlList()  # a SequenceStartEvent: the parser emits nothing else here
        sequence.line = event.start_mark.line + 1
        item_lines: list[int] = []
        sequence.item_lines = item_lines
        while True:
            item = next_event()
            kind = type(item)
            if kind is yaml.SequenceEndEvent:
                return sequence
            item_lines.append(item.start_mark.line + 1)
            sequence.append(scalar(item) if kind is yaml.ScalarEvent else build(item))

    try:
        next_event()  # the stream's start
        if type(next_event()) is yaml.StreamEndEvent:
            return None
        data = build(next_event())
        next_event()  # the document's end
        if type(next_event()) is not yaml.StreamEndEvent:
            raise _Unusual  # a second document: the node path says it is not allowed
        return data
    finally:
        loader.dispose()


def _load(text: str) -> Any:
    try:
        return _from_events(text)
    except _Unusual:
        pass
    except yaml.YAMLError:
        # A parser error seen while building: the node path reads the whole text before it
        # builds anything, so it reports this error or an earlier one, and which one is
        # the node path's to say.
        pass
    return _from_nodes(text)


def _from_nodes(text: str) -> Any:
    loader = _LineLoader(text)  # a SafeLoader subclass: safe_load semantics
    loader.shared = "&" in text
    # Composing builds the whole node tree (about 25 objects per objective) before any node
    # can be let go. While it exists the cyclic collector walks it again and again and moves
    # it into older generations, which brings on a full collection of the pytest process
    # (about 15 ms for a 2,000-objective file). The tree is garbage once this function
    # returns and reference counting frees it, so the collector has nothing to find in it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if node.tag in (_MAP_TAG, _SEQ_TAG, _STR_TAG) or node.tag in _PLAIN_SCALAR_TAGS:
            return _construct(loader, node)
        return loader.construct_document(node)  # any other tag: exactly as yaml.load
    finally:
        loader.dispose()
        if collecting:
            gc.enable()


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raise YamlSyntaxError with the line of the problem."""
    try:
        return _load(text)
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
