"""The author's YAML text of a definition, kept as written while its document changes
(issue 11, "YAML stays the source"): the builder edits the document, and `merge` writes
the change into the text.

`merge(text, document)` edits `text` only where its document differs from `document`:
everything else stays byte for byte — comments, blank lines, key order, quoting,
block scalars (`html: |`), flow collections (`{add: [vip]}`). A changed value is
rewritten in the style it had (a literal block stays one, a quoted string stays
quoted), new keys come after the kept ones in the document's order, and new values are
written as `dump` writes them. In a list, an item is matched to the old one with the
same `id` (steps), else to an equal one, else to the one at its position; a matched
item keeps its text, with the comment lines just above it (at its indentation or
less), wherever it moves — also into another list, for a step moved by id.

Why splicing text rather than a round-trip library: ruamel.yaml's round trip (pure
Python) takes about 230 ms to load and dump a flow of 100 steps on our machines, more
than the whole budget of an edit (issue 11: re-validated in under 100 ms). Splicing
reads the text with libyaml (`yaml.compose`, a few ms) for the position of every node
and touches only the changed ones, which also keeps untouched text exact, where a
round trip normalizes indentation and spacing.

The result always loads (`load_documents`) to `document`; strings that YAML would read
as something else (`on`, `1e3`, `2026-01-01`) are quoted.

`document_texts` cuts a file of several YAML documents into each document's own text,
as written (SPEC §7: versions keep the author's text); `dump` writes a document that
has no author's text (a JSON body) as block-style YAML.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

import orjson
import yaml

from sluice.definitions.parse import DefinitionError, load_documents

_WIDE = 1 << 30
"""Line width for dumping: never fold a long line (a subject, a URL)."""
_STR = "tag:yaml.org,2002:str"
_OTHER_BREAKS = ("\x85", "\u2028", "\u2029", "\r")
"""Line breaks of YAML 1.1 besides `\n` (and `\r`, which a block cannot hold)."""


# -- dumping -----------------------------------------------------------------------------


class _Literal(str):
    """A string to write as a literal block (`|`)."""


class _Folded(str):
    """A string to write as a folded block (`>`)."""


class _SingleQuoted(str):
    pass


class _DoubleQuoted(str):
    pass


_STYLE_OF = {_Literal: "|", _Folded: ">", _SingleQuoted: "'", _DoubleQuoted: '"'}
_CLASS_OF = {style: cls for cls, style in _STYLE_OF.items()}


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as literal blocks; lists indented under their
    key (`steps:\\n  - id: …`, as the examples write them) unless `indentless`; no
    anchors; a string quoted whenever the definitions' loader (parse.py: YAML 1.2
    scalars, plus `1e3` as a number) or YAML 1.1 would read it as anything else."""

    indentless = False

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, indentless and self.indentless)

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _IndentlessDumper(_Dumper):
    indentless = True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = _STYLE_OF.get(type(value))
    if style is None and "\n" in value:
        style = "|"
    if style in ("|", ">") and value.endswith("\n\n"):
        style = '"'  # `|+` would take in blank lines that follow it in the text
    if any(mark in value for mark in _OTHER_BREAKS):
        style = '"'  # PyYAML writes them unescaped in other styles, and misreads them
    return dumper.represent_scalar(_STR, str(value), style=style)


for _cls in (str, *_STYLE_OF):
    _Dumper.add_representer(_cls, _represent_str)
_Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)
_Dumper.add_implicit_resolver(  # the loader's YAML 1.2 integers: `08` is one
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?[0-9][0-9_]*)$"),
    list("-+0123456789"),
)


def dump(document: Any, *, indentless: bool = False) -> str:
    """`document` as YAML text: block style, keys in the document's order, multi-line
    strings as `|` blocks, lists indented under their key (at the key's column with
    `indentless`)."""
    return yaml.dump(
        document,
        Dumper=_IndentlessDumper if indentless else _Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=_WIDE,
    )


