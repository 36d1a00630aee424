"""Rendering pages: one Jinja environment (autoescape on everywhere), a few filters,
and the one-shot notices shown after a redirect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from sluice import narration
from sluice.ui import auth

NOTICE_COOKIE = "sluice_notice"


def _when(value: str | datetime | None) -> str:
    """An instant as `2026-05-01 09:30 UTC`."""
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: str | datetime | None) -> str:
    """An instant relative to now (`narration.relative`): `5 min ago`, `in 2 days`."""
    return "—" if value is None else narration.relative(value, datetime.now(UTC))


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()


environment = Environment(
    loader=PackageLoader("sluice.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=_when, ago=_ago, json=_json, compact=_compact)


def quote_path(text: str) -> str:
    """A value (an email) as one segment of a URL path."""
    return quote(str(text), safe="@")


environment.globals.update(quote=quote_path, instant=narration.when, relative=narration.relative)


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A page for a logged-in user, with the notice left by the last redirect."""
    session = auth.session_of(request)
    notice = unquote(request.cookies.get(NOTICE_COOKIE, ""))
    html = environment.get_template(template).render(
        request=request, csrf=session.csrf, notice=notice, path=request.url.path, **context
    )
    response = HTMLResponse(html, status_code=status)
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path="/")
    return response


def not_found(request: Request, message: str) -> HTMLResponse:
    return page(request, "error.html", status=404, title="Not found", message=message)


def fragment(template: str, **context: Any) -> str:
    """A piece of a page, for a script to put in place."""
    return environment.get_template(template).render(**context)


def public_page(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment.get_template(template).render(csrf=None, notice=None, **context)
    return HTMLResponse(html, status_code=status)


def redirect(request: Request, target: str, notice: str | None = None) -> RedirectResponse:
    """303 to `target` (after a form), with a notice to show there."""
    response = RedirectResponse(target, status_code=303)
    if notice:
        response.set_cookie(
            NOTICE_COOKIE, quote(notice), max_age=60, **auth.cookie_options(request)
        )
    return response
