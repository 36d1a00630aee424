"""Logging in to the web UI: a signed session cookie, and CSRF tokens for forms.

The cookie holds `{user, issued, nonce}` signed (HMAC-SHA256) with a key derived from
the installation's signing key, so any process of the installation can check it and
no session table is needed. It is HttpOnly, SameSite=Lax, and Secure when the UI is
served over https. Every state-changing request carries a CSRF token derived from
the cookie's nonce (a hidden `csrf` field, or the `X-CSRF-Token` header for the
editor's requests); the login form, which has no session yet, uses a double-submit
cookie instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

import orjson
from fastapi import Request

from sluice.api.auth import sluice_of
from sluice.service import Sluice

USER = "admin"
COOKIE = "sluice_ui"
LOGIN_COOKIE = "sluice_login"
MAX_AGE = 7 * 24 * 3600
"""Seconds a login lasts."""


class LoginRequired(Exception):
    """No valid session cookie: pages redirect to /login, JSON endpoints answer 401."""


class BadCsrfToken(Exception):
    """The form's CSRF token is missing or does not belong to this session."""


@dataclass(frozen=True)
class UiSession:
    user: str
    nonce: str
    csrf: str


def _key(sluice: Sluice, purpose: str) -> bytes:
    signing_key = sluice.secret("signing_key").encode()
    return hmac.new(signing_key, f"sluice-ui:{purpose}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(sluice: Sluice, payload: str) -> str:
    return _b64(hmac.new(_key(sluice, "cookie"), payload.encode(), hashlib.sha256).digest())


def issue_cookie(sluice: Sluice) -> str:
    payload = _b64(
        orjson.dumps({"u": USER, "iat": int(time.time()), "n": secrets.token_urlsafe(16)})
    )
    return f"{payload}.{_sign(sluice, payload)}"


def _csrf_for(sluice: Sluice, nonce: str) -> str:
    return _b64(hmac.new(_key(sluice, "csrf"), nonce.encode(), hashlib.sha256).digest())


def read_cookie(sluice: Sluice, value: str | None) -> UiSession | None:
    """The session the cookie proves, or None for a missing, forged or expired one."""
    if not value or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(sluice, payload).encode()):
        return None
    try:
        data = orjson.loads(_unb64(payload))
        issued, user, nonce = int(data["iat"]), str(data["u"]), str(data["n"])
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= time.time() - issued < MAX_AGE:
        return None
    return UiSession(user=user, nonce=nonce, csrf=_csrf_for(sluice, nonce))


def session_of(request: Request) -> UiSession:
    """The logged-in session; raises LoginRequired."""
    found = read_cookie(sluice_of(request), request.cookies.get(COOKIE))
    if found is None:
        raise LoginRequired
    return found


def check_csrf(request: Request, token: str | None) -> UiSession:
    session = session_of(request)
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise BadCsrfToken
    return session


def check_password(sluice: Sluice, username: str, password: str) -> bool:
    right_user = hmac.compare_digest(username.encode(), USER.encode())
    return sluice.credentials.check_admin_password(password) and right_user


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def cookie_options(request: Request) -> dict:
    return {"httponly": True, "samesite": "lax", "secure": is_https(request), "path": "/"}


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


def safe_next(target: str | None) -> str:
    """Only a local path: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target