def _flow(value: Any) -> str:
    return yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=True,
        width=_WIDE,
    ).removesuffix("\n")


def _indented(text: str, column: int) -> str:
    """Every line but the first shifted right by `column` (empty lines stay empty)."""
    first, *rest = text.split("\n")
    pad = " " * column
    return "\n".join([first, *(pad + line if line else line for line in rest)])


def _shifted(text: str, delta: int) -> str:
    """Every line shifted by `delta` columns (left: only spaces are taken away)."""
    lines = text.split("\n")
    if delta > 0:
        return "\n".join(" " * delta + line if line.strip() else line for line in lines)
    return "\n".join(line[min(-delta, len(line) - len(line.lstrip(" "))) :] for line in lines)


# -- comparing ---------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Whether two JSON-like values are the same document value: unlike `==`, `True` is
    not `1` and `1` is not `1.0`; a date or time the text holds unquoted is the same as
    its ISO 8601 string (the form the builder receives it in)."""
    if isinstance(a, datetime | date | time) and isinstance(b, str):
        return a.isoformat() == b
    if type(a) is not type(b):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, dict | list) and _as_json(a) == _as_json(b) is not None:
        return True  # the common case, told at C speed
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _as_json(value: Any) -> bytes | None:
    """`value` as JSON (1 and 1.0 and true told apart), or None when orjson cannot write
    it (an integer beyond 64 bits, a key that is not a string)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


def _id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) and isinstance(value.get("id"), str) else None


def _shape(value: Any) -> type:
    return dict if isinstance(value, dict) else list if isinstance(value, list) else object


# -- merging -----------------------------------------------------------------------------


def merge(text: str, document: Any) -> str:
    """`text` changed so that it loads to `document`, keeping what is unchanged as
    written (see the module docstring). A text that does not load as one document
    (or is empty) is replaced by `dump(document)`.

    A byte order mark stays, and so do the text's line breaks: new lines are written
    with the ones it uses (CR LF; or, in a text without LF, CR or NEL), so that an
    editor's file keeps one convention. (LS and PS break lines too, but stay in the
    values of block scalars as themselves: a text broken by them does not read the
    same with LF.)"""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    newline = _newline(body)
    if newline not in ("\n", "\r\n"):
        body = body.replace(newline, "\n")
    merged = _merge(body, document)
    if newline == "\r\n":
        merged = _LONE_LF.sub("\r\n", merged)
    elif newline != "\n":
        merged = merged.replace("\n", newline)
    return bom + merged


_LONE_LF = re.compile(r"(?<!\r)\n")


def _newline(text: str) -> str:
    """The line break `text` is written with: CR LF when each LF follows a CR, LF
    when some does not, else the first CR or NEL it holds."""
    if "\n" in text:
        return "\r\n" if "\r\n" in text and not _LONE_LF.search(text) else "\n"
    found = [(text.find(mark), mark) for mark in ("\r", "\x85") if mark in text]
    return min(found)[1] if found else "\n"


def _merge(text: str, document: Any) -> str:
    loaded = _recent.get(text)
    if loaded is None:
        try:
            loaded = load_documents(text, "document")
        except DefinitionError:
            loaded = None
    if loaded is not None and len(loaded) == 1 and same(loaded[0], document):
        return text
    root = _compose(text) if loaded is not None and len(loaded) == 1 else None
    if root is None or not isinstance(document, dict) or not isinstance(loaded[0], dict):
        merged = dump(document)
    else:
        merged = _Splicer(text, root, loaded[0], document).result()
    _recent.put(merged, document)
    return merged


class _Recent:
    """The documents of the last texts `merge` wrote: the builder sends each one back
    with its next edit, and reading the text again would cost more than the merge.
    Kept as JSON, so that no caller's later change of a document can alter them."""

    SIZE = 16

    def __init__(self) -> None:
        self._texts: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> list[Any] | None:
        with self._lock:
            found = self._texts.get(text)
            if found is not None:
                self._texts.move_to_end(text)
        return None if found is None else [orjson.loads(found)]

    def put(self, text: str, document: Any) -> None:
        as_json = _as_json(document)
        if as_json is None or not isinstance(document, dict):
            return
        with self._lock:
            self._texts[text] = as_json
            while len(self._texts) > self.SIZE:
                self._texts.popitem(last=False)


