"""Segment documents (SPEC §7, docs/segments.md): `kind: segment`, a `key`, a `name` and
`rules` over a visitor, read into `SegmentDefinition` whose rules are compiled once.

```yaml
kind: segment
key: repeat_buyers
name: Repeat buyers
match: all                 # all (default) or any of the rules
rules:
  - tag: customer                    # has the tag (`has: false`: has not)
  - field: plan
    equals: pro                      # not_equals, one_of, greater_than, less_than,
                                     # at_least, at_most, contains, exists,
                                     # before, after, within, within_next
  - subscribed: true
  - event: $purchase                 # events of the type, counted
    at_least: 2                      # at_most, exactly (default at_least: 1)
    within: 30d                      # in the last 30 days (default: ever)
    where: "event.details.amount > 10"
  - any:                             # all, any, none: nested groups
      - tag: vip
      - field: lifetime_value
        at_least: 1000
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sluice.definitions.limits import LATEST_INSTANT
from sluice.definitions.liquid import Condition
from sluice.definitions.problems import Checker, DefinitionError, UnreadableValue
from sluice.definitions.values import item_loc, key_loc, to_jsonable

MAX_RULES = 100
"""Rules in one segment, counting those in groups; a bound on the work per visitor."""
MAX_DEPTH = 5
"""Groups within groups."""

GROUPS = ("all", "any", "none")
FIELD_TESTS = (
    "equals",
    "not_equals",
    "one_of",
    "greater_than",
    "less_than",
    "at_least",
    "at_most",
    "contains",
    "exists",
    "before",
    "after",
    "within",
    "within_next",
)
COUNT_TESTS = ("at_least", "at_most", "exactly")


@dataclass(frozen=True)
class TagRule:
    tag: str
    has: bool = True


@dataclass(frozen=True)
class SubscribedRule:
    subscribed: bool


@dataclass(frozen=True)
class FieldRule:
    """A test of one field: `test` is one of FIELD_TESTS, `value` its operand (an
    instant or a signed offset from now for dates, a duration for `within*`)."""

    field: str
    test: str
    value: Any


@dataclass(frozen=True)
class EventRule:
    """How many of the visitor's events of `type` (those `where` holds for, in the
    last `within` when given) compared by `test` (COUNT_TESTS) with `count`."""

    type: str
    test: str
    count: int
    within: timedelta | None = None
    where: Condition | None = None


@dataclass(frozen=True)
class Group:
    match: str  # all, any, none
    rules: tuple[Rule, ...]


Rule = TagRule | SubscribedRule | FieldRule | EventRule | Group


@dataclass(frozen=True)
class SegmentDefinition:
    key: str
    name: str
    rules: Group
    source: dict[str, Any]
    description: str | None = None

    @property
    def event_rules(self) -> tuple[EventRule, ...]:
        return tuple(_event_rules(self.rules))

    @property
    def event_types(self) -> frozenset[str]:
        """The event types whose arrival can move a visitor in or out."""
        return frozenset(r.type for r in self.event_rules)

    @property
    def tag_names(self) -> frozenset[str]:
        """The tags its rules test."""
        return frozenset(r.tag for r in _leaves(self.rules) if isinstance(r, TagRule))

    @property
    def reads_data(self) -> bool:
        """Whether a change of tags, fields or subscription can move a visitor — or
        their arrival: a rule on data, a `where` that reads the visitor, or a count
        that holds at zero (`at_most`, `exactly: 0`, or any count under `none`), which
        a visitor without events meets."""
        return _reads_data(self.rules, negated=False)


def _leaves(rule: Rule):
    if isinstance(rule, Group):
        for inner in rule.rules:
            yield from _leaves(inner)
    else:
        yield rule


def _event_rules(rule: Rule):
    return (r for r in _leaves(rule) if isinstance(r, EventRule))


def _reads_data(rule: Rule, negated: bool) -> bool:
    if isinstance(rule, Group):
        inner = negated or rule.match == "none"
        return any(_reads_data(r, inner) for r in rule.rules)
    if not isinstance(rule, EventRule):
        return True
    holds_at_zero = rule.test == "at_most" or (rule.test == "exactly" and rule.count == 0)
    reads_visitor = rule.where is not None and "visitor" in rule.where.source
    return negated or holds_at_zero or rule.count == 0 or reads_visitor


# -- reading -------------------------------------------------------------------------------


def validate_segment(doc: Any) -> SegmentDefinition:
    """Read a segment document; raises `DefinitionError` with every problem."""
    check = Checker()
    raw = check.mapping(
        doc,
        "",
        required=("kind", "key", "name", "rules"),
        optional=("description", "match"),
    )
    if raw is None:
        raise DefinitionError(check.problems)
    if raw.get("kind") != "segment":
        check.add("kind", f"expected 'segment', found {raw.get('kind')!r}")
    key = check.slug(raw["key"], "key", what="key") if "key" in raw else None
    name = check.string(raw["name"], "name") if "name" in raw else None
    if name is not None and len(name) > 200:
        check.add("name", "expected at most 200 characters")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        check.add("description", "expected a string")
    match = "all"
    if "match" in raw:
        match = check.choice(raw["match"], "match", ("all", "any")) or "all"
    reader = _Reader(check)
    rules: tuple[Rule, ...] = ()
    if "rules" in raw:
        items = check.sequence(raw["rules"], "rules", non_empty=True) or []
        rules = reader.rules(items, "rules", depth=1)
    check.raise_if_any()
    return SegmentDefinition(
        key=key,
        name=name,
        rules=Group(match, rules),
        source=to_jsonable(raw),
        description=description,
    )


class _Reader:
    def __init__(self, check: Checker):
        self.check = check
        self.count = 0

    def rules(self, items: list, loc: str, depth: int) -> tuple[Rule, ...]:
        found = []
        for i, item in enumerate(items):
            rule = self.rule(item, item_loc(loc, i), depth)
            if rule is not None:
                found.append(rule)
        return tuple(found)

    def rule(self, value: Any, loc: str, depth: int) -> Rule | None:
        check = self.check
        self.count += 1
        if self.count == MAX_RULES + 1:
            check.add(loc, f"too many rules: a segment has at most {MAX_RULES}")
        if not isinstance(value, dict):
            check.add(
                loc,
                "expected a rule: a mapping with tag, field, subscribed, event, all, any or none",
            )
            return None
        kinds = [k for k in ("tag", "field", "subscribed", "event", *GROUPS) if k in value]
        if not kinds:
            check.add(loc, "expected one of tag, field, subscribed, event, all, any, none")
            return None
        if len(kinds) > 1:
            check.add(loc, f"expected only one of {', '.join(kinds)} in a rule")
            return None
        kind = kinds[0]
        try:
            if kind in GROUPS:
                return self.group(kind, value, loc, depth)
            return getattr(self, kind)(value, loc)
        except UnreadableValue as error:
            check.add(error.loc, error.msg)
            return None

    def group(self, kind: str, value: dict, loc: str, depth: int) -> Group | None:
        self.check.mapping(value, loc, required=(kind,))
        if depth >= MAX_DEPTH:
            self.check.add(key_loc(loc, kind), f"groups nest at most {MAX_DEPTH} deep")
            return None
        items = self.check.sequence(value[kind], key_loc(loc, kind), non_empty=True) or []
        return Group(kind, self.rules(items, key_loc(loc, kind), depth + 1))

    def tag(self, value: dict, loc: str) -> TagRule | None:
        self.check.mapping(value, loc, required=("tag",), optional=("has",))
        tag = self.check.string(value["tag"], key_loc(loc, "tag"))
        has = True
        if "has" in value:
            has = self.check.boolean(value["has"], key_loc(loc, "has"))
        return TagRule(tag.strip(), has) if tag and has is not None else None

    def subscribed(self, value: dict, loc: str) -> SubscribedRule | None:
        self.check.mapping(value, loc, required=("subscribed",))
        flag = self.check.boolean(value["subscribed"], key_loc(loc, "subscribed"))
        return None if flag is None else SubscribedRule(flag)

    def field(self, value: dict, loc: str) -> FieldRule | None:
        check = self.check
        check.mapping(value, loc, required=("field",), optional=FIELD_TESTS)
        name = check.string(value["field"], key_loc(loc, "field"))
        tests = [t for t in FIELD_TESTS if t in value]
        if len(tests) != 1:
            check.add(loc, f"expected one test of the field: {', '.join(FIELD_TESTS)}")
            return None
        test = tests[0]
        operand = self.operand(test, value[test], key_loc(loc, test))
        return None if name is None or operand is _BAD else FieldRule(name, test, operand)

    def operand(self, test: str, value: Any, loc: str) -> Any:
        check = self.check
        match test:
            case "exists":
                flag = check.boolean(value, loc)
                return _BAD if flag is None else flag
            case "one_of":
                items = check.sequence(value, loc, non_empty=True)
                return _BAD if items is None else tuple(to_jsonable(items))
            case "greater_than" | "less_than" | "at_least" | "at_most":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    check.add(loc, "expected a number")
                    return _BAD
                if not math.isfinite(value):
                    check.add(loc, "expected a finite number")
                    return _BAD
                return value
            case "before" | "after":
                return self.moment(value, loc)
            case "within" | "within_next":
                delta = check.duration(value, loc)
                return _BAD if delta is None else delta
            case _:  # equals, not_equals, contains
                if value is None or isinstance(value, dict | list):
                    check.add(loc, "expected a string, number or boolean")
                    return _BAD
                return to_jsonable(value)

    def moment(self, value: Any, loc: str) -> datetime | timedelta | object:
        """An instant (a date is its midnight UTC), `now`, or an offset from now with
        its sign (`-30d`: 30 days ago; `+7d`: in 7 days)."""
        if isinstance(value, str) and value.strip() == "now":
            return timedelta(0)
        if isinstance(value, str) and value.strip()[:1] in "+-":
            delta = self.check.duration(value.strip(), loc, signed=True)
            return _BAD if delta is None else delta
        found = as_instant(value)
        if found is None:
            self.check.add(
                loc,
                "expected a date (2026-03-01), a time with an offset, now, "
                "or an offset from now such as -30d or +7d",
            )
            return _BAD
        return found

    def event(self, value: dict, loc: str) -> EventRule | None:
        check = self.check
        check.mapping(value, loc, required=("event",), optional=(*COUNT_TESTS, "within", "where"))
        event_type = check.string(value["event"], key_loc(loc, "event"))
        if event_type and event_type.startswith("$segment_"):
            check.add(key_loc(loc, "event"), "segments cannot count entries of segments")
            event_type = None
        tests = [t for t in COUNT_TESTS if t in value]
        if len(tests) > 1:
            check.add(loc, f"expected one of {', '.join(tests)}")
            return None
        test = tests[0] if tests else "at_least"
        count = 1
        if tests:
            count = check.integer(value[test], key_loc(loc, test), minimum=0)
        within = None
        if "within" in value:
            within = check.duration(value["within"], key_loc(loc, "within"))
        where = None
        if "where" in value:
            where = check.condition(value["where"], key_loc(loc, "where"))
        if event_type is None or count is None:
            return None
        return EventRule(event_type, test, count, within, where)


_BAD = object()


EARLIEST_FIELD_DATE = datetime(1000, 1, 1, tzinfo=UTC)
"""Field dates are held within these bounds (`9999-12-31`, a common "never expires",
is read as the latest): any offset a rule adds (`limits.MAX_DURATION`) stays a date,
and every instant derived from them can be stored."""
LATEST_FIELD_DATE = LATEST_INSTANT


def as_instant(value: Any) -> datetime | None:
    """A field's value as an instant: an ISO date (its midnight UTC) or time (UTC when
    it has no offset), held within the field-date bounds; None for anything else."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00: after the calendar's end in UTC
        return LATEST_FIELD_DATE
    return min(max(parsed, EARLIEST_FIELD_DATE), LATEST_FIELD_DATE)
