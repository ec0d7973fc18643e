"""YAML loading with line numbers and without PyYAML's silent surprises: the loader.

``yaml.safe_load`` semantics (no Python tags), plus: every mapping and sequence remembers
the line it starts on and the line of each key, and a duplicate key is an error instead of
the last value silently winning. Before building, :func:`screen` refuses what no spec needs
and what could crash or hang the build (explicit tags, nesting deeper than
:data:`MAX_DEPTH`, aliases that expand past :data:`MAX_ALIAS_NODES`, numbers too long to
be meant, scalars the resolver types but its constructor cannot read), each with its line
and key path. :func:`load_yaml` is the one loader; the spec loader calls
:func:`pytest_rollout_slo.spec.yamlfast.load_yaml_fast`, which builds plain files from
parser events and hands everything else to this one. No pytest here.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

import yaml

from pytest_rollout_slo.quantity import quote

MAX_DEPTH = 32
"""Mappings and lists nested deeper than this are refused; a spec needs about six levels.
Building recurses once per level, so an unbounded depth ends in a RecursionError."""
MAX_ALIAS_NODES = 10_000
"""Values aliases may add beyond the text's own: nine aliases of nine aliases of ... (an
alias bomb) would otherwise be a structure of billions of values to walk or show."""
MAX_NUMBER_CHARS = 40
"""A plain scalar read as a number may be this long; longer ones are refused, not rounded to
infinity (310 digits) or refused by Python's int() (4,300)."""


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


class LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    # Whether a node may appear twice in the tree. Only an alias (`*name`) can do that, and
    # an alias needs an anchor (`&name`): without a `&` in the text every node is built once,
    # so nothing needs remembering and each one can be let go as soon as it is built.
    shared = True


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Scalars whose safe constructor is a plain function of the node (no generator, no state).
PLAIN_SCALAR_TAGS = frozenset({"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool",
                                "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def plain_scalar(loader: LineLoader, tag: str, node: yaml.ScalarNode) -> Any:
    """A null, bool, int, float or timestamp scalar's value; ValueError when it is none."""
    if len(node.value) > MAX_NUMBER_CHARS and tag in _NUMBER_TAGS:
        raise ValueError(f"a number of {len(node.value)} characters; numbers here have at "
                         f"most {MAX_NUMBER_CHARS} (quote the value if it is text)")
    try:
        return loader.yaml_constructors[tag](loader, node)
    except (ValueError, ArithmeticError) as exc:
        # The resolver's patterns admit a few texts its constructors cannot read (`0b_`).
        kind = "date" if tag == _TIMESTAMP_TAG else "number"
        raise ValueError(f"{quote(node.value)} looks like a {kind} but is not one "
                         "(quote the value if it is text)") from exc


_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def _construct(loader: LineLoader, node: yaml.Node) -> Any:
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
    if tag == STR_TAG and isinstance(node, yaml.ScalarNode):
        data: Any = node.value
    elif tag in PLAIN_SCALAR_TAGS and isinstance(node, yaml.ScalarNode):
        try:
            data = plain_scalar(loader, tag, node)
        except ValueError as exc:  # screen() reports these first, with the key path
            raise YamlSyntaxError(node.start_mark.line + 1, None, str(exc)) from exc
    elif tag == _MAP_TAG and isinstance(node, yaml.MappingNode):
        data = _guarded(loader, node, _construct_map) if shared else _construct_map(loader, node)
    elif tag == _SEQ_TAG and isinstance(node, yaml.SequenceNode):
        data = _guarded(loader, node, _construct_list) if shared else _construct_list(loader, node)
    else:
        return loader.construct_object(node, deep=True)
    if shared:
        constructed[node] = data
    return data


def _guarded(loader: LineLoader, node: yaml.Node, build: Any) -> Any:
    recursive = loader.recursive_objects
    if node in recursive:
        raise yaml.constructor.ConstructorError(None, None, "found unconstructable recursive node",
                                                node.start_mark)
    recursive[node] = None
    data = build(loader, node)
    del recursive[node]
    return data


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> YamlMap:
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
            pairs[index] = None  # built once (see LineLoader.shared): free it as we go
        key = _construct(loader, key_node)
        key_line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            # YAML 1.1 reads `on:`, `yes:` and `1:` as booleans and numbers; say so plainly.
            raise YamlSyntaxError(key_line, quote(key),
                                  f"keys must be strings, got {type(key).__name__} "
                                  f"{quote(key)}; quote the key")
        if index >= merged:
            if key in own:
                raise YamlSyntaxError(key_line, key,
                                      f"duplicate key (first defined on line {key_lines[key]}); "
                                      "each key may appear once in a mapping")
            own.add(key)
        result[key] = _construct(loader, value_node)
        key_lines[key] = key_line
    return result


def _construct_list(loader: LineLoader, node: yaml.SequenceNode) -> YamlList:
    result = YamlList()
    result.line = node.start_mark.line + 1
    item_lines: list[int] = []
    result.item_lines = item_lines
    children = node.value
    release = not loader.shared
    for index, child in enumerate(children):
        if release:
            children[index] = None  # built once (see LineLoader.shared): free it as we go
        item_lines.append(child.start_mark.line + 1)
        result.append(_construct(loader, child))
    return result


# Used when PyYAML's construct_object builds a map or sequence itself (inside a `!!set`, say).
LineLoader.add_constructor(_MAP_TAG, _construct_map)
LineLoader.add_constructor(_SEQ_TAG, _construct_list)


class _Frame:
    """An open mapping or list while screening: how many nodes it has and its current key."""

    __slots__ = ("anchor", "count", "is_map", "key", "start")

    def __init__(self, is_map: bool, anchor: str | None, start: int) -> None:
        self.is_map = is_map
        self.anchor = anchor
        self.start = start
        self.count = 0
        self.key = "?"


def _path(stack: list[_Frame]) -> str | None:
    parts: list[str] = []
    for frame in stack:
        if frame.is_map:
            if frame.count:
                parts.append(f".{frame.key}" if parts else frame.key)
        elif frame.count:
            parts.append(f"[{frame.count - 1}]")
    path = "".join(parts)
    # Deep nesting makes a long path; its start and its end say where.
    return (f"{path[:40]}...{path[-40:]}" if len(path) > 90 else path) or None


def screen(text: str) -> None:
    """Refuse, naming line and key path, what no spec needs and what could break the build.

    Reads the parser's events only (no node tree, nothing built), up to the end of the first
    document. A parser error is reported here too, with the key path it was found under.
    """
    loader = LineLoader(text)
    stack: list[_Frame] = []
    sizes: dict[str, int] = {}  # anchor -> the values it stands for, expansions included
    values = added = documents = 0
    resolve = loader.resolve
    try:
        while True:
            try:
                event = loader.get_event()
            except yaml.YAMLError as exc:
                error = syntax_error(exc, text)
                error.key = _path(stack)
                raise error from exc
            kind = type(event)
            if kind is yaml.StreamEndEvent:
                return
            if kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    return  # composing says a spec file is one document
                continue
            if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame.anchor is not None:
                    sizes[frame.anchor] = values - frame.start + 1
                continue
            if kind is yaml.DocumentEndEvent or kind is yaml.StreamStartEvent:
                continue
            line = event.start_mark.line + 1
            if stack:
                parent = stack[-1]
                parent.count += 1
                if parent.is_map and parent.count % 2:
                    parent.key = (quote(event.value, limit=40, bare=True)
                                  if kind is yaml.ScalarEvent else "?")
            if kind is yaml.AliasEvent:
                size = sizes.get(event.anchor, 1)
                values += size
                added += size
                if added > MAX_ALIAS_NODES:
                    raise YamlSyntaxError(line, _path(stack),
                                          f"aliases here expand to more than {MAX_ALIAS_NODES} "
                                          "values; write the values out, or use fewer aliases")
                continue
            values += 1
            if event.tag is not None:
                raise YamlSyntaxError(line, _path(stack),
                                      f"explicit YAML tags ({_tag(event.tag)}) are "
                                      "not accepted; write the value plainly (in quotes for "
                                      "a string)")
            if kind is yaml.ScalarEvent:
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                if event.implicit[0]:
                    tag = resolve(yaml.ScalarNode, event.value, event.implicit)
                    if tag in PLAIN_SCALAR_TAGS or tag == _TIMESTAMP_TAG:
                        node = yaml.ScalarNode(tag, event.value, event.start_mark,
                                               event.end_mark, event.style)
                        try:
                            plain_scalar(loader, tag, node)
                        except ValueError as exc:
                            raise YamlSyntaxError(line, _path(stack), str(exc)) from exc
                continue
            stack.append(_Frame(kind is yaml.MappingStartEvent, event.anchor, values))
            if len(stack) > MAX_DEPTH:
                raise YamlSyntaxError(line, _path(stack),
                                      f"nested more than {MAX_DEPTH} levels deep; a spec "
                                      "needs about six")
    finally:
        loader.dispose()


def from_nodes(text: str) -> Any:
    """Screen the text, compose the node tree, then build it: every YAML feature safe_load
    has that a spec may use."""
    screen(text)
    loader = LineLoader(text)  # a SafeLoader subclass: safe_load semantics
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
        if node.tag in (_MAP_TAG, _SEQ_TAG, STR_TAG) or node.tag in PLAIN_SCALAR_TAGS:
            return _construct(loader, node)
        return loader.construct_document(node)  # any other tag: exactly as yaml.load
    finally:
        loader.dispose()
        if collecting:
            gc.enable()


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raise YamlSyntaxError with the line of the problem."""
    return reported(from_nodes, text)


def reported(build: Callable[[str], Any], text: str) -> Any:
    """``build(text)``, with PyYAML's errors as YamlSyntaxError naming the line."""
    try:
        return build(text)
    except YamlSyntaxError:
        raise
    except yaml.YAMLError as exc:
        raise syntax_error(exc, text) from exc


def syntax_error(exc: yaml.YAMLError, text: str) -> YamlSyntaxError:
    """PyYAML's error about ``text`` as a YamlSyntaxError naming the line."""
    if isinstance(exc, yaml.reader.ReaderError):
        # A control character or a byte that is not text: the reader gives its position only.
        # libyaml counts bytes of the UTF-8 text, PyYAML's own reader characters.
        before = (text.encode("utf-8", "surrogatepass")[:exc.position].count(b"\n")
                  if _BaseLoader is not yaml.SafeLoader else text.count("\n", 0, exc.position))
        return YamlSyntaxError(before + 1, None, f"the file holds {_character(exc)}, which YAML "
                                                 "does not allow; remove it")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        # At the end of a text without a final newline, the mark is one line past the last.
        line = min(mark.line + 1, text.count("\n") + 1) if mark is not None else None
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        return YamlSyntaxError(line, None, f"invalid YAML: {problem}{context}")
    return YamlSyntaxError(None, None, f"invalid YAML: {exc}")


def _tag(tag: str) -> str:
    shorthand = tag.replace("tag:yaml.org,2002:", "!!", 1)
    return quote(shorthand, limit=40, bare=True)


def _character(exc: yaml.reader.ReaderError) -> str:
    character = exc.character
    code = ord(character) if isinstance(character, str) else int(character)
    return f"the character U+{code:04X}"


__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_NUMBER_CHARS", "PLAIN_SCALAR_TAGS", "STR_TAG",
           "LineLoader", "YamlList", "YamlMap", "YamlSyntaxError", "from_nodes", "load_yaml",
           "plain_scalar", "reported", "screen", "syntax_error"]
