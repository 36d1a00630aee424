"""Loading and validating flow and template documents (SPEC §2).

A document is validated whole: `DefinitionError.problems` lists every problem, each at
the path of the faulty value, e.g. `steps[2].wait: invalid duration '2 days' (use 2d)`.
When several documents are validated together (`validate_documents`), each problem's
`loc` starts with the document's name and `": "`: `onboarding.yaml: steps[2].wait`
(just the name for a problem with the document as a whole).

YAML is read with YAML 1.2 scalars where YAML 1.1 surprises people: only `true` and
`false` are booleans (so `on: [mon]` is the key `on`, not `True`), and `10:30` is a
string (not the base-60 integer 630). Unquoted timestamps still become datetimes.

The limits of `limits.py` hold for every document that comes out of here: a text is
measured before it is parsed, and YAML anchors and aliases (which let a few hundred
bytes stand for gigabytes: "billion laughs") and nesting are refused while the text is
parsed, before a document is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from contextlib import suppress
from enum import StrEnum
from functools import partial
from typing import Any, NamedTuple

import yaml

from sluice.definitions.durations import parse_timezone
from sluice.definitions.limits import MAX_DEPTH, MAX_YAML_NODES, document_problem, text_problem
from sluice.definitions.model import (
    DateRule,
    EmailAction,
    EntryRule,
    ExitRule,
    FlowDefinition,
    HookMapping,
    OnResume,
    TemplateDefinition,
    Trigger,
)
from sluice.definitions.problems import (
    Checker,
    DefinitionError,
    Problem,
    UnreadableValue,
    read_guarded,
    read_keys,
)
from sluice.definitions.segments import SegmentDefinition, validate_segment
from sluice.definitions.steps import StepReader
from sluice.definitions.values import item_loc, to_jsonable
from sluice.records import (
    DATE,
    FIELD_CHANGED,
    SEGMENT_ENTERED,
    SEGMENT_LEFT,
    TAG_ADDED,
    WEBHOOK,
)

__all__ = [
    "DefinitionError",
    "DefinitionSyntaxError",
    "Problem",
    "load_documents",
    "validate_documents",
    "validate_flow",
    "validate_template",
]

_FLOW_OPTIONAL = (
    "kind",
    "name",
    "description",
    "entry",
    "cooldown",
    "exit",
    "timezone",
    "on_resume",
)


class DefinitionSyntaxError(DefinitionError):
    """A text that is not YAML or JSON at all (as opposed to one whose documents break
    a rule or a limit)."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader with YAML 1.2 booleans and integers (see the module docstring); the
    one built on libyaml where PyYAML has it, which parses several times faster."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A mapping, refused (`_DuplicateKey`) when a key comes twice: PyYAML would keep
        the last silently, and `trigger:` written twice loses the first."""
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            with suppress(TypeError):  # an unhashable key: PyYAML refuses it itself
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """The value of `node`; a scalar that YAML resolves but Python cannot build (a
        date that does not exist, a number of more than 4,300 digits) is refused with
        its position (`_Unreadable`)."""
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as err:
            raise _Unreadable(_value_message(err), node.start_mark) from None


class _Unreadable(yaml.constructor.ConstructorError):
    def __init__(self, problem: str, mark: yaml.Mark):
        super().__init__(problem=problem, problem_mark=mark)


class _DuplicateKey(yaml.constructor.ConstructorError):
    def __init__(self, key: Any, mark: yaml.Mark):
        super().__init__(problem=f"duplicate key {_json_spelling(key)}", problem_mark=mark)


def _json_spelling(key: Any) -> str:
    return json.dumps(key, default=str, ensure_ascii=False)


_BOOL, _INT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?[0-9][0-9_]*)$"),
    list("-+0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer as YAML 1.2 reads it: `010` is ten and `08` eight (PyYAML's 1.1
    constructor reads a leading 0 as octal, and fails on `08`)."""
    text = loader.construct_scalar(node).replace("_", "")
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    base = {"0b": 2, "0x": 16}.get(digits[:2])
    return sign * (int(digits[2:], base) if base else int(digits, 10))


