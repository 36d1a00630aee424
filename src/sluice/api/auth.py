"""Authentication of API requests (SPEC §3.3, §3.4).

Bento's API takes HTTP Basic with `publishable_key:secret_key`, and the request's
`site_uuid` (query or body) must be this installation's. The native API takes
`Authorization: Bearer SECRET_KEY` or the same Basic pair, or else the web UI's
session cookie together with the page's CSRF token in `X-CSRF-Token` (so the flow
builder calls the same endpoints as everyone else, issue 11): a cookie alone never
authenticates, since a browser sends it along with requests other sites make. A
failure is 401 with a `WWW-Authenticate` challenge and a message that says what was
wrong, never which part of a key was.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from sluice.api.errors import ApiError
from sluice.service import Sluice

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="sluice"'}
_COOKIE_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sluice"'}
"""For a request that came with the UI's cookie: a Basic challenge would make the
browser ask for a user name and password in a dialog of its own."""
API_ACTOR = "api"
"""Who changes made with a key are recorded as (audit log `actor`, timeline `by`)."""


class _Basic(HTTPBasic):
    """Declares the scheme in the OpenAPI document; the header is read below."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


class _Bearer(HTTPBearer):
    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


basic_scheme = _Basic(
    auto_error=False,
    scheme_name="basic",
    description="The publishable key as user name and the secret key as password.",
)
bearer_scheme = _Bearer(
    auto_error=False, scheme_name="bearer", description="`Authorization: Bearer SECRET_KEY`."
)


def sluice_of(request: Request) -> Sluice:
    return request.app.state.sluice


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers=_CHALLENGE)


def actor_of(request: Request) -> str:
    """Who the request's changes are recorded as: `api` with a key, the UI's name of
    its user (`ui:admin`) with the UI's cookie."""
    return getattr(request.state, "actor", API_ACTOR)


def _basic_pair(request: Request) -> tuple[str, str] | None:
    """The Basic credentials; 401 for a malformed header (FastAPI's own check would
    answer without our message)."""
    scheme, param = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(param, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise unauthorized("malformed Basic credentials") from None
    if not colon:
        raise unauthorized("malformed Basic credentials: expected publishable_key:secret_key")
    return user, password


def require_key(
    request: Request,
    _basic: Annotated[None, Depends(basic_scheme)] = None,
    _bearer: Annotated[None, Depends(bearer_scheme)] = None,
) -> None:
    """The native API: Bearer secret key, the Basic pair, or the UI's cookie with its
    CSRF token (`_ui_session`)."""
    credentials = sluice_of(request).credentials
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer":
        if not token or not credentials.check_api_key(None, token):
            raise unauthorized("invalid secret key")
        return
    pair = _basic_pair(request)
    if pair is None:
        actor = _ui_actor(request)
        if actor is None:
            raise unauthorized("authentication required: Authorization: Bearer SECRET_KEY")
        request.state.actor = actor
        return
    if not credentials.check_api_key(*pair):
        raise unauthorized("invalid publishable key or secret key")


def _ui_actor(request: Request) -> str | None:
    """The actor of a request authenticated by the UI's session cookie (None without
    one). The cookie counts only with the session's CSRF token in `X-CSRF-Token`, sent
    from this site (the rules of the UI's own forms, ui/auth.py); else 401, or 403 for
    a wrong token or a request from another site."""
    from sluice.ui import auth as ui_auth  # the UI builds on the API: imported late

    if ui_auth.COOKIE not in request.cookies:
        return None
    token = request.headers.get("x-csrf-token")
    if not token:
        raise ApiError(
            401,
            "the UI's session cookie counts only with the page's X-CSRF-Token header "
            "(or use Authorization: Bearer SECRET_KEY)",
            headers=_COOKIE_CHALLENGE,
        )
    try:
        session = ui_auth.check_csrf(request, token)
    except ui_auth.LoginRequired:
        raise ApiError(
            401, "the UI's session has ended or expired: log in again", headers=_COOKIE_CHALLENGE
        ) from None
    except ui_auth.BadCsrfToken:
        raise ApiError(403, "X-CSRF-Token is not this session's token: reload the page") from None
    except ui_auth.CrossSiteRequest as error:
        raise ApiError(403, f"sent from another site ({error.sender}): refused") from None
    return session.actor


def require_bento_key(
    request: Request, _basic: Annotated[None, Depends(basic_scheme)] = None
) -> None:
    """Bento's API: the Basic pair."""
    pair = _basic_pair(request)
    if pair is None:
        raise unauthorized("authentication required: HTTP Basic with publishable_key:secret_key")
    if not sluice_of(request).credentials.check_api_key(*pair):
        raise unauthorized("invalid publishable key or secret key")


def check_site(request: Request, body: object = None) -> None:
    """The `site_uuid` of the query, else of the body, must be this site's."""
    given = request.query_params.get("site_uuid")
    if given is None and isinstance(body, dict):
        given = body.get("site_uuid")
    if given is None:
        raise unauthorized("site_uuid is missing (give it in the query or the body)")
    expected = sluice_of(request).secret("site_uuid")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise unauthorized("site_uuid does not match this installation")
