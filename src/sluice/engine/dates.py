"""When a `date` trigger fires for a visitor (SPEC §7 Triggers, docs/definitions.md
"Triggers on a date"): decided from the visitor's field, the trigger's rule and the
visitor's zone, without the database or the clock.

- The **day** is the calendar date the field's text names: `2027-03-14`, or the date
  part of an ISO 8601 time as written (`2027-03-14T00:00:00Z` is 14 March wherever the
  visitor is: birthdays are often stored as midnight UTC). Anything else is no day.
- An **occurrence** is that day at `at` on the wall clock of the visitor's zone, moved
  by `offset` on that wall clock (`-7d` at 10:00 is 10:00 a week before, across a DST
  change), then read as an instant as a time-of-day wait reads one: a time the clocks
  skip is the instant it would have had before the jump, a time they repeat the first.
- Once (no `every`), the day is the only occurrence. `every: year`, the day and its
  anniversaries after it: the same month and day each year, 29 February on 28 February
  in the years that have none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sluice.definitions.model import DateRule

_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ].+)?")


@dataclass(frozen=True)
class Occurrence:
    """One time a date trigger fires: `day` the date it is for (the field's day, or its
    anniversary that year) and `at` the instant, in UTC."""

    day: date
    at: datetime


def field_day(value: Any) -> date | None:
    """The calendar date a field's value names, or None when it names none."""
    if not isinstance(value, str):
        return None
    found = _DAY.fullmatch(value.strip())
    if found is None:
        return None
    try:
        if found.group(0) != found.group(1):
            datetime.fromisoformat(found.group(0))  # the time must be one too
        return date.fromisoformat(found.group(1))
    except ValueError:
        return None


def next_occurrence(
    rule: DateRule, value: Any, zone: ZoneInfo, after: datetime
) -> Occurrence | None:
    """The first occurrence at or after `after`; None when the field names no day, or
    its only occurrence (once) is in the past."""
    day = field_day(value)
    if day is None:
        return None
    if rule.every is None:
        found = _occurrence(rule, day, zone)
        return found if found is not None and found.at >= after else None
    start = max(day.year, _wall_year(after, rule, zone) - 1)
    for year in range(start, start + 4):
        found = _occurrence(rule, _anniversary(day, year), zone)
        if found is not None and found.at >= after:
            return found
    return None  # past the calendar's end


def due_occurrence(rule: DateRule, value: Any, zone: ZoneInfo, now: datetime) -> Occurrence | None:
    """The latest occurrence at or before `now`: the one a due check fired for. None
    when the field names no day, or none of its occurrences has come yet."""
    day = field_day(value)
    if day is None:
        return None
    if rule.every is None:
        found = _occurrence(rule, day, zone)
        return found if found is not None and found.at <= now else None
    start = _wall_year(now, rule, zone) + 1
    for year in range(start, max(day.year, start - 4) - 1, -1):
        found = _occurrence(rule, _anniversary(day, year), zone)
        if found is not None and found.at <= now:
            return found
    return None


def _occurrence(rule: DateRule, day: date | None, zone: ZoneInfo) -> Occurrence | None:
    if day is None:
        return None
    try:
        wall = datetime.combine(day, rule.at) + rule.offset
        return Occurrence(day, wall.replace(tzinfo=zone).astimezone(UTC))
    except (OverflowError, ValueError):  # a day near the calendar's ends (year 1 or 9999)
        return None


def _anniversary(day: date, year: int) -> date | None:
    """`day`'s month and day in `year`; 29 February is 28 February in a common year.
    None past the calendar's ends."""
    if not MINYEAR <= year <= MAXYEAR:
        return None
    if day.month == 2 and day.day == 29 and not _leap(year):
        return date(year, 2, 28)
    return day.replace(year=year)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _wall_year(instant: datetime, rule: DateRule, zone: ZoneInfo) -> int:
    """The year of the day whose occurrence falls near `instant` (its wall time less the
    offset); a year at the calendar's ends when that is past them."""
    wall = instant.astimezone(zone).replace(tzinfo=None)
    try:
        return (wall - rule.offset).year
    except OverflowError:
        return MAXYEAR if rule.offset < timedelta(0) else MINYEAR