_Loader.add_constructor(_INT, _construct_int)
# YAML 1.2 reads `1e400` as a number (1.1 wanted a dot): so it is refused as not finite
# instead of becoming the string "1e400" unnoticed.
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """`!!binary`, `!!set`, `!!omap` and `!!pairs` make values no definition holds
    (bytes, sets, lists of pairs): refused where they are written."""
    tag = node.tag.removeprefix("tag:yaml.org,2002:")
    raise _Unreadable(
        f"a !!{tag} value, which definitions cannot hold (text, numbers, true/false,"
        " dates, lists and mappings)",
        node.start_mark,
    )


for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def load_documents(text: str, name: str = "<input>") -> list[dict]:
    """The documents in `text`: YAML (several allowed, separated by `---`) or JSON.

    Empty documents are skipped. A syntax error, or a document that is not a mapping,
    raises `DefinitionError`; the problem's loc is `name` (`name#N` for the Nth
    document of several).
    """
    docs = _parse(text, name)
    problems = [
        Problem(f"{name}#{i + 1}" if len(docs) > 1 else name, "expected a mapping")
        for i, doc in enumerate(docs)
        if not isinstance(doc, dict)
    ]
    if problems:
        raise DefinitionError(problems)
    return docs


def _parse(text: str, name: str) -> list[Any]:
    too_large = text_problem(text)
    if too_large:
        raise DefinitionError([Problem(name, too_large)])
    if text.lstrip().startswith("{"):
        with suppress(json.JSONDecodeError):
            return [_checked_json(text, name)]
    try:
        _refuse_aliases_and_depth(text, name)
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except (_DuplicateKey, _Unreadable) as err:
        where = _position(err.problem_mark)
        raise DefinitionError([Problem(name, f"{err.problem} at {where}")]) from None
    except yaml.YAMLError as err:
        if getattr(err, "problem", None) == _LIBYAML_TOO_DEEP:
            where = _position(err.problem_mark)
            raise DefinitionError([Problem(name, _too_deep_message(where))]) from None
        raise DefinitionSyntaxError([Problem(name, _yaml_message(err))]) from err


# libyaml reads up to 1,024 characters ahead of the events it hands out, so it may
# meet its own limit (1,000 levels) before our count of events passes ours.
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"


def _too_deep_message(where: str) -> str:
    return f"YAML nested more than {MAX_DEPTH} levels deep at {where}"


def _value_message(err: ValueError) -> str:
    """Why a value cannot be read: a date that does not exist (`2026-02-30`), or a number
    of more than 4,300 digits (Python's limit on reading integers)."""
    if "integer string conversion" in str(err):
        return "a number has more than 4300 digits"
    return f"a value cannot be read: {err}"


def _checked_json(text: str, name: str) -> Any:
    document = load_json(text, name)
    found = document_problem(document)
    if found:
        loc, msg = found
        raise DefinitionError([Problem(f"{name}: {loc}" if name and loc else name or loc, msg)])
    return document


def load_json(text: str | bytes, name: str = "") -> Any:
    """The JSON in `text`, read with the standard library (so that integers stay exact
    and the limits see them: orjson turns one beyond 64 bits into a float unnoticed).

    `json.JSONDecodeError` when it is not JSON; `DefinitionError` at `name` when a key
    comes twice in one object, or the nesting is past what the parser recurses to (far
    past `MAX_DEPTH`, so that is the limit named). An integer of 30 digits or more
    is read as one past 64 bits (reading a huge one costs quadratic time), and
    `document_problem` then refuses it at its path, with `NaN` and `Infinity`."""
    try:
        return json.loads(
            text, object_pairs_hook=_unique_keys, parse_int=_integer, parse_constant=float
        )
    except RecursionError:  # the decoder recurses per level
        msg = f"nested more than {MAX_DEPTH} levels deep (at most {MAX_DEPTH})"
    except _DuplicateJsonKey as err:
        msg = f"duplicate key {_json_spelling(err.key)} in a JSON object"
    except ValueError as err:
        if isinstance(err, json.JSONDecodeError):
            raise
        msg = _value_message(err)
    raise DefinitionError([Problem(name, msg)])


class _DuplicateJsonKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) < len(pairs):
        seen: set[str] = set()
        raise _DuplicateJsonKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return mapping