_recent = _Recent()


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None


Replace = Callable[[Any], None]
Edit = tuple[int, int, str]


class _Splicer:
    """The edits that turn `text` (composed to `root`, loaded to `old`) into a text of
    `new`: (start, end, replacement) spans of the original text."""

    def __init__(self, text: str, root: yaml.Node, old: dict, new: dict):
        self.text = text
        self.root = root
        self.old = old
        self.new = new
        self.edits: list[Edit] = []
        self.indentless = _indentless_lists(root, text)
        self.old_items = self.steps_by_id()
        self.new_ids = _ids(new)

    def result(self) -> str:
        self.value(self.root, self.old, self.new, self._replace_root)
        return self.render(0, len(self.text), self.edits)

    def render(self, start: int, end: int, edits: list[Edit]) -> str:
        """The text from `start` to `end` with `edits` (all inside it) made."""
        parts, position = [], start
        for edit_start, edit_end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
            parts += [self.text[position:edit_start], replacement]
            position = edit_end
        parts.append(self.text[position:end])
        return "".join(parts)

    # -- values --

    def value(self, node: yaml.Node, old: Any, new: Any, replace: Replace) -> None:
        if same(old, new):
            return
        block = isinstance(node, yaml.CollectionNode) and not node.flow_style and new
        if block and isinstance(node, yaml.MappingNode) and isinstance(old, dict):
            done = isinstance(new, dict) and self.mapping(node, old, new)
        elif block and isinstance(node, yaml.SequenceNode) and isinstance(old, list):
            done = isinstance(new, list) and self.sequence(node, old, new)
        else:
            done = False
        if not done:
            replace(new)

    def _replace_root(self, new: Any) -> None:
        self.edits[:] = [(0, len(self.text), dump(new, indentless=self.indentless))]

    def _replace_after(self, start: int, node: yaml.Node, new: Any, column: int, lead: str):
        """Replace the text from `start` (a key's end, or a list item's dash) to the end
        of `node` with `new`, written as the value of a key (`lead` ":") or as an item
        (`lead` "-") at `column`."""
        new = _styled(node, new)
        end = self.content_end(node)
        # A flow collection stays one (`{add: [vip]}`), unless it was empty: `then: []`
        # is how an empty branch is written, not a choice of style for its steps.
        if isinstance(node, yaml.CollectionNode) and node.flow_style and node.value and new:
            flow = _flow(new) if isinstance(new, dict | list) else ""
            if flow and "\n" not in flow and len(flow) <= 100:
                self.edits.append((start, end, f"{lead} {flow}" if lead == "-" else f": {flow}"))
                return
        if lead == ":":  # `x: value` without the x
            written = dump({"x": new}, indentless=self.indentless).removesuffix("\n")[1:]
        else:  # `- value`
            written = dump([new], indentless=self.indentless).removesuffix("\n")
        replacement = _indented(written, column)
        line_end = self.text.find("\n", end)
        line_end = len(self.text) if line_end < 0 else line_end
        rest = self.text[end:line_end]
        if "\n" in replacement and rest.strip():  # a comment after the old value
            first, _, after = replacement.partition("\n")
            replacement, end = f"{first}{rest}\n{after}", line_end
        self.edits.append((start, end, replacement))

    # -- mappings --

    def mapping(self, node: yaml.MappingNode, old: dict, new: dict) -> bool:
        """Edits for a block mapping; False when it must be written anew."""
        keys = _keys_of(node, old)
        if keys is None:
            return False  # a merge key (`<<`), a complex key, a key not told apart
        kept = [i for i, key in enumerate(keys) if key in new]
        if not kept:
            return False
        column = node.start_mark.column
        starts = [self.entry_start(k.start_mark.index, column) for k, _ in node.value]
        if (0 not in kept and starts[0] is None) or None in starts[1:]:
            return False  # the first key follows a dash (`- id: x`) and goes
        if starts[0] is None:
            starts[0] = node.value[0][0].start_mark.index
        elif node is self.root:  # the file's first comments stay
            starts[0] = self.line_start(node.value[0][0].start_mark.index)
        end = self.line_end(self.content_end(node.value[-1][1]))
        for i, ((key_node, value_node), key) in enumerate(zip(node.value, keys, strict=True)):
            if key not in new:
                self.edits.append((starts[i], starts[i + 1] if i + 1 < len(keys) else end, ""))
                continue
            replace = self._replacer(self.colon_after(key_node), value_node, column, ":")
            self.value(value_node, old[key], new[key], replace)
        added = {key: value for key, value in new.items() if key not in old}
        if added:
            written = dump(added, indentless=self.indentless).removesuffix("\n")
            written = " " * column + _indented(written, column) + "\n"
            self.edits.append(
                (end, end, written if self.text[end - 1 : end] == "\n" else "\n" + written)
            )
        return True

    def _replacer(self, start: int, node: yaml.Node, column: int, lead: str) -> Replace:
        return lambda new: self._replace_after(start, node, new, column, lead)

    # -- lists --

    def sequence(self, node: yaml.SequenceNode, old: list, new: list) -> bool:
        """Edits for a block list: the items' text rebuilt in the new order."""
        found = self.item_spans(node)
        if found is None:
            return False  # an item on the line of another (`- - a`)
        dashes, spans = found
        column = self.column_of(dashes[0])
        start, end = spans[0][0], spans[-1][1]
        parts = []
        for i, value in zip(self.match(old, new), new, strict=True):
            if i is not None:
                parts.append(self.item_text(node.value[i], dashes[i], spans[i], old[i], value))
            elif self.moves_here(value):
                item, dash, span, old_value = self.old_items[_id(value)]
                written = self.item_text(item, dash, span, old_value, value)
                parts.append(_shifted(written, column - self.column_of(dash)))
            else:
                written = dump([value], indentless=self.indentless).removesuffix("\n")
                parts.append(" " * column + _indented(written, column) + "\n")
        rebuilt = "".join(part if part.endswith("\n") else part + "\n" for part in parts)
        if not self.text[:end].endswith("\n"):
            rebuilt = rebuilt.removesuffix("\n")
        self.edits.append((start, end, rebuilt))
        return True

    def item_spans(self, node: yaml.SequenceNode) -> tuple[list[int], list[tuple[int, int]]]:
        """The dash of each item of a block list and the span of its text (up to the
        next item's), or None when an item does not begin its line."""
        dashes = [self.dash_of(item) for item in node.value]
        if None in dashes:
            return None
        column = self.column_of(dashes[0])
        starts = [self.entry_start(dash, column) for dash in dashes]
        if None in starts:
            return None
        end = self.line_end(self.content_end(node.value[-1]))
        return dashes, list(zip(starts, [*starts[1:], end], strict=True))

    def item_text(self, item: yaml.Node, dash: int, span: tuple[int, int], old: Any, new: Any):
        """The text of a list item's span, with the edits that make it `new`."""
        outer, self.edits = self.edits, []
        try:
            self.value(item, old, new, self._replacer(dash, item, self.column_of(dash), "-"))
            return self.render(*span, self.edits)
        finally:
            self.edits = outer

    def match(self, old: list, new: list) -> list[int | None]:
        """For each new item, the index of the old item it continues, or None: the
        one with the same `id`, else an equal one, else the one at its position."""
        found: list[int | None] = [None] * len(new)
        by_id = {_id(item): i for i, item in enumerate(old) if _id(item) is not None}
        used: set[int] = set()
        for j, value in enumerate(new):
            i = by_id.get(_id(value))
            if i is not None and i not in used:
                found[j] = i
                used.add(i)
        for j, value in enumerate(new):
            if found[j] is None:
                i = next((i for i, o in enumerate(old) if i not in used and same(o, value)), None)
                if i is not None:
                    found[j] = i
                    used.add(i)
        for j, value in enumerate(new):
            moved = _id(value) not in by_id and self.moves_here(value)
            free = found[j] is None and j < len(old) and j not in used and not moved
            if free and _shape(old[j]) is _shape(value) and _id(old[j]) not in self.new_ids:
                found[j] = j
                used.add(j)
        return found

    def moves_here(self, value: Any) -> bool:
        """Whether `value` is a step moved from another list: its id is on one item of
        the old document and one of the new."""
        return _id(value) in self.old_items and self.new_ids.get(_id(value)) == 1

    def steps_by_id(self) -> dict[str, tuple]:
        """The list items of the old document that are mappings with an id found once:
        id → (node, dash position, span, value), for steps moved between lists."""
        found: dict[str, tuple] = {}
        counts: dict[str, int] = {}
        stack: list[tuple[yaml.Node, Any]] = [(self.root, self.old)]
        while stack:
            node, value = stack.pop()
            if isinstance(node, yaml.MappingNode) and isinstance(value, dict):
                keys = _keys_of(node, value) or []
                stack += [(v, value[k]) for (_, v), k in zip(node.value, keys, strict=False)]
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(value, list)
                and len(node.value) == len(value)
            ):
                spans = None if node.flow_style else self.item_spans(node)
                for i, (item, item_value) in enumerate(zip(node.value, value, strict=True)):
                    step_id = _id(item_value)
                    if spans is not None and step_id is not None:
                        found[step_id] = (item, spans[0][i], spans[1][i], item_value)
                        counts[step_id] = counts.get(step_id, 0) + 1
                    stack.append((item, item_value))
        return {step_id: item for step_id, item in found.items() if counts[step_id] == 1}

    # -- positions --

    def content_end(self, node: yaml.Node) -> int:
        """Where the text of `node` ends: after its last character of content (a block
        scalar's trailing line breaks are left out, except those a `|+` keeps)."""
        while isinstance(node, yaml.CollectionNode) and not node.flow_style and node.value:
            last = node.value[-1]
            node = last[1] if isinstance(node, yaml.MappingNode) else last
        end = node.end_mark.index
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            header = self.text[node.start_mark.index : self.text.find("\n", node.start_mark.index)]
            if "+" not in header:
                body = self.text[node.start_mark.index : end].rstrip(" \n")
                end = node.start_mark.index + len(body)
                newline = self.text.find("\n", end)
                end = end if newline < 0 else min(newline, node.end_mark.index)
        return end

    def colon_after(self, key: yaml.Node) -> int:
        """The position of the `:` after a key (on the next line after `? key`)."""
        position = key.end_mark.index
        while self.text[position] in " \n":
            position += 1
        return position

    def line_end(self, index: int) -> int:
        """The start of the line after the one `index` is on (or the text's end)."""
        if index > 0 and self.text[index - 1] == "\n":
            return index
        newline = self.text.find("\n", index)
        return len(self.text) if newline < 0 else newline + 1

    def line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1

    def column_of(self, index: int) -> int:
        return index - self.line_start(index)

    def dash_of(self, item: yaml.Node) -> int | None:
        """The position of a block list item's `-`."""
        position = item.start_mark.index - 1
        while position >= 0 and self.text[position] in " \n":
            position -= 1
        return position if position >= 0 and self.text[position] == "-" else None

    def entry_start(self, index: int, column: int) -> int | None:
        """Where the text of the entry or item starting at `index` begins: its line,
        with the comment lines just above it at its column or less; None when it does
        not begin its line."""
        start = self.line_start(index)
        if self.text[start:index].strip() not in ("", "?"):  # `? key` is a key's line
            return None
        while start > 0:
            above = self.line_start(start - 1)
            line = self.text[above : start - 1]
            stripped = line.lstrip(" ")
            if not stripped.startswith("#") or len(line) - len(stripped) > column:
                break
            start = above
        return start


