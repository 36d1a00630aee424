"""Request errors of the UI's routes as pages, not the API's JSON (docs/ui.md).

FastAPI answers a path, query or form value it cannot validate, and a form it cannot
parse, before the route runs: with the API's JSON. A UI router made with
`route_class=PageRoute` answers them as a person expects instead:

- a path parameter that is not one (a session id that is not a number, or beyond
  64 bits; a visitor's email that is too long): the 404 page, as for an id that names
  nothing;
- any other value (a query or form field), a query parameter given more than once,
  or a form that cannot be read: a 422 page saying what was wrong.

Routes under `/ui/` serve the pages' scripts: they get `{"detail": …}` JSON instead.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from sluice.api.query import repeated
from sluice.ui import auth, render

NOT_FOUND = {
    "session_id": "There is no session {}.",
    "key": "There is no flow '{}'.",
    "email": "No visitor has the email {}.",
    "version": "There is no version {}.",
    "broadcast_id": "There is no broadcast {}.",
}
"""The 404 message for a path parameter that cannot name anything, by its name."""


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            if problems := repeated(self.dependant, request):
                return refused(request, "; ".join(f"{p['loc'][6:]}: {p['msg']}" for p in problems))
            try:
                return await handle(request)
            except RequestValidationError as error:
                return _invalid(request, error.errors())
            except HTTPException as error:
                if error.status_code != 400:  # 400: a form python-multipart cannot parse
                    raise
                return _unreadable(request, str(error.detail))

        return route


def _invalid(request: Request, errors) -> Response:
    for error in errors:
        if error["loc"][0] == "path":
            name = str(error["loc"][1])
            value = request.path_params.get(name, "")
            message = NOT_FOUND.get(name, "There is no page at {}.").format(
                value if name in NOT_FOUND else request.url.path
            )
            if request.url.path.startswith("/ui/"):
                return JSONResponse({"detail": message}, status_code=404)
            return render.not_found(request, message)
    problems = [f"{error['loc'][-1]}: {_message(error)}" for error in errors]
    return refused(request, "; ".join(problems))


def _message(error: dict) -> str:
    if isinstance(error.get("input"), UploadFile):
        return "must be typed in the form, not sent as a file"
    return str(error["msg"]).removeprefix("Value error, ")


def _unreadable(request: Request, detail: str) -> Response:
    return refused(request, f"the form could not be read ({detail})")


def refused(request: Request, message: str) -> Response:
    """The 422 page (JSON under `/ui/`) saying what in the request was wrong."""
    message = f"Sluice could not use this request: {message}. Go back and try again."
    if request.url.path.startswith("/ui/"):
        return JSONResponse({"detail": message}, status_code=422)
    try:
        return render.page(request, "error.html", status=422, title="Not accepted", message=message)
    except auth.LoginRequired:  # e.g. the login form itself: a page without the menu
        return render.public_page("error.html", status=422, title="Not accepted", message=message)
