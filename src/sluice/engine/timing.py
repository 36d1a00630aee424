"""When a `wait` step ends: durations, absolute times, times of day in the visitor's
zone (DST-aware), and dates read from a visitor's field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from sluice.definitions.durations import parse_instant, parse_timezone
from sluice.definitions.model import WaitAction


@dataclass(frozen=True)
class ChosenZone:
    """The zone a time-of-day wait uses, and why, when a zone named was passed over."""

    zone: ZoneInfo
    note: str | None = None


@dataclass(frozen=True)
class WakeUp:
    at: datetime
    note: str | None = None
    """Why the wait ends at once, when it does (a missing or past date)."""
    zone: ChosenZone | None = None
    """The zone of a time-of-day wait."""


def zone_named(name: Any) -> ZoneInfo | None:
    """The zone `name` names in any case (`europe/berlin`), or None."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return parse_timezone(name)
    except ValueError:
        return None


def visitor_zone(fields: dict[str, Any], flow_zone: str | None, default_zone: str) -> ChosenZone:
    """SPEC §2.6: the visitor's valid `timezone` field, else the flow's, else the server's,
    else UTC. A visitor's field or server zone that is given but is not a zone is passed
    over, and the note says so (the flow's was checked when it was saved)."""
    choices = [
        (fields.get("timezone"), "visitor timezone", "the visitor's timezone"),
        (flow_zone, None, "the flow's timezone"),
        (default_zone, "server timezone", "the server's default"),
    ]
    passed_over = []
    zone, source = ZoneInfo("UTC"), "the last resort"
    for name, label, where in choices:
        if (found := zone_named(name)) is not None:
            zone, source = found, where
            break
        if label and name not in (None, ""):
            passed_over.append(f"{label} {name!r}")
    if not passed_over:
        return ChosenZone(zone)
    these = " and ".join(passed_over)
    verb = "is not a time zone" if len(passed_over) == 1 else "are not time zones"
    return ChosenZone(zone, f"{these} {verb}; used {zone.key} ({source})")


def wake_time(wait: WaitAction, *, began_at: datetime, fields: dict[str, Any], zone: ChosenZone):
    if wait.for_ is not None:
        return WakeUp(began_at + wait.for_)
    if wait.until is not None:
        return WakeUp(wait.until)
    if wait.at is not None:
        return WakeUp(next_time_of_day(began_at, wait, zone.zone), zone=zone)
    return _until_field(wait, began_at, fields)


def next_time_of_day(after: datetime, wait: WaitAction, zone: ZoneInfo) -> datetime:
    """The first moment after `after` when the wall clock in `zone` reads `wait.at`, on an
    allowed weekday. A time skipped by a DST change resolves to the same instant a
    wall clock jumping forward would show; a repeated time takes the first one."""
    local = after.astimezone(zone)
    for days in range(8):
        day = local.date() + timedelta(days=days)
        if wait.on is not None and day.weekday() not in wait.on:
            continue
        candidate = datetime.combine(day, wait.at, tzinfo=zone).astimezone(UTC)
        if candidate > after:
            return candidate
    raise AssertionError("a weekday always comes within eight days")


def _until_field(wait: WaitAction, began_at: datetime, fields: dict[str, Any]) -> WakeUp:
    raw = fields.get(wait.until_field)
    if raw in (None, ""):
        return WakeUp(began_at, f"field '{wait.until_field}' is empty")
    try:
        when = _as_instant(raw)
    except (ValueError, OverflowError, OSError):
        return WakeUp(began_at, f"field '{wait.until_field}' is not a date: {_as_json(raw)}")
    try:
        target = when + wait.offset
    except OverflowError:  # a field near the end of the calendar (9999-12-31) plus offset
        return WakeUp(
            began_at, f"field '{wait.until_field}' + offset is out of range: {_as_json(raw)}"
        )
    if target <= began_at:
        return WakeUp(began_at, f"{target.isoformat()} ({wait.until_field} + offset) has passed")
    return WakeUp(target)


def _as_json(raw: Any) -> str:
    """A field's value as the visitor's JSON spells it (`true`, `"soon"`), not Python."""
    return orjson.dumps(raw, default=str).decode()


def _as_instant(raw: Any) -> datetime:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw, UTC)
    if not isinstance(raw, str):
        raise ValueError(raw)
    if len(raw) == 10:  # a plain date means its midnight, UTC
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    try:
        return parse_instant(raw)
    except ValueError:
        naive = datetime.fromisoformat(raw)
        if naive.tzinfo is not None:
            raise
        return naive.replace(tzinfo=UTC)
