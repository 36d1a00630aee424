"""The web UI (SPEC §3.5): server-rendered pages behind a login, with small scripts
for live updates and the bundled flow editor. `install(app)` adds it to the HTTP app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from sluice.ui import (
    auth,
    broadcasts,
    document,
    email_templates,
    explain,
    feeds,
    flows,
    login,
    people,
    render,
    segments,
)
from sluice.ui.throttle import LoginThrottle

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.state.login_throttle = LoginThrottle()
    for module in (
        login,
        flows,
        document,
        email_templates,
        segments,
        broadcasts,
        people,
        explain,
        feeds,
    ):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: Request, error: auth.LoginRequired):
        if request.url.path.startswith("/ui/"):
            return JSONResponse({"detail": "login required"}, status_code=401)
        target = auth.login_url(request) if request.method == "GET" else "/login"
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(auth.BadCsrfToken)
    async def _bad_csrf(request: Request, error: auth.BadCsrfToken):
        return render.public_page(
            "error.html",
            status=403,
            title="Form expired",
            message="This form is out of date. Go back, reload the page and try again.",
        )

    @app.exception_handler(auth.CrossSiteRequest)
    async def _cross_site(request: Request, error: auth.CrossSiteRequest):
        message = (
            f"This request was sent from another site ({error.sender}), so Sluice changed "
            "nothing. Open Sluice at its own address and try again."
        )
        if request.url.path.startswith("/ui/"):
            return JSONResponse({"detail": message}, status_code=403)
        return render.public_page(
            "error.html", status=403, title="Request refused", message=message
        )
