"""JSON-like values: conversion to JSON-compatible types, and paths into them.

Paths name a place in a document the way problems report it: `steps[2].then[0].tag.add[1]`
(keys joined with dots, list items in brackets).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")


def key_loc(loc: str, key: object) -> str:
    """The path of `key` inside the mapping at `loc`."""
    text = str(key)
    if not _PLAIN_KEY.fullmatch(text):
        return f"{loc}[{json.dumps(text)}]"
    return f"{loc}.{text}" if loc else text


def item_loc(loc: str, index: int) -> str:
    """The path of item `index` of the list at `loc`."""
    return f"{loc}[{index}]"


def to_jsonable(value: Any) -> Any:
    """`value` with only JSON types: dates and times become ISO 8601 strings, tuples
    and sets (sorted) lists, mapping keys strings; anything else unknown becomes its `str()`.

    YAML hands out `datetime`s for unquoted timestamps; a stored definition and a
    timeline entry must survive a round trip through JSON.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return str(value)
