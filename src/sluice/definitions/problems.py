"""Validation problems, and the checker that collects them while a document is read.

A definition is rejected whole with every problem listed, so reading never stops at the
first one: each check records what is wrong under the value's path and returns what it
could make of the value (None when nothing), and the caller carries on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from sluice.definitions.durations import parse_duration, parse_time_of_day
from sluice.definitions.limits import html_depth_problem
from sluice.definitions.liquid import (
    Condition,
    Template,
    TemplatedValue,
    TemplatedValueError,
    TemplateError,
)
from sluice.definitions.values import item_loc, key_loc

Reader = Callable[[Any, str], Any]
"""Checks the value found at a loc and returns what it makes of it."""

# Document keys whose model field is named differently (Python keywords, mostly).
_FIELD_NAMES = {"from": "from_", "for": "for_", "if": "condition", "else": "else_"}

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""Flow keys, template keys and step ids."""


@dataclass(frozen=True)
class Problem:
    loc: str
    """Path of the faulty value: `steps[2].wait`; empty for the whole document."""
    msg: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}" if self.loc else self.msg

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


class DefinitionError(Exception):
    """A definition failed validation; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnreadableValue(Exception):
    """A reader met a value that a library it calls cannot take (`urlsplit` on
    `http://[::1`, a date past the calendar): raised by `read_keys` with the value's
    loc, and turned into a problem there by the step or document being read, so odd
    input is a problem at its path and never a crash."""

    def __init__(self, loc: str, error: Exception):
        self.loc, self.msg = loc, f"a value cannot be read: {error}"
        super().__init__(f"{loc}: {self.msg}")


UNREADABLE = (ValueError, OverflowError, TypeError)
"""What library calls raise for odd input (and `UnreadableValue` wraps)."""


def read_guarded(read: Reader, value: Any, loc: str) -> Any:
    """`read(value, loc)`, with an exception of `UNREADABLE` as `UnreadableValue` at
    `loc` (the innermost loc wins: one raised deeper passes through)."""
    try:
        return read(value, loc)
    except UnreadableValue:
        raise
    except UNREADABLE as error:
        raise UnreadableValue(loc, error) from error


def _one_of(names: Collection[str]) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


class Checker:
    """Collects problems; every method checks one value found at `loc`."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, loc: str, msg: str) -> None:
        self.problems.append(Problem(loc, msg))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DefinitionError(self.problems)

    def mapping(
        self,
        value: Any,
        loc: str,
        *,
        required: Collection[str] = (),
        optional: Collection[str] = (),
    ) -> dict | None:
        """`value` if it is a mapping; missing required and unknown keys are problems."""
        if not isinstance(value, dict):
            self.add(loc, "expected a mapping")
            return None
        for key in required:
            if key not in value:
                self.add(key_loc(loc, key), f"missing required key '{key}'")
        self.unknown_keys(value, loc, [*required, *optional])
        return value

    def unknown_keys(self, value: dict, loc: str, allowed: Collection[str]) -> None:
        for key in value:
            if key not in allowed:
                self.add(key_loc(loc, key), unknown_key_message(key, allowed))

    def sequence(self, value: Any, loc: str, *, non_empty: bool = False) -> list | None:
        if not isinstance(value, list):
            self.add(loc, "expected a list")
            return None
        if non_empty and not value:
            self.add(loc, "expected at least one item")
        return value

    def string(self, value: Any, loc: str) -> str | None:
        """A non-empty string."""
        if not isinstance(value, str) or not value.strip():
            self.add(loc, "expected a non-empty string")
            return None
        return value

    def strings(self, value: Any, loc: str) -> tuple[str, ...]:
        items = self.sequence(value, loc) or []
        return tuple(s for i, v in enumerate(items) if (s := self.string(v, item_loc(loc, i))))

    def slug(self, value: Any, loc: str, what: str) -> str | None:
        text = self.string(value, loc)
        if text is not None and not SLUG.fullmatch(text):
            self.add(
                loc,
                f"invalid {what} {text!r} (use a-z, 0-9, _ and -, starting with a letter "
                "or digit, at most 64 characters)",
            )
            return None
        return text

    def boolean(self, value: Any, loc: str) -> bool | None:
        if not isinstance(value, bool):
            self.add(loc, "expected true or false")
            return None
        return value

    def integer(self, value: Any, loc: str, *, minimum: int) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.add(loc, "expected an integer")
            return None
        if value < minimum:
            self.add(loc, f"must be at least {minimum}")
            return None
        return value

    def choice(self, value: Any, loc: str, choices: Collection[str]) -> str | None:
        if value not in choices:
            self.add(loc, f"invalid value {value!r} (use {_one_of(choices)})")
            return None
        return value

    def duration(self, value: Any, loc: str, *, signed: bool = False) -> timedelta | None:
        """A duration, positive unless `signed` (which also allows zero and below, and
        a `+` for after: `+7d`, as `-7d` is before)."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # so that the message suggests units for the number
        if not isinstance(value, str):
            self.add(loc, "expected a duration such as 30s, 15m, 2h, 3d or 1w")
            return None
        if signed and value.strip().startswith("+"):
            value = value.strip()[1:]
            if value.startswith(("+", "-")):
                self.add(loc, "expected one sign at most, e.g. -7d or +7d")
                return None
        try:
            delta = parse_duration(value)
        except ValueError as err:
            self.add(loc, str(err))
            return None
        if not signed and delta <= timedelta(0):
            self.add(loc, "must be a positive duration")
            return None
        return delta

    def time_of_day(self, value: Any, loc: str) -> time | None:
        """A time of day, `HH:MM` (a 24-hour clock)."""
        if not isinstance(value, str):
            self.add(loc, 'expected a time of day as a string, e.g. "09:30"')
            return None
        try:
            return parse_time_of_day(value)
        except ValueError as err:
            self.add(loc, str(err))
            return None

    def template(self, value: Any, loc: str, *, html: bool = False) -> Template | None:
        """A Liquid template; `html` for an email's HTML, where data is escaped and
        whose elements may not nest deeper than `limits.MAX_HTML_DEPTH` as written."""
        if not isinstance(value, str):
            self.add(loc, "expected a string")
            return None
        if html and (too_deep := html_depth_problem(value)):
            self.add(loc, too_deep)
            return None
        try:
            return Template.compile(value, html=html)
        except TemplateError as err:
            self.add(loc, str(err))
            return None

    def templates(self, value: Any, loc: str) -> tuple[Template, ...]:
        items = self.sequence(value, loc) or []
        return tuple(t for i, v in enumerate(items) if (t := self.template(v, item_loc(loc, i))))

    def condition(self, value: Any, loc: str) -> Condition | None:
        if not isinstance(value, str):
            self.add(loc, "expected a condition (a string)")
            return None
        try:
            return Condition.compile(value)
        except TemplateError as err:
            self.add(loc, str(err))
            return None

    def templated(self, value: Any, loc: str) -> TemplatedValue | None:
        try:
            return TemplatedValue.compile(value, loc)
        except TemplatedValueError as err:
            for leaf_loc, msg in err.problems:
                self.add(leaf_loc, msg)
            return None


def unknown_key_message(key: object, allowed: Collection[str]) -> str:
    """`unknown key 'tigger' (did you mean 'trigger'?)`."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}"


def read_keys(
    raw: dict, loc: str, readers: dict[str, Reader], *, required: Collection[str] = ()
) -> dict[str, Any]:
    """Read each key of `raw` that has a reader, as keyword arguments for a model class.

    Absent keys are left out, so the model's defaults apply, except `required` ones:
    they are None (their absence is a problem already, so the model is never used).
    A reader that fails on odd input raises `UnreadableValue` at its key's loc.
    """
    return {
        _FIELD_NAMES.get(key, key): (
            read_guarded(read, raw[key], key_loc(loc, key)) if key in raw else None
        )
        for key, read in readers.items()
        if key in raw or key in required
    }
