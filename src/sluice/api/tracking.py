"""The public endpoints that links in emails lead to: one-click unsubscribe (RFC 8058),
the open pixel and click redirects.

They need no login: the signed token in the link is the authority, and a link whose
signature does not check out is refused with 400 and changes nothing. The click
endpoint redirects only to the URL signed into its token, so it cannot be used as an
open redirect.
"""

from __future__ import annotations

import base64
from html import escape
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sluice import links
from sluice.delivery.tracking import CLICK, OPEN, Tracker
from sluice.service import Sluice

router = APIRouter(include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1×1 GIF."""
NO_STORE = {"Cache-Control": "no-store, max-age=0"}


def _sluice(request: Request) -> Sluice:
    return request.app.state.sluice


def _tracker(request: Request) -> Tracker:
    """Made once per application: the signing key is read from the database."""
    state = request.app.state
    if getattr(state, "tracker", None) is None:
        state.tracker = _sluice(request).tracker()
    return state.tracker


def _visitor(request: Request, token: str) -> str | None:
    """The visitor uuid of a valid unsubscribe token."""
    payload = links.verify(_tracker(request).key, token)
    if payload is None or payload.get("a") != "unsubscribe":
        return None
    return payload["v"] if isinstance(payload.get("v"), str) else None


@router.get("/u", response_class=HTMLResponse)
def unsubscribe_page(request: Request, t: str = "") -> HTMLResponse:
    """Asks for confirmation: a GET (a link scanner, a preview) never unsubscribes."""
    if _visitor(request, t) is None:
        return _invalid()
    action = escape(f"/u?{urlencode({'t': t})}", quote=True)
    return _page(
        "Unsubscribe",
        "<p>Stop receiving these emails? Messages you asked for, such as receipts, "
        "still reach you.</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u", response_class=HTMLResponse)
def unsubscribe(request: Request, t: str = "") -> HTMLResponse:
    """RFC 8058 one-click: the POST a mail client sends (or the confirmation form)."""
    visitor = _visitor(request, t)
    if visitor is None:
        return _invalid()
    _sluice(request).unsubscribe_by_link(visitor)
    return _page("You are unsubscribed", "<p>You will not receive these emails any more.</p>")


@router.get("/o/{token}")
def opened(request: Request, token: str) -> Response:
    payload = _tracker(request).read(token, OPEN)
    if payload is None:
        return Response(status_code=404, headers=NO_STORE)
    _sluice(request).record_engagement(payload["m"], "email_opened", {})
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/c/{token}")
def clicked(request: Request, token: str) -> Response:
    payload = _tracker(request).read(token, CLICK)
    if payload is None:
        return _invalid()
    _sluice(request).record_engagement(payload["m"], "email_clicked", {"url": payload["u"]})
    return RedirectResponse(payload["u"], status_code=302, headers=NO_STORE)


def _invalid() -> HTMLResponse:
    return _page(
        "This link is not valid",
        "<p>The link may have been cut short or changed. Try copying the whole link "
        "from the email.</p>",
        status_code=400,
    )


def _page(title: str, body: str, *, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{escape(title)}</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; align-items: center;
  justify-content: center; background: #f4f5f7; color: #1f2933;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }}
main {{ background: #fff; max-width: 26rem; margin: 1rem; padding: 2rem 2.25rem;
  border-radius: 12px; box-shadow: 0 1px 3px rgba(0,0,0,.08), 0 8px 24px rgba(0,0,0,.06); }}
h1 {{ font-size: 1.35rem; margin: 0 0 .75rem; }}
p {{ margin: 0 0 1.25rem; color: #52606d; }}
button {{ font: inherit; font-weight: 600; color: #fff; background: #c2410c; border: 0;
  border-radius: 8px; padding: .65rem 1.4rem; cursor: pointer; }}
button:hover, button:focus {{ background: #9a3412; }}
</style></head>
<body><main><h1>{escape(title)}</h1>{body}</main></body></html>
""",
        status_code=status_code,
        headers=NO_STORE,
    )
