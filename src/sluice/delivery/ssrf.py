"""Protection against server-side request forgery for webhooks.

A webhook URL is written by whoever edits flows, and templates can put anything into
it, so a request must not reach the machine it runs on or the private network behind
it (databases, cloud metadata at 169.254.169.254 …) unless the operator allows it
(`SLUICE_WEBHOOK_ALLOW_PRIVATE`).

Checking the name before the request is not enough: DNS can answer differently the
second time (rebinding). So the check happens where the connection is made: the
name is resolved once, every address it resolves to is checked, and the connection
goes to a checked address. TLS still verifies the certificate against the name and
the `Host` header is unchanged, because only the resolver is replaced. Redirects are
not followed (see webhooks.py), so there is no second destination to check.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PrivateAddress(Exception):
    """The destination is on a loopback, private, link-local or otherwise non-public
    address, and such webhooks are not allowed."""


def refusal(address: IPAddress) -> str | None:
    """Why a connection to `address` is refused, or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, refused in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    ):
        if refused:
            return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    return None


def check(host: str, addresses: Iterable[str]) -> None:
    """PrivateAddress unless every one of the addresses `host` resolved to is public."""
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason:
            raise PrivateAddress(
                f"refused: {host} resolves to {text}, {reason} "
                "(set SLUICE_WEBHOOK_ALLOW_PRIVATE to allow)"
            )


class GuardedResolver(ThreadedResolver):
    """aiohttp's resolver with the check after resolving: aiohttp then connects to one
    of the addresses returned, which are the checked ones."""

    async def resolve(self, host: str, port: int = 0, family=socket.AF_INET) -> list[ResolveResult]:
        resolved = await super().resolve(host, port, family)
        check(host, [result["host"] for result in resolved])
        return resolved


def connector(
    *, allow_private: bool, limit: int, tls: ssl.SSLContext | None = None
) -> aiohttp.TCPConnector:
    """Connections for webhooks: only to public addresses, unless `allow_private`;
    certificates checked against `tls` (else the system's trusted authorities)."""
    resolver = ThreadedResolver() if allow_private else GuardedResolver()
    return aiohttp.TCPConnector(limit=limit, resolver=resolver, ssl=tls or True)


def check_literal(host: str) -> None:
    """PrivateAddress if `host` is an IP address that is not public. aiohttp connects
    to an address written in the URL without asking the resolver, so such URLs are
    checked before the request; there is nothing to rebind."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    check(host, [host])
