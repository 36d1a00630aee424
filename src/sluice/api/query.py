"""Query parameters given more than once.

FastAPI reads a single-valued query parameter given twice (`?email=a&email=b`) as its
last value, silently; a client that meant both would get answers for one. The native
routers depend on `one_value_each`, which refuses that with 422 naming the parameter
(`loc` `query.email`); the UI's pages refuse it with a page saying so. Parameters
declared as lists take every value.
"""

from __future__ import annotations

import types
from typing import Union, get_args, get_origin

from fastapi import Request

from sluice.api.errors import invalid

_SEQUENCES = (list, set, frozenset, tuple)


def one_value_each(request: Request) -> None:
    """Raises ApiError 422 for each single-valued query parameter of the route that
    the request gives more than once."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is not None and (problems := repeated(dependant, request)):
        raise invalid(problems)


def repeated(dependant, request: Request) -> list[dict[str, str]]:
    """`{loc, msg}` for each single-valued query parameter of the route whose
    `dependant` this is that the request gives more than once (the UI's pages say so
    in a page: ui/errors.py)."""
    if len(request.query_params.multi_items()) == len(request.query_params):
        return []  # no name is repeated: the common case, cheaply
    return [
        {"loc": f"query.{field.alias}", "msg": "given more than once; give one value"}
        for field in _query_fields(dependant)
        if len(request.query_params.getlist(field.alias)) > 1
        and not _takes_many(field.field_info.annotation)
    ]


def _query_fields(dependant):
    """The query parameters of a route: its own and its dependencies'."""
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def _takes_many(annotation) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_many(a) for a in get_args(annotation))
    return (get_origin(annotation) or annotation) in _SEQUENCES
