"""Checking events where they come in (CLI, API, simulations): a bad event gets a
precise error naming the field, and nothing is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice.addresses import MAX_EMAIL, visitor_email
from sluice.store.ingest import IncomingEvent

MAX_DETAILS_BYTES = 64 * 1024


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

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return visitor_email(value)  # its AddressError is a ValueError: a problem at `email`

    @field_validator("details")
    @classmethod
    def _small_details(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(orjson.dumps(value)) > MAX_DETAILS_BYTES:
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

    @classmethod
    def checked(cls, data: Any, *, source: str, loc: str = "") -> IncomingEvent:
        try:
            return cls.model_validate(data).incoming(source)
        except ValidationError as error:
            raise InvalidInput(problems(error, loc)) from None


def problems(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    found = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        found.append({"loc": f"{prefix}{loc}" if prefix else loc, "msg": msg})
    return found
