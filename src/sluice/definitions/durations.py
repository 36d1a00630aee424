"""Durations, times of day, absolute times and time zones in definitions (SPEC §2.3).

Durations are an integer and a unit (`30s`, `15m`, `2h`, `3d`, `1w`), or ISO 8601
(`P2D`, `PT90M`, `P1DT2H`, `P1W`); a leading `-` makes them negative (`offset: -3d`).
Compact units may also be chained, largest first (`1h30m`, `2d12h`): that is the form
`format_duration` writes, so everything it writes parses back.

A duration is at most `limits.MAX_DURATION` (10 years) either way, so that a time
computed from one is always a date; absolute times in definitions come before
`limits.LATEST_INSTANT` (the year 3000) for the same reason.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sluice.definitions.limits import LATEST_INSTANT, MAX_DURATION

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as written in `wait: {on: [...]}`; the index is `datetime.weekday()`."""

_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_MAX_SECONDS = timedelta.max.total_seconds()

_COMPACT = re.compile(r"(-?)" + "".join(rf"(?:(\d+){unit})?" for unit in _UNIT_SECONDS))
_ISO = re.compile(r"(-?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
_ISO_CALENDAR = re.compile(r"-?P[^T]*?\d+[YM].*")
"""ISO 8601 durations with years or months, which have no fixed length."""

# Spellings people try, mapped to the unit they meant: "2 days" -> "2d".
_UNIT_WORDS = {
    "s": ("s", "sec", "secs", "second", "seconds"),
    "m": ("m", "min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "wk", "wks", "week", "weeks"),
}
_UNIT_BY_WORD = {word: unit for unit, words in _UNIT_WORDS.items() for word in words}
_LOOSE = re.compile(r"\s*(-?)\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_duration(text: str) -> timedelta:
    """Parse a duration of at most `MAX_DURATION` either way; `ValueError` says how to
    write it when it is not one, or that it is too long."""
    for pattern in (_COMPACT, _ISO):
        match = pattern.fullmatch(text)
        if match and any(match.groups()[1:]):
            seconds = _seconds(match.groups()[1:])
            if seconds > MAX_DURATION.total_seconds():
                raise ValueError(
                    f"duration {_quoted(text)} is too long: at most "
                    f"{format_duration(MAX_DURATION)} (10 years)"
                )
            return timedelta(seconds=-seconds if match.group(1) else seconds)
    raise ValueError(f"invalid duration {_quoted(text)} ({_hint(text)})")


def _quoted(text: str) -> str:
    """`text` as a message quotes it: cut short when long."""
    return repr(text) if len(text) <= 40 else f"{text[:30]!r}… ({len(text)} characters)"


def _seconds(parts: tuple[str | None, ...]) -> float:
    if any(n and len(n) > 12 for n in parts):
        return math.inf  # far beyond the limit; and int() refuses 4,300 digits and more
    return sum(int(n) * s for n, s in zip(parts, _UNIT_SECONDS.values(), strict=True) if n)


def _hint(text: str) -> str:
    """What to write instead of `text`, as specific as we can guess."""
    loose = _LOOSE.fullmatch(text)
    if loose and loose.group(3).lower() in _UNIT_BY_WORD:
        sign, number, word = loose.groups()
        seconds = float(number) * _UNIT_SECONDS[_UNIT_BY_WORD[word.lower()]]
        if seconds.is_integer() and seconds < _MAX_SECONDS:
            return f"use {format_duration(timedelta(seconds=-seconds if sign else seconds))}"
    if loose and not loose.group(3):
        number = loose.group(1) + loose.group(2)
        return f"add a unit: {number}s, {number}m, {number}h, {number}d or {number}w"
    if _ISO_CALENDAR.fullmatch(text):
        return "months and years vary in length; use days or weeks"
    return "use e.g. 30s, 15m, 2h, 3d, 1w or ISO 8601 such as P2D"


def format_duration(delta: timedelta) -> str:
    """The compact form of a duration, largest unit first: `2d`, `1h30m`, `-3d`, `0s`.

    Weeks are written as days (`14d`), which reads more naturally in timelines.
    Fractions of a second are dropped.
    """
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit in "dhms":
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")


def parse_time_of_day(text: str) -> time:
    """Parse `HH:MM` (24-hour clock)."""
    match = _TIME_OF_DAY.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"invalid time of day {text!r} (use HH:MM, e.g. 09:30)")
    return time(int(match.group(1)), int(match.group(2)))


def parse_instant(value: str | datetime | date) -> datetime:
    """Parse an absolute time: ISO 8601 with an offset, returned in UTC.

    YAML turns unquoted timestamps into `datetime` (or `date`) objects already; those
    are accepted too, on the same terms: without an offset a time is ambiguous.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"invalid time {value!r} (use ISO 8601 with an offset, e.g. 2026-12-24T09:00:00Z)"
            ) from None
    elif isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        raise ValueError(
            f"a date alone is ambiguous: give a time with an offset, e.g. {value}T09:00:00Z"
        )
    else:
        raise ValueError(f"invalid time {value!r} (use ISO 8601, e.g. 2026-12-24T09:00:00Z)")
    if parsed.utcoffset() is None:
        raise ValueError(
            f"time {_spelled(value)!r} has no offset: add one, e.g. Z for UTC or +02:00"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is after the last date there is
        raise ValueError(f"time {_spelled(value)!r} is out of range") from None


def _spelled(value: str | datetime) -> str:
    """A time as the definition spells it: YAML reads an unquoted one as a `datetime`,
    whose `str` has a space where the text had a `T`."""
    return value if isinstance(value, str) else value.isoformat()


def check_instant_in_range(instant: datetime) -> None:
    """`ValueError` when a time in a definition is not before `LATEST_INSTANT`."""
    if instant >= LATEST_INSTANT:
        raise ValueError(
            f"time {instant.isoformat()!r} is too late: it must come before "
            f"{LATEST_INSTANT.year}-01-01"
        )


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone `name` names, in any case (`Europe/Berlin`, `europe/berlin`);
    its `key` is the canonical spelling. `ValueError` when there is none.

    Only the zones of the IANA database are zones here (`zoneinfo.available_timezones`),
    less the files that name no place: `localtime` and `posixrules` (whatever the host
    set) and `Factory` (a placeholder whose abbreviation is "-00")."""
    canonical = _zones_by_lower_name().get(name.lower())
    if canonical is None:
        raise ValueError(f"unknown time zone {name!r}")
    return ZoneInfo(canonical)


_NOT_PLACES = frozenset({"localtime", "posixrules", "factory"})


@cache
def _zones_by_lower_name() -> dict[str, str]:
    """Canonical IANA names by their lower case: people write `europe/berlin`, and the
    zone files are looked up case-sensitively on most systems (and not on macOS)."""
    return {name.lower(): name for name in available_timezones() if name.lower() not in _NOT_PLACES}