def _integer(digits: str) -> int:
    return int(digits) if len(digits) < 30 else 2**64


def _refuse_aliases_and_depth(text: str, name: str) -> None:
    """Raise `DefinitionError` at the first anchor or alias, the first collection
    nested deeper than `MAX_DEPTH` or the value past `MAX_YAML_NODES`: one streaming
    pass over the parser's events (made in C), so a refusal comes as soon as the fault
    is read, and composing never recurses deeply nor builds more than the limit."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                where = _position(event.start_mark)
                msg = f"YAML text holds more than {MAX_YAML_NODES} values, keys included"
                raise DefinitionError([Problem(name, f"{msg} (passed at {where})")])
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            where = _position(event.start_mark)
            raise DefinitionError(
                [
                    Problem(
                        name,
                        f"YAML anchor or alias at {where}: anchors (&name) and aliases "
                        "(*name) are not accepted in definitions; write the value out",
                    )
                ]
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                where = _position(event.start_mark)
                raise DefinitionError([Problem(name, _too_deep_message(where))])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _position(mark: yaml.Mark) -> str:
    return f"{mark.line + 1}:{mark.column + 1}"


def _yaml_message(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f" at {_position(mark)}" if mark else ""
    return f"YAML syntax error{where}: {getattr(err, 'problem', None) or err}"


def validate_flow(
    doc: Any, *, known_flows: Collection[str] = (), known_templates: Collection[str] = ()
) -> FlowDefinition:
    """Validate a flow document. `start_flow` may name the flow itself or one of
    `known_flows`; `email.template` one of `known_templates`."""
    _refuse_oversized(doc)
    check = Checker()
    raw = check.mapping(doc, "", required=("key", "trigger", "steps"), optional=_FLOW_OPTIONAL)
    if raw is None:
        raise DefinitionError(check.problems)
    try:
        flow = _read_flow(check, raw, known_flows, known_templates)
    except UnreadableValue as error:
        check.add(error.loc, error.msg)
    check.raise_if_any()
    return flow


def _refuse_oversized(doc: Any) -> None:
    """The limits on size and nesting, checked before the document is read at all
    (documents from JSON request bodies have not been through `load_documents`)."""
    found = document_problem(doc)
    if found:
        raise DefinitionError([Problem(*found)])


def _read_flow(
    check: Checker, raw: dict, known_flows: Collection[str], known_templates: Collection[str]
) -> FlowDefinition:
    if "kind" in raw and raw["kind"] != "flow":
        check.add(
            "kind", f"unknown kind {raw['kind']!r} (use template, or leave it out for a flow)"
        )
    key = _optional(raw, "key", partial(check.slug, what="key"))
    reader = StepReader(
        check, flow_key=key, known_flows=known_flows, known_templates=known_templates
    )
    definition = FlowDefinition(
        key=key,
        name=_optional(raw, "name", check.string) or key,
        description=_optional(raw, "description", check.string),
        trigger=_optional(raw, "trigger", partial(_trigger, check, key)),
        entry=_optional(raw, "entry", partial(_enum, check, EntryRule), EntryRule.ONE_AT_A_TIME),
        cooldown=_optional(raw, "cooldown", check.duration),
        exit_rules=_optional(raw, "exit", partial(_exit_rules, check), ()),
        timezone=_optional(raw, "timezone", partial(_timezone, check)),
        on_resume=_optional(raw, "on_resume", partial(_enum, check, OnResume), OnResume.CATCH_UP),
        steps=_optional(raw, "steps", partial(reader.steps, path="steps", non_empty=True), ()),
        source=to_jsonable(raw),
    )
    if definition.timezone:  # saved as its canonical name (`europe/berlin`: `Europe/Berlin`)
        definition.source["timezone"] = definition.timezone
    return definition


def _optional(raw: dict, key: str, read: Callable[[Any, str], Any], default: Any = None) -> Any:
    """Read a top-level key (its loc is the key itself), or `default` when absent."""
    return read_guarded(read, raw[key], key) if key in raw else default


def _enum(check: Checker, enum_class: type[StrEnum], value: Any, loc: str) -> Any:
    choice = check.choice(value, loc, [member.value for member in enum_class])
    return enum_class(choice) if choice else None


_TRIGGER_KINDS = ("event", "tag_added", "field_changed", "segment", "date", "webhook")


def _trigger(check: Checker, flow_key: str | None, value: Any, loc: str) -> Trigger:
    """SPEC §2.1 and §7 Triggers: exactly one of `event`, `tag_added`, `field_changed`,
    `date`, `webhook`, and an optional `if`."""
    raw = check.mapping(value, loc, optional=(*_TRIGGER_KINDS, "if")) or {}
    named = [kind for kind in _TRIGGER_KINDS if kind in raw]
    if isinstance(value, dict) and not named:
        check.add(
            f"{loc}.event",
            "missing required key 'event' (or tag_added, field_changed, segment, date, webhook)",
        )
    elif len(named) > 1:
        check.add(loc, f"expected only one of {', '.join(named)}")
    readers = {
        "event": partial(_event_types, check),
        "tag_added": partial(_tag_added, check),
        "field_changed": partial(_field_changed, check),
        "segment": partial(_segment, check),
        "date": partial(_date, check, flow_key),
        "webhook": partial(_webhook, check, flow_key),
        "if": check.condition,
    }
    fields = read_keys(raw, loc, readers)
    kind = next((k for k in _TRIGGER_KINDS if fields.get(k)), "event")
    events, match, *rule = fields.get(kind, ((), ()))
    return Trigger(
        events=events,
        kind=kind,
        match=match,
        hook=rule[0] if kind == "webhook" and rule else None,
        date=rule[0] if kind == "date" and rule else None,
        condition=fields.get("condition"),
    )


_NO_MATCH: tuple[tuple[str, Any], ...] = ()


def _event_types(check: Checker, value: Any, loc: str) -> tuple[tuple[str, ...], tuple]:
    """One event type, or a non-empty list of them. `$tag_added` (`$field_changed`)
    names any tag added (any field changed)."""
    if isinstance(value, list):
        if not value:
            check.add(loc, "expected an event type or a non-empty list of event types")
        return check.strings(value, loc), _NO_MATCH
    event_type = check.string(value, loc)
    return ((event_type,) if event_type else ()), _NO_MATCH


def _tag_added(check: Checker, value: Any, loc: str) -> tuple[tuple[str, ...], tuple]:
    """`tag_added: NAME`, trimmed as tags are where they are added."""
    tag = check.string(value, loc)
    return ((TAG_ADDED,), (("tag", tag.strip()),)) if tag else ((), _NO_MATCH)


def _webhook(check: Checker, flow_key: str | None, value: Any, loc: str) -> tuple:
    """`webhook: {email, details?, idempotency_key?, secret_version?}`: templates over
    the hook's `body`.
    The hook is the flow's own (`POST /api/hooks/KEY`), so a body is read once."""
    optional = ("details", "idempotency_key", "secret_version")
    raw = check.mapping(value, loc, required=("email",), optional=optional) or {}
    readers = {
        "email": check.template,
        "details": partial(_hook_details, check),
        "idempotency_key": check.template,
        "secret_version": partial(check.integer, minimum=1),
    }
    mapping = read_keys(raw, loc, readers, required=("email",))
    if flow_key is None or mapping.get("email") is None:
        return (), _NO_MATCH
    return (WEBHOOK,), (("hook", flow_key),), HookMapping(**mapping)


