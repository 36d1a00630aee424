"""Logging in to the web UI: a signed session cookie, and CSRF tokens for forms.

The cookie holds `{user, issued, nonce, generation}` signed (HMAC-SHA256) with a key
derived from the installation's signing key, so any process of the installation can
check it and no session table is needed. The generation is the installation's current
login generation (`Credentials.login_generation`), read on every request: logging out
or setting the admin password replaces it, which ends every session, also a copy of
the cookie taken before. The cookie is HttpOnly, SameSite=Lax, and Secure when the UI
is served over https.

Every state-changing request carries a CSRF token derived from the cookie's nonce (a
hidden `csrf` field, or the `X-CSRF-Token` header for the editor's requests); the login
form, which has no session yet, uses a double-submit cookie instead. Besides, such a
request must not come from another site (`check_origin`, the rule is in docs/ui.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

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


class CrossSiteRequest(Exception):
    """A state-changing request sent from another site's page (its `Origin`, or
    `Sec-Fetch-Site`, says so): refused even with a valid token."""

    def __init__(self, sender: str):
        super().__init__(sender)
        self.sender = sender


@dataclass(frozen=True)
class UiSession:
    user: str
    nonce: str
    csrf: str

    @property
    def actor(self) -> str:
        """Who changes made in this session are recorded as (audit log, timelines)."""
        return f"ui:{self.user}"


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
    claims = {
        "u": USER,
        "iat": int(time.time()),
        "n": secrets.token_urlsafe(16),
        "g": sluice.credentials.login_generation(),
    }
    payload = _b64(orjson.dumps(claims))
    return f"{payload}.{_sign(sluice, payload)}"


def _csrf_for(sluice: Sluice, nonce: str) -> str:
    return _b64(hmac.new(_key(sluice, "csrf"), nonce.encode(), hashlib.sha256).digest())


def read_cookie(sluice: Sluice, value: str | None) -> UiSession | None:
    """The session the cookie proves, or None for a missing, forged or expired one, or
    one of an earlier login generation (logged out, or the password changed since)."""
    if not value or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(sluice, payload).encode()):
        return None
    try:
        data = orjson.loads(_unb64(payload))
        issued, user, nonce = int(data["iat"]), str(data["u"]), str(data["n"])
        generation = str(data["g"])
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= time.time() - issued < MAX_AGE:
        return None
    current = sluice.credentials.login_generation()
    if not hmac.compare_digest(generation.encode(), current.encode()):
        return None
    return UiSession(user=user, nonce=nonce, csrf=_csrf_for(sluice, nonce))


def session_of(request: Request) -> UiSession:
    """The logged-in session; raises LoginRequired. Checked once per request (the
    route and the page it renders ask both)."""
    found = getattr(request.state, "ui_session", None)
    if found is None:
        found = read_cookie(sluice_of(request), request.cookies.get(COOKIE))
        if found is None:
            raise LoginRequired
        request.state.ui_session = found
    return found


def check_csrf(request: Request, token: str | None) -> UiSession:
    """The session of a state-changing request: from this site, logged in, and with
    the session's CSRF token. Raises CrossSiteRequest, LoginRequired or BadCsrfToken."""
    check_origin(request)
    session = session_of(request)
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise BadCsrfToken
    return session


SAME_SITE_FETCHES = ("same-origin", "none")
"""`Sec-Fetch-Site` values of a request made by our own pages, or typed by the user."""


def check_origin(request: Request) -> None:
    """Refuse a request sent by another site's page (CrossSiteRequest).

    With an `Origin` header, it must be this site: the origin of SLUICE_PUBLIC_URL, or
    the one the request was addressed to (its scheme and `Host`). Without one, a
    `Sec-Fetch-Site` header must say same-origin or none. A request with neither
    (an old browser, a script) passes here; the CSRF token still has to be right.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        if _normal(origin) not in _own_origins(request):
            raise CrossSiteRequest(origin)
        return
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCHES:
        raise CrossSiteRequest(f"a {fetch_site} page")


def _own_origins(request: Request) -> set[str]:
    public = urlsplit(sluice_of(request).settings.public_url)
    scheme = "https" if is_https(request) else request.url.scheme
    return {
        _normal(f"{public.scheme}://{public.netloc}"),
        _normal(f"{scheme}://{request.headers.get('host', '')}"),
    }


def _normal(origin: str) -> str:
    """`scheme://host[:port]`, lower case, without the scheme's default port."""
    origin = origin.strip().lower().rstrip("/")
    for default in ("http://*:80", "https://*:443"):
        scheme, port = default.split("*")
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin


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
