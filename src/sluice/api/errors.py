"""Errors as HTTP responses, in the two dialects the API speaks.

Under `/api/v1` (Bento's) an error is `{"error": "…"}`; unusable requests are 400.
Everywhere else (the native API) it is `{"detail": "…"}`, or for a validation error
422 with `{"detail": [{"loc", "msg"}, …]}` listing every problem. Nothing a client can
send ends in a 500: an unexpected exception is logged and answered with a 500 that
says only that, and the tests hunt for such inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from sluice.credentials import ReadOnlySetting
from sluice.definitions.problems import DefinitionError
from sluice.service import UnknownTemplate, VisitorNotFound
from sluice.store.broadcasts import BroadcastStateError, UnknownBroadcast
from sluice.store.drafts import NoDraft
from sluice.store.flows import UnknownFlow, UnknownVersion
from sluice.store.segments import UnknownSegment
from sluice.store.sessions import InvalidSessionState, SessionNotFound

log = logging.getLogger("sluice.api")

BENTO_PREFIX = "/api/v1/"


class ApiError(Exception):
    """An answer other than success: a status, a message, and for 422 the problems."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        problems: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message = status, message
        self.problems = list(problems) if problems is not None else None
        self.headers = headers


def invalid(problems: Sequence[dict[str, str]]) -> ApiError:
    """422 listing every problem as `{loc, msg}`."""
    summary = "; ".join(f"{p['loc']}: {p['msg']}" if p["loc"] else p["msg"] for p in problems)
    return ApiError(422, summary, problems=problems)


def _is_bento(request: Request) -> bool:
    return request.url.path.startswith(BENTO_PREFIX)


def error_response(request: Request, error: ApiError) -> JSONResponse:
    if _is_bento(request):
        body: dict = {"error": error.message}
    elif error.problems is not None:
        body = {"detail": error.problems}
    else:
        body = {"detail": error.message}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _loc(parts: Sequence[object]) -> str:
    return ".".join(str(p) for p in parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError):
        return error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, error: RequestValidationError):
        problems = [
            {"loc": _loc(e["loc"]), "msg": str(e["msg"]).removeprefix("Value error, ")}
            for e in error.errors()
        ]
        if _is_bento(request):
            return error_response(request, ApiError(400, invalid(problems).message))
        return error_response(request, invalid(problems))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException):
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        return error_response(request, ApiError(error.status_code, message, headers=error.headers))

    @app.exception_handler(DefinitionError)
    async def _definition(request: Request, error: DefinitionError):
        return error_response(request, invalid([p.as_dict() for p in error.problems]))

    for kind in (
        UnknownFlow,
        UnknownVersion,
        NoDraft,
        VisitorNotFound,
        SessionNotFound,
        UnknownTemplate,
        UnknownSegment,
        UnknownBroadcast,
    ):
        app.add_exception_handler(kind, _status(404))
    app.add_exception_handler(InvalidSessionState, _status(409))
    app.add_exception_handler(BroadcastStateError, _status(409))
    app.add_exception_handler(ReadOnlySetting, _status(409))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(request, ApiError(500, "internal error; see the server log"))


def _status(status: int):
    async def handler(request: Request, error: Exception):
        message = str(error.args[0]) if error.args else str(error)
        return error_response(request, ApiError(status, message))

    return handler