def _date(check: Checker, flow_key: str | None, value: Any, loc: str) -> tuple:
    """`date: {field, offset?, at?, every?}`: the day a visitor's date field names, moved
    by `offset`, at `at` (default 09:00) in the visitor's zone; once, or each year.
    Its `$date` events name the flow (`details.flow`), so only this flow takes them."""
    if isinstance(value, str) and value.strip():
        check.add(loc, f"expected a mapping, e.g. {{field: {value.strip()}, every: year}}")
        return (), _NO_MATCH
    raw = check.mapping(value, loc, required=("field",), optional=("offset", "at", "every")) or {}
    readers = {
        "field": check.string,
        "offset": partial(check.duration, signed=True),
        "at": check.time_of_day,
        "every": partial(_every, check),
    }
    rule = read_keys(raw, loc, readers, required=("field",))
    if flow_key is None or None in rule.values():
        return (), _NO_MATCH
    return (DATE,), (("flow", flow_key),), DateRule(**rule)


def _every(check: Checker, value: Any, loc: str) -> str | None:
    if value != "year":
        check.add(
            loc,
            f"invalid value {value!r} (use year: a date comes again each year; "
            "leave every out for once)",
        )
        return None
    return value


def _hook_details(check: Checker, value: Any, loc: str):
    """The event's details, as a mapping of templated values (not `hook`: that is the
    flow's key)."""
    if not isinstance(value, dict):
        check.add(loc, "expected a mapping")
        return None
    if "hook" in value:
        check.add(f"{loc}.hook", "'hook' is the flow's key; give this detail another name")
        return None
    return check.templated(value, loc)


