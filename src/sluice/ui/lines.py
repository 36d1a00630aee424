"""Where a validation problem stands in the YAML text: a problem's `loc` such as
`steps[2].then[0].wait` is followed through the document's node tree
(`yaml.compose`) to the line of the deepest node that exists."""

from __future__ import annotations

import json
import re

import yaml

_PART = re.compile(r'\.?([A-Za-z0-9_$-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_AT_LINE = re.compile(r"at (\d+):\d+")


def _parts(loc: str) -> list[str | int]:
    parts: list[str | int] = []
    position = 0
    while position < len(loc):
        match = _PART.match(loc, position)
        if match is None:
            break
        name, index, quoted = match.groups()
        parts.append(int(index) if index is not None else name or json.loads(quoted))
        position = match.end()
    return parts


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node that names the child, the child) — the key for a mapping entry."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part]
    return None


def lines_of(text: str, locs: list[tuple[str, str]], *, loaded: bool) -> list[int]:
    """The 1-based line of each `(loc, msg)`: a YAML problem's own position (syntax
    errors, anchors, nesting), else the line `loc` points at, else 1.

    The text is composed once for them all, and only when it `loaded` as definitions,
    so it is known to be within the limits (no aliases, nesting bounded)."""
    root = _compose(text) if loaded else None
    return [_line(root, loc, msg) for loc, msg in locs]


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None


def _line(root: yaml.Node | None, loc: str, msg: str) -> int:
    own = _AT_LINE.search(msg) if msg.startswith("YAML") else None
    if own:
        return int(own.group(1))
    if root is None:
        return 1
    node, line = root, root.start_mark.line
    for part in _parts(loc):
        found = _child(node, part)
        if found is None:
            break
        label, node = found
        line = label.start_mark.line
    return line + 1
