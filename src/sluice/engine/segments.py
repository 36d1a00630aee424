"""Whether a visitor is in a segment, decided without the database, and when the
answer can next change by time alone (a window passing, a date coming), so that the
store can look again then (store/segments.py, store/due.py).

The store gives each visitor's data (`visitor_view`) and their events of the types
the segment counts, as far back as its longest window (all of them for a rule
without one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sluice.definitions.model import same_json
from sluice.definitions.segments import (
    EventRule,
    FieldRule,
    Group,
    Rule,
    SegmentDefinition,
    SubscribedRule,
    TagRule,
    as_instant,
)
from sluice.engine.context import template_context


@dataclass(frozen=True, slots=True)
class CountedEvent:
    """An event as segment rules count it."""

    type: str
    date: datetime
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    member: bool
    recheck_at: datetime | None
    """The next time after now at which the answer may change with no other change."""


def evaluate(
    segment: SegmentDefinition,
    visitor: dict[str, Any],
    events: Sequence[CountedEvent],
    now: datetime,
) -> Verdict:
    """Whether `visitor` (a `visitor_view`) with `events` (theirs, of the segment's
    event types, any order) is in `segment` at `now`."""
    times: list[datetime] = []
    member = _holds(segment.rules, visitor, events, now, times)
    later = [t for t in times if t > now]
    return Verdict(member, min(later) if later else None)


def _holds(rule: Rule, visitor, events, now: datetime, times: list[datetime]) -> bool:
    match rule:
        case Group(match="all", rules=rules):
            # Every rule is evaluated (no short cut), so that each one's times are known.
            return all([_holds(r, visitor, events, now, times) for r in rules])
        case Group(match="any", rules=rules):
            return any([_holds(r, visitor, events, now, times) for r in rules])
        case Group(rules=rules):  # none
            return not any([_holds(r, visitor, events, now, times) for r in rules])
        case TagRule(tag=tag, has=has):
            return (tag in visitor["tags"]) is has
        case SubscribedRule(subscribed=subscribed):
            return visitor["subscribed"] is subscribed
        case FieldRule():
            return _field(rule, visitor["fields"], now, times)
        case EventRule():
            return _count(rule, visitor, events, now, times)
    raise TypeError(f"not a segment rule: {rule!r}")


def _field(rule: FieldRule, fields: dict[str, Any], now: datetime, times: list) -> bool:
    present = rule.field in fields and fields[rule.field] is not None
    value = fields.get(rule.field)
    match rule.test:
        case "exists":
            return present is rule.value
        case "equals":
            return present and same_json(value, rule.value)
        case "not_equals":
            return not (present and same_json(value, rule.value))
        case "one_of":
            return present and any(same_json(value, option) for option in rule.value)
        case "contains":
            if isinstance(value, list):
                return any(same_json(item, rule.value) for item in value)
            return isinstance(value, str) and str(rule.value) in value
        case "greater_than" | "less_than" | "at_least" | "at_most":
            number = _number(value)
            return number is not None and _compare(rule.test, number, rule.value)
    instant = as_instant(value) if present else None
    if instant is None:
        return False
    match rule.test:
        case "before" | "after":
            if isinstance(rule.value, timedelta):
                # Compared with a moving now, it flips when now + offset passes the
                # instant: `after` at that instant, `before` just after it.
                flip = instant - rule.value
                times.append(flip if rule.test == "after" else flip + _TICK)
                bound = now + rule.value
            else:
                bound = rule.value
            return instant < bound if rule.test == "before" else instant > bound
        case "within":  # in the last `value`: from the instant for `value`
            times.extend((instant, instant + rule.value))
            return instant <= now < instant + rule.value
        case _:  # within_next: in the `value` before the instant
            times.extend((instant - rule.value, instant))
            return instant - rule.value <= now < instant
    return False


_TICK = timedelta(microseconds=1)
"""The smallest step of stored instants."""


_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
"""A number as JSON spells it: no `inf`, `1_000` or other digits than 0–9."""


def _number(value: Any) -> float | None:
    """A field's value as a number: numbers, and strings that spell one as JSON does
    ("42", "-1.5")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _compare(test: str, found: float, wanted: float) -> bool:
    match test:
        case "greater_than":
            return found > wanted
        case "less_than":
            return found < wanted
        case "at_least":
            return found >= wanted
        case _:
            return found <= wanted


def _count(rule: EventRule, visitor, events, now: datetime, times: list) -> bool:
    counted = []
    for event in events:
        if event.type != rule.type:
            continue
        if event.date > now:  # dated in the future by its sender: it counts from then
            times.append(event.date)
            continue
        if rule.within is not None and event.date <= now - rule.within:
            continue  # windows are half-open: an event leaves it `within` after it
        if rule.where is not None and not _where(rule, visitor, event, now):
            continue
        counted.append(event)
    n = len(counted)
    if rule.within is not None and counted:
        flip = _count_flip(rule, sorted(e.date for e in counted))
        if flip is not None:
            times.append(flip + rule.within)
    if rule.test == "at_least":
        return n >= rule.count
    if rule.test == "at_most":
        return n <= rule.count
    return n == rule.count


def _count_flip(rule: EventRule, dates: list[datetime]) -> datetime | None:
    """The date of the counted event whose leaving the window changes the rule's
    answer (events only leave it as time passes, oldest first), or None when none
    does: a rule that does not hold while too few are counted holds no sooner."""
    # `dates` oldest first: once `dates[i]` leaves, n - i - 1 are counted.
    n, wanted = len(dates), rule.count
    if rule.test == "at_least":
        leaving = n - wanted  # down to wanted - 1: false
    elif rule.test == "at_most":
        leaving = n - wanted - 1  # down to wanted: true
    else:  # exactly: down to wanted from above (true), or below it (false)
        leaving = n - wanted - 1 if n > wanted else (0 if n == wanted else -1)
    return dates[leaving] if 0 <= leaving < n else None


def _where(rule: EventRule, visitor, event: CountedEvent, now: datetime) -> bool:
    view = {"type": event.type, "details": event.details, "date": event.date.isoformat()}
    context = template_context(visitor=visitor, origin=view, now=now)
    return bool(rule.where.evaluate(context).value)
