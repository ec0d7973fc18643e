"""The fast path of YAML loading: plain spec files built straight from parser events.

Composing a node tree creates a node and two position marks for every scalar before
anything is built: about 40% of loading a large spec file. Most spec files use only plain
mappings, sequences and scalars; :func:`from_events` builds exactly those, with the same
line numbers as :func:`pytest_rollout_slo.spec.yamlload.from_nodes`, and gives up on
anything else (an anchor or alias, an explicit tag, a merge key, a scalar that is not a
string, number, boolean or null or cannot be read as one, a duplicate or non-string key,
nesting deeper than the node path allows, a second document, a parser error), which
:func:`load_yaml_fast` then hands to that loader. The tests hold both paths to
the same result. No pytest here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from pytest_rollout_slo.spec.yamlload import (
    MAX_DEPTH,
    PLAIN_SCALAR_TAGS,
    STR_TAG,
    LineLoader,
    YamlList,
    YamlMap,
    from_nodes,
    plain_scalar,
    reported,
)


def load_yaml_fast(text: str) -> Any:
    """What :func:`~pytest_rollout_slo.spec.yamlload.load_yaml` returns, sooner for plain files."""
    return reported(_either, text)


def _either(text: str) -> Any:
    try:
        return from_events(text)
    except Unusual:
        pass
    except yaml.YAMLError:
        # A parser error seen while building: the node path reads the whole text before it
        # builds anything, so it reports this error or an earlier one, and which one is
        # the node path's to say.
        pass
    return from_nodes(text)


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


class Unusual(Exception):
    """The text uses what only the node-by-node path handles: anchors, aliases, tags, `<<`."""


def from_events(text: str) -> Any:
    """Build the document straight from parser events, never composing a node tree.

    Composing creates a node and two position marks for every scalar before anything is
    built: about 40% of loading a large spec file. Most spec files use only plain mappings,
    sequences and scalars; this path builds exactly those, with the same line numbers, and
    raises Unusual for anything else (an anchor or alias, an explicit tag, a merge key, a
    scalar that is not a string, number, boolean or null, a second document), so the node
    path decides it.
    """
    loader = LineLoader(text)
    # Events are typed loosely on purpose: the C parser's marks are not yaml.Mark.
    next_event: Callable[[], Any] = loader.get_event
    resolve = loader.resolve
    # Keys repeat in every objective; resolving the tag of a plain scalar runs regexes.
    tags: dict[str, str] = {}
    maybe_not_str = _maybe_not_str(LineLoader)

    def scalar(event: Any) -> Any:
        tag = event.tag
        if event.anchor is not None or tag is not None:
            raise Unusual  # the node path's screen refuses a tag, even the bare `!`
        value = event.value
        if not event.implicit[0] or (maybe_not_str is not None
                                     and value[:1] not in maybe_not_str):
            return value  # quoted, or no implicit type starts with that character
        tag = tags.get(value)
        if tag is None:
            tag = tags[value] = resolve(yaml.ScalarNode, value, event.implicit)
        if tag == STR_TAG:
            return value
        if tag not in PLAIN_SCALAR_TAGS:
            raise Unusual
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        try:
            return plain_scalar(loader, tag, node)
        except ValueError:
            raise Unusual from None  # the node path's screen words it, with the key path

    def build(event: Any, depth: int) -> Any:
        # Scalars (most events) are handled inline by the loops below: a call less each.
        kind = type(event)
        if kind is yaml.ScalarEvent:
            return scalar(event)
        if kind is yaml.AliasEvent or event.anchor is not None or event.tag is not None:
            raise Unusual
        if depth > MAX_DEPTH:
            raise Unusual  # the node path's screen says so; building deeper could recurse out
        depth += 1
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
                key = (scalar(key_event) if kind is yaml.ScalarEvent
                       else build(key_event, depth))
                line = key_event.start_mark.line + 1
                if not isinstance(key, str) or key in key_lines:
                    raise Unusual  # the node path words the error
                value = next_event()
                mapping[key] = (scalar(value) if type(value) is yaml.ScalarEvent
                                else build(value, depth))
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
            sequence.append(scalar(item) if kind is yaml.ScalarEvent else build(item, depth))

    try:
        next_event()  # the stream's start
        if type(next_event()) is yaml.StreamEndEvent:
            return None
        data = build(next_event(), 1)
        next_event()  # the document's end
        if type(next_event()) is not yaml.StreamEndEvent:
            raise Unusual  # a second document: the node path says it is not allowed
        return data
    finally:
        loader.dispose()


__all__ = ["Unusual", "from_events", "load_yaml_fast"]
