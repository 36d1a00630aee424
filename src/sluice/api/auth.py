"""Authentication of API requests (SPEC §3.3, §3.4).

Bento's API takes HTTP Basic with `publishable_key:secret_key`, and the request's
`site_uuid` (query or body) must be this installation's. The native API takes
`Authorization: Bearer SECRET_KEY` or the same Basic pair. A failure is 401 with a
`WWW-Authenticate` challenge and a message that says what was wrong, never which
part of a key was.
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
    """The native API: Bearer secret key, or the Basic pair."""
    credentials = sluice_of(request).credentials
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer":
        if not token or not credentials.check_api_key(None, token):
            raise unauthorized("invalid secret key")
        return
    pair = _basic_pair(request)
    if pair is None:
        raise unauthorized("authentication required: Authorization: Bearer SECRET_KEY")
    if not credentials.check_api_key(*pair):
        raise unauthorized("invalid publishable key or secret key")


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