def _field_changed(check: Checker, value: Any, loc: str) -> tuple[tuple[str, ...], tuple]:
    """`field_changed: NAME`, or `{field: NAME, to: VALUE}` for a change to one value."""
    if not isinstance(value, dict):
        name = check.string(value, loc)
        return ((FIELD_CHANGED,), (("field", name),)) if name else ((), _NO_MATCH)
    raw = check.mapping(value, loc, required=("field",), optional=("to",)) or {}
    name = check.string(raw["field"], f"{loc}.field") if "field" in raw else None
    if name is None:
        return (), _NO_MATCH
    match = (("field", name),)
    if "to" in raw:
        match += (("to", to_jsonable(raw["to"])),)
    return (FIELD_CHANGED,), match


def _segment(check: Checker, value: Any, loc: str) -> tuple[tuple[str, ...], tuple]:
    """`segment: KEY` (on entering it), or `{key: KEY, on: entered | left}`."""
    raw = value if isinstance(value, dict) else {"key": value}
    check.mapping(raw, loc, required=("key",), optional=("on",))
    key = (
        check.slug(raw["key"], f"{loc}.key" if isinstance(value, dict) else loc, what="key")
        if "key" in raw
        else None
    )
    on = check.choice(raw["on"], f"{loc}.on", ("entered", "left")) if "on" in raw else "entered"
    if key is None or on is None:
        return (), _NO_MATCH
    return ((SEGMENT_ENTERED if on == "entered" else SEGMENT_LEFT),), (("segment", key),)


def _exit_rules(check: Checker, value: Any, loc: str) -> tuple[ExitRule, ...]:
    rules = []
    readers = {"event": check.string, "if": check.condition}
    for i, item in enumerate(check.sequence(value, loc) or []):
        rule_loc = item_loc(loc, i)
        raw = check.mapping(item, rule_loc, required=("event",), optional=("if",)) or {}
        rules.append(ExitRule(**read_keys(raw, rule_loc, readers, required=("event",))))
    return tuple(rules)


def _timezone(check: Checker, value: Any, loc: str) -> str | None:
    name = check.string(value, loc)
    if name is None:
        return None
    try:
        return parse_timezone(name).key  # the canonical spelling of `europe/berlin`
    except ValueError as err:
        check.add(loc, str(err))
        return None


EMAIL_LOC = "steps[0]"
"""Where `validate_email` places the email: the one step of a flow."""


def validate_email(email: Any, *, known_templates: Collection[str] = ()) -> EmailAction:
    """An email step's value (SPEC §2.2) validated as the engine's steps are: as the
    one step of a flow (problems are located under `EMAIL_LOC`). Raises DefinitionError."""
    document = {
        "key": "email",
        "trigger": {"event": "$email"},
        "steps": [{"id": "email", "email": email}],
    }
    flow = validate_flow(document, known_templates=known_templates)
    return flow.steps[0].action


def validate_template(doc: Any) -> TemplateDefinition:
    """Validate an email template document (SPEC §2.8): `key`, `subject`, and `html`
    or `text` (or both); `kind: template` may be given."""
    _refuse_oversized(doc)
    check = Checker()
    raw = check.mapping(doc, "", required=("key", "subject"), optional=("kind", "html", "text"))
    if raw is None:
        raise DefinitionError(check.problems)
    if "kind" in raw and raw["kind"] != "template":
        check.add("kind", f"expected 'template', found {raw['kind']!r}")
    if "html" not in raw and "text" not in raw:
        check.add("", "expected 'html' or 'text'")
    try:
        template = _read_template(check, raw)
    except UnreadableValue as error:
        check.add(error.loc, error.msg)
    check.raise_if_any()
    return template


