"""A segment's rules in words, for its page: a short sentence per rule (`has tag vip`,
`field plan equals "pro"`, `2 or more $purchase in the last 30 days where
event.details.amount >= 10`), and a group as its heading (`any of:`) over its own
rules. Read from the compiled definition (definitions/segments.py), so the words say
what the engine decides, not how the YAML happened to be written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sluice.definitions.segments import (
    EventRule,
    FieldRule,
    Group,
    Rule,
    SubscribedRule,
    TagRule,
)


@dataclass(frozen=True)
class Said:
    """A rule in words; for a group, `text` is its heading and `rules` its rules."""

    text: str
    rules: tuple[Said, ...] = ()


def say(rule: Rule) -> Said:
    match rule:
        case Group(match=match, rules=rules):
            return Said(f"{match} of:", tuple(say(r) for r in rules))
        case TagRule(tag=tag, has=has):
            return Said(f"has tag {tag}" if has else f"does not have tag {tag}")
        case SubscribedRule(subscribed=subscribed):
            return Said("is subscribed" if subscribed else "is unsubscribed")
        case FieldRule():
            return Said(f"field {rule.field} {_field_test(rule.test, rule.value)}")
        case EventRule():
            return Said(_events(rule))
    raise TypeError(f"not a segment rule: {rule!r}")


_FIELD_WORDS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "greater_than": "is greater than",
    "less_than": "is less than",
    "at_least": "is at least",
    "at_most": "is at most",
}


def _field_test(test: str, value: Any) -> str:
    match test:
        case "exists":
            return "is set" if value else "is not set"
        case "one_of":
            return "is one of " + ", ".join(_value(v) for v in value)
        case "before" | "after":
            return f"is {test} {_moment(value)}"
        case "within":
            return f"is within the last {_span(value)}"
        case "within_next":
            return f"is within the next {_span(value)}"
    return f"{_FIELD_WORDS[test]} {_value(value)}"


def _events(rule: EventRule) -> str:
    if rule.test == "at_least":
        count = f"{rule.count} or more"
    elif rule.count == 0:  # at most 0 and exactly 0 are the same: none
        count = "no"
    else:
        count = f"{'at most' if rule.test == 'at_most' else 'exactly'} {rule.count}"
    text = f"{count} {rule.type}"
    if rule.within is not None:
        text += f" in the last {_span(rule.within)}"
    if rule.where is not None:
        text += f" where {rule.where.source}"
    return text


def _value(value: Any) -> str:
    """A field's operand as JSON: text quoted, numbers and true/false bare."""
    return json.dumps(value, ensure_ascii=False)


def _moment(value: datetime | timedelta) -> str:
    """An instant (a date alone when it is midnight UTC), or an offset from now."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        if value.time() == time(0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if not value:
        return "now"
    return f"{_span(-value)} ago" if value < timedelta(0) else f"{_span(value)} from now"


_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def _span(delta: timedelta) -> str:
    """A duration in words, largest unit first: `30 days`, `1 day 6 hours`."""
    seconds = int(delta.total_seconds())
    parts = []
    for name, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"
