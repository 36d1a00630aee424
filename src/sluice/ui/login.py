"""/login and /logout."""

from __future__ import annotations

import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from sluice.api.auth import sluice_of
from sluice.ui import auth, render
from sluice.ui.errors import PageRoute
from sluice.ui.throttle import LoginThrottle

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _login_form(
    request: Request, *, next_url: str, error: str | None = None, username="", status=401
):
    token = request.cookies.get(auth.LOGIN_COOKIE) or secrets.token_urlsafe(16)
    response = render.public_page(
        "login.html",
        status=status if error else 200,
        login_token=token,
        next_url=next_url,
        error=error,
        username=username,
    )
    response.set_cookie(auth.LOGIN_COOKIE, token, max_age=3600, **auth.cookie_options(request))
    return response


@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query()] = None) -> HTMLResponse:
    sluice = sluice_of(request)
    if auth.read_cookie(sluice, request.cookies.get(auth.COOKIE)) is not None:
        return RedirectResponse(auth.safe_next(next), status_code=303)
    return _login_form(request, next_url=auth.safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
):
    auth.check_origin(request)
    sluice = sluice_of(request)
    next_url = auth.safe_next(next)
    throttle: LoginThrottle = request.app.state.login_throttle
    address, now = request.client.host if request.client else "", sluice.clock.now()
    wait = throttle.wait(address, now)
    if wait is not None:
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        message = (
            f"Too many failed logins from your address. "
            f"Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        )
        response = _login_form(
            request, next_url=next_url, error=message, username=username, status=429
        )
        response.headers["Retry-After"] = str(math.ceil(wait.total_seconds()))
        return response
    expected = request.cookies.get(auth.LOGIN_COOKIE)
    if not expected or not secrets.compare_digest(login_token.encode(), expected.encode()):
        message = "The login form expired. Please try again."
        return _login_form(request, next_url=next_url, error=message, username=username)
    if not username or not password:
        message = "Enter the user name and the password."
        return _login_form(request, next_url=next_url, error=message, username=username)
    if not await run_in_threadpool(auth.check_password, sluice, username, password):
        throttle.failed(address, now)
        message = "Wrong user name or password."
        return _login_form(request, next_url=next_url, error=message, username=username)
    throttle.succeeded(address)
    response = RedirectResponse(next_url, status_code=303)
    options = auth.cookie_options(request)
    response.set_cookie(auth.COOKIE, auth.issue_cookie(sluice), max_age=auth.MAX_AGE, **options)
    response.delete_cookie(auth.LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = ""):
    """Log out: this browser, and every other session of the admin user."""
    auth.check_csrf(request, csrf)
    sluice_of(request).credentials.end_logins()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response