def _keys_of(node: yaml.MappingNode, old: dict) -> list[Any] | None:
    """The keys of `old` in the order the text writes them (`old` may be a document
    with the keys in another order, see `_Recent`), or None when they cannot be told
    from the key nodes' text."""
    by_text: dict[str, list[Any]] = {}
    for key in old:
        by_text.setdefault(str(key), []).append(key)
    keys = []
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            return None
        found = by_text.get(key_node.value, [])
        if len(found) != 1:
            return None
        keys.append(found[0])
    return keys if len(keys) == len(old) else None


def _styled(node: yaml.Node, new: Any) -> Any:
    """`new` with the style of the old string it replaces: a block stays a block,
    a quoted string stays quoted (a multi-line one becomes a literal block)."""
    if not isinstance(new, str) or not isinstance(node, yaml.ScalarNode) or not node.style:
        return new
    if node.style in ("'", '"') and "\n" in new:
        return _Literal(new)
    return _CLASS_OF[node.style](new)


def _indentless_lists(root: yaml.Node, text: str) -> bool:
    """Whether the text writes a list at its key's column (`steps:\\n- id: …`): the
    first block list under a key decides."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode) and not node.flow_style:
            for key, value in node.value:
                if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
                    return value.start_mark.column == key.start_mark.column
            stack += [value for _, value in reversed(node.value)]
    return False


def _ids(document: Any) -> dict[str, int]:
    """How many times each `id` occurs on list items of `document`."""
    counts: dict[str, int] = {}
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += value.values()
        elif isinstance(value, list):
            for item in value:
                if _id(item) is not None:
                    counts[_id(item)] = counts.get(_id(item), 0) + 1
            stack += value
    return counts


# -- the documents of a file -------------------------------------------------------------

_LINE = re.compile(r"[^\r\n\x85\u2028\u2029]*(?:\r\n|[\r\n\x85\u2028\u2029]|$)")
"""One line with its break, YAML's breaks (libyaml counts lines by these)."""
_NULLS = ("", "~", "null", "Null", "NULL")


