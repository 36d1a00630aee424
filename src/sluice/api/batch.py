"""Batches of items, checked one by one: the valid ones are kept, each invalid one is
reported by its index and the fields at fault (SPEC §3.3: one bad address never
costs the other 999 events).

Events are validated by `edge.EventInput` through a TypeAdapter over the whole list
(one call into pydantic-core for a thousand events); only when that finds faults are
the faulty items told apart from the good ones. A few checks are added that the
database needs (`EventInput.unstorable`: no NUL characters in text, no numbers beyond
64 bits), idempotency keys of at most 200 characters, and dates that can be stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from sluice.api.errors import ApiError
from sluice.edge import EventInput, problems
from sluice.store.ingest import IncomingEvent

MAX_ITEMS = 1000
"""The most items one request carries: events, subscribers, commands (SPEC §3.3), and
the scripted events of a simulation."""
MAX_ERRORS = 20
"""How many per-item errors a response lists; `failed` counts them all."""
MAX_KEY = 200

Problems = list[dict[str, str]]

_EVENTS = TypeAdapter(list[EventInput])
T = TypeVar("T")


@dataclass
class Checked(Generic[T]):
    valid: list[tuple[int, T]] = field(default_factory=list)
    invalid: list[tuple[int, Problems]] = field(default_factory=list)

    def add_problems(self, index: int, found: Problems) -> None:
        self.invalid.append((index, found))

    def bento_errors(self) -> list[dict[str, Any]]:
        """`[{index, error}]`, at most MAX_ERRORS, in index order."""
        return [
            {"index": index, "error": _sentence(found)}
            for index, found in sorted(self.invalid, key=lambda p: p[0])[:MAX_ERRORS]
        ]

    def native_errors(self) -> list[dict[str, Any]]:
        """`[{index, loc, msg}]`, at most MAX_ERRORS, in index order."""
        listed = [
            {"index": index, **problem}
            for index, found in sorted(self.invalid, key=lambda p: p[0])
            for problem in found
        ]
        return listed[:MAX_ERRORS]


def _sentence(found: Problems) -> str:
    return "; ".join(f"{p['loc']}: {p['msg']}" if p["loc"] else p["msg"] for p in found)


def items_of(body: Any, key: str, *, limit: int, noun: str) -> list[Any]:
    """`body[key]` as a list of 1 to `limit` items; 400 otherwise (nothing is stored)."""
    if not isinstance(body, dict):
        raise ApiError(400, f'expected a JSON object with "{key}": [...]')
    items = body.get(key)
    if not isinstance(items, list):
        raise ApiError(400, f'"{key}" must be a list of 1 to {limit} {noun}')
    if not items:
        raise ApiError(400, f'"{key}" is empty; send 1 to {limit} {noun}')
    if len(items) > limit:
        raise ApiError(
            400, f'"{key}" has {len(items)} {noun}; at most {limit} are taken in one request'
        )
    return items


def check_events(
    items: list[Any],
    *,
    source: str,
    prepare: Callable[[Any], Any] | None = None,
) -> Checked[IncomingEvent]:
    """Validate event items; `prepare` may adapt each item first (Bento's quirks)."""
    if prepare is not None:
        items = [prepare(item) for item in items]
    checked: Checked[IncomingEvent] = Checked()
    try:
        models = list(enumerate(_EVENTS.validate_python(items)))
    except ValidationError as error:
        faults: dict[int, Problems] = {}
        for item in error.errors():
            index, *rest = item["loc"]
            msg = item["msg"].removeprefix("Value error, ")
            if not rest and item["type"] in ("model_type", "dict_type"):
                msg = "must be an object with type and email"
            loc = ".".join(str(part) for part in rest)
            faults.setdefault(int(index), []).append({"loc": loc, "msg": msg})
        for index, found in faults.items():
            checked.add_problems(index, found)
        good = [i for i in range(len(items)) if i not in faults]
        models = list(zip(good, _EVENTS.validate_python([items[i] for i in good]), strict=True))
    for index, model in models:
        found = _storable(model)
        if found:
            checked.add_problems(index, found)
        else:
            checked.valid.append((index, model.incoming(source)))
    return checked


def _storable(model: EventInput) -> Problems:
    """What the database could not store of an otherwise valid event."""
    found: Problems = []
    if model.date is not None:
        try:
            model.date.astimezone(UTC)
        except OverflowError:
            found.append({"loc": "date", "msg": "date is out of range"})
    unique = model.details.get("unique")
    key = model.idempotency_key or (unique.get("key") if isinstance(unique, dict) else None)
    if key is not None and len(str(key)) > MAX_KEY:
        where = "idempotency_key" if model.idempotency_key else "details.unique.key"
        found.append({"loc": where, "msg": f"longer than {MAX_KEY} characters"})
    return found + model.unstorable()


def check_each(items: list[Any], check: Callable[[Any], T]) -> Checked[T]:
    """Validate items one by one with `check`, which raises `ItemError` for a bad one."""
    checked: Checked[T] = Checked()
    for index, item in enumerate(items):
        try:
            checked.valid.append((index, check(item)))
        except ItemError as error:
            checked.add_problems(index, error.problems)
        except ValidationError as error:
            checked.add_problems(index, problems(error))
    return checked


class ItemError(ValueError):
    """One item is invalid; `problems` lists `{loc, msg}`."""

    def __init__(self, *found: tuple[str, str]):
        self.problems = [{"loc": loc, "msg": msg} for loc, msg in found]
        super().__init__(_sentence(self.problems))
