"""Signed links: one-click unsubscribe, open pixel, click redirects.

A link carries its data and an HMAC of it; a link whose signature does not match is
refused, so nobody can unsubscribe someone else or bounce through our redirects.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from urllib.parse import urlencode

import idna
import orjson

from sluice.addresses import email_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: dict) -> str:
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(mac)}"


def verify(key: bytes, token: str) -> dict | None:
    """The payload of a token signed with `key`, or None for a tampered or unsigned one."""
    try:
        body_part, mac_part = token.split(".", 1)
        body = _unb64(body_part)
        expected = hmac.new(key, body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(expected, _unb64(mac_part)):
            return None
        payload = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def unsubscribe_url(public_url: str, key: bytes, visitor_uuid: str) -> str:
    token = sign(key, {"v": visitor_uuid, "a": "unsubscribe"})
    return f"{public_url.rstrip('/')}/u?{urlencode({'t': token})}"


def email_hash(email: str) -> str:
    """The anonymous form of an address kept after erasure: a hash of its `email_key`,
    so any spelling of the address (case, Unicode or IDNA domain) matches it."""
    return hashlib.sha256(email_key(email).encode()).hexdigest()


def email_hashes(email: str) -> set[str]:
    """The hashes under which the erasure of `email` may be recorded: `email_hash`, and
    for an IDNA domain also the hash of its Unicode form, which is what Sluice hashed
    before domains were kept in IDNA form (migration 0005): such an erasure still counts."""
    key = email_key(email)
    hashes = {email_hash(email)}
    local, _, domain = key.rpartition("@")
    if "xn--" in domain:
        with contextlib.suppress(idna.IDNAError):
            legacy = f"{local}@{idna.decode(domain)}"
            hashes.add(hashlib.sha256(legacy.encode()).hexdigest())
    return hashes