def document_texts(text: str) -> list[str | None]:
    """Each non-empty document of `text` as its author wrote it, in the order (and
    number) of `parse.load_documents(text)`; `[None]` for a JSON text, which has no
    YAML to keep. The `---` marker starting a document is left out; comments before
    it belong to that document, and the directives (`%YAML`) of the stream are left
    out. Raises `yaml.YAMLError` for a text that is not YAML (load it first).

    Lines are found by the parser's events, never by searching for `---`, which may
    be inside a block scalar."""
    if text.lstrip().startswith("{"):
        return [None]
    lines = [line for line in _LINE.findall(text) if line]
    texts: list[str | None] = []
    begin = 0  # the first line not yet given to a document
    explicit = empty = False
    previous = None
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.DocumentStartEvent):
            explicit = event.explicit
        elif isinstance(previous, yaml.DocumentStartEvent):
            empty = (
                isinstance(event, yaml.ScalarEvent)
                and event.tag is None
                and event.implicit[0]
                and event.value in _NULLS
            )
        if isinstance(event, yaml.DocumentEndEvent):
            end = event.start_mark.line
            if not empty:
                texts.append(_document(lines[begin:end], explicit=explicit))
            begin = end + 1 if event.explicit else end
        previous = event
    return texts


def _document(lines: list[str], *, explicit: bool) -> str:
    """The lines of one document without its `---` (when `explicit`, the first line
    starting with it: only comments and directives come before) and directives."""
    if not explicit:
        return "".join(lines)
    marker = next(n for n, line in enumerate(lines) if line.startswith("---"))
    kept = [line for line in lines[:marker] if not line.startswith("%")]
    rest = lines[marker][3:].lstrip(" \t")
    kept += [rest] if rest.strip() else []
    return "".join(kept + lines[marker + 1 :])
