"""Checking events where they come in (CLI, API, simulations): a bad event gets a
precise error naming the field, and nothing is stored.

Beyond their shape, events are checked for what neither database can store, so that
every input path refuses it alike: text holding a NUL character (PostgreSQL refuses
it in text and JSON) and whole numbers beyond 64 bits (JSON columns are written with
orjson, which takes -2^63 to 2^64-1)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from sluice.addresses import MAX_EMAIL, visitor_email
from sluice.records import RECORDED_EVENTS
from sluice.store.ingest import IncomingEvent

MAX_DETAILS_BYTES = 64 * 1024
_SMALLEST_INT, _LARGEST_INT = -(2**63), 2**64 - 1
NUL_MSG = "text may not contain a NUL character"
BIG_INT_MSG = "a whole number beyond 64 bits (-2^63 to 2^64-1) cannot be stored"


MAX_NOTE = 2000
"""The longest note a change may carry, in characters, however it is given."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def note_text(value: str | None) -> str | None:
    """A change's note for the audit log as given (API, UI forms, CLI `--note`), or
    ValueError when it is longer than `MAX_NOTE`, holds a control character other than
    a tab or a line break (C0 or C1: PostgreSQL cannot store a NUL, and the others
    would print as nothing or move the cursor wherever the note is shown), or a lone
    surrogate (how Python reads bytes of a command line that are not UTF-8; neither
    database can store one)."""
    if value is None:
        return None
    if len(value) > MAX_NOTE:
        raise ValueError(
            f"a note may have at most {MAX_NOTE:,} characters (this one has {len(value):,})"
        )
    if found := _CONTROL.search(value):
        raise ValueError(f"a note may not hold a control character (U+{ord(found[0]):04X})")
    if found := _SURROGATE.search(value):
        raise ValueError(
            f"a note must be valid UTF-8 text: it holds U+{ord(found[0]):04X}, "
            "which cannot be stored"
        )
    return value


class NoteTooLong(ValueError):
    """A note that, with what is written before it, would be longer than `MAX_NOTE`."""


def restore_note(version: int, note: str | None) -> str:
    """The note of a restore of `version` in the audit log: `restored version N`, then
    `: ` and `note` (a valid note) when given. NoteTooLong when the whole would be
    longer than `MAX_NOTE`: its message names the room `note` has."""
    said = f"restored version {version}"
    if not note:
        return said
    room = MAX_NOTE - len(f"{said}: ")
    if len(note) > room:
        raise NoteTooLong(
            f"a restore's note may have at most {room:,} characters, as '{said}: ' comes "
            f"first (this one has {len(note):,})"
        )
    return f"{said}: {note}"


class InvalidInput(ValueError):
    """An input that cannot be accepted; `problems` lists `{loc, msg}` for each fault."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['loc']}: {p['msg']}" for p in problems))


class EventInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=MAX_EMAIL)
    details: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] | None = None
    date: datetime | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)

    @field_validator("type")
    @classmethod
    def _not_recorded_by_sluice(cls, value: str, info: ValidationInfo) -> str:
        if value in RECORDED_EVENTS and not (info.context or {}).get("recorded"):
            raise ValueError(
                f"{value} is recorded by Sluice: when the data changes (add a tag with "
                "$tag, change a field with fields), a visitor enters or leaves a segment, "
                "a flow's hook is called or a date trigger's day comes"
            )
        return value

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return visitor_email(value)  # its AddressError is a ValueError: a problem at `email`

    @field_validator("details")
    @classmethod
    def _small_details(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError:
            return value  # a number beyond 64 bits: `unstorable` names where
        if size > MAX_DETAILS_BYTES:
            raise ValueError("details are larger than 64 KiB")
        return value

    @field_validator("date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("date needs a time zone offset, e.g. 2026-01-05T09:00:00Z")
        return value

    def incoming(self, source: str) -> IncomingEvent:
        return IncomingEvent(
            type=self.type,
            email=self.email,
            details=self.details,
            fields=self.fields,
            date=self.date,
            idempotency_key=self.idempotency_key,
            source=source,
        )

    def unstorable(self) -> list[dict[str, str]]:
        """`{loc, msg}` for each value of this valid event that no database can store."""
        found = []
        for name in ("type", "idempotency_key"):
            if "\x00" in (getattr(self, name) or ""):
                found.append({"loc": name, "msg": NUL_MSG})
        found += unstorable(self.details, "details")
        if self.fields is not None:
            found += unstorable(self.fields, "fields")
        return found

    @classmethod
    def checked(
        cls, data: Any, *, source: str, loc: str = "", recorded: bool = False
    ) -> IncomingEvent:
        """`data` as an event; `InvalidInput` listing every fault (paths after `loc`).
        `recorded`: an event Sluice records itself (`RECORDED_EVENTS`) is allowed."""
        try:
            event = cls.model_validate(data, context={"recorded": recorded})
        except ValidationError as error:
            raise InvalidInput(problems(error, loc)) from None
        if found := event.unstorable():
            raise InvalidInput([{**p, "loc": f"{loc}{p['loc']}"} for p in found])
        return event.incoming(source)


def unstorable(value: Any, loc: str) -> list[dict[str, str]]:
    """`{loc, msg}` for each string (value or key) holding a NUL character and each
    whole number beyond 64 bits in `value` (JSON types), `loc` naming `value`."""
    try:
        if b"\\u0000" not in orjson.dumps(value):  # NUL is written escaped: a quick pass
            return []
    except orjson.JSONEncodeError:
        pass  # a number beyond 64 bits (or a type JSON lacks): walk to say where
    found: list[dict[str, str]] = []
    _walk(value, loc, found)
    return found


def _walk(value: Any, loc: str, found: list[dict[str, str]]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            found.append({"loc": loc, "msg": NUL_MSG})
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not _SMALLEST_INT <= value <= _LARGEST_INT:
            found.append({"loc": loc, "msg": BIG_INT_MSG})
    elif isinstance(value, dict):
        for key, item in value.items():
            # A NUL in a key is named escaped: the path is printed and sent as text.
            name = str(key).replace("\x00", "\\u0000")
            path = f"{loc}.{name}" if loc else name
            if isinstance(key, str) and "\x00" in key:
                found.append({"loc": path, "msg": NUL_MSG})
            _walk(item, path, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{loc}[{index}]", found)


def problems(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    found = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        found.append({"loc": f"{prefix}{loc}" if prefix else loc, "msg": msg})
    return found