def _read_template(check: Checker, raw: dict) -> TemplateDefinition:
    return TemplateDefinition(
        key=_optional(raw, "key", partial(check.slug, what="key")),
        subject=_optional(raw, "subject", check.template),
        html=_optional(raw, "html", partial(check.template, html=True)),
        text=_optional(raw, "text", check.template),
        source=to_jsonable(raw),
    )


class Documents(NamedTuple):
    """Validated documents by kind."""

    flows: list[FlowDefinition]
    templates: list[TemplateDefinition]
    segments: list[SegmentDefinition]


def validate_documents(
    docs: list[tuple[str, Any]],
    *,
    known_flows: Collection[str] = (),
    known_templates: Collection[str] = (),
    known_segments: Collection[str] | None = None,
) -> Documents:
    """Validate `(name, document)` pairs together: documents with `kind: template` are
    templates, with `kind: segment` segments, the others flows. References resolve
    against the documents given plus the known keys (what is stored); a key given twice
    for the same kind is a problem. A `segment` trigger must name a segment given or
    known (unless `known_segments` is None: not checked).

    Raises `DefinitionError` with the problems of every document, each loc prefixed
    with the document's name when there are several (see the module docstring).
    """
    kinds = [_kind(doc) for _, doc in docs]
    template_keys = {*known_templates, *_keys(docs, kinds, "template")}
    flow_keys = {*known_flows, *_keys(docs, kinds, "flow")}
    segment_keys = None
    if known_segments is not None:
        segment_keys = {*known_segments, *_keys(docs, kinds, "segment")}
    duplicates = _duplicates(docs, kinds)
    found = Documents([], [], [])
    problems = []
    for i, ((name, doc), kind) in enumerate(zip(docs, kinds, strict=True)):
        mine = list(duplicates.get(i, []))
        try:
            if kind == "template":
                found.templates.append(validate_template(doc))
            elif kind == "segment":
                _refuse_oversized(doc)
                found.segments.append(validate_segment(doc))
            else:
                flow = validate_flow(doc, known_flows=flow_keys, known_templates=template_keys)
                mine += _unknown_segment(flow, segment_keys)
                found.flows.append(flow)
        except DefinitionError as err:
            mine += err.problems
        problems += [_prefixed(name, p) for p in mine] if len(docs) > 1 else mine
    if problems:
        raise DefinitionError(problems)
    return found


def _unknown_segment(flow: FlowDefinition, known: set[str] | None) -> list[Problem]:
    """A `segment` trigger naming no segment there is (a typo would never start)."""
    trigger = flow.trigger
    if known is None or trigger.kind != "segment":
        return []
    key = dict(trigger.match)["segment"]
    if key in known:
        return []
    hint = f" (segments: {', '.join(sorted(known))})" if known else " (there are none yet)"
    return [Problem("trigger.segment", f"no segment '{key}'{hint}")]


def _kind(doc: Any) -> str:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return kind if kind in ("template", "segment") else "flow"


def _keys(docs: list[tuple[str, Any]], kinds: list[str], kind: str) -> list[str]:
    return [
        doc["key"]
        for (_, doc), found in zip(docs, kinds, strict=True)
        if found == kind and isinstance(doc, dict) and isinstance(doc.get("key"), str)
    ]


def _duplicates(docs: list[tuple[str, Any]], kinds: list[str]) -> dict[int, list[Problem]]:
    """Problems, by document index, of documents whose key an earlier document of the
    same kind has."""
    seen: dict[tuple[str, str], str] = {}
    problems: dict[int, list[Problem]] = {}
    for i, ((name, doc), kind) in enumerate(zip(docs, kinds, strict=True)):
        key = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(key, str):
            continue
        if (kind, key) in seen:
            msg = f"duplicate {kind} key '{key}' (also in {seen[kind, key]})"
            problems[i] = [Problem("key", msg)]
        else:
            seen[kind, key] = name
    return problems


def _prefixed(name: str, problem: Problem) -> Problem:
    return Problem(f"{name}: {problem.loc}" if problem.loc else name, problem.msg)
