"""Protection against server-side request forgery for webhooks.

A webhook URL is written by whoever edits flows, and templates can put anything into
it, so a request must not reach the machine it runs on or the private network behind
it (databases, cloud metadata at 169.254.169.254 …) unless the operator allows it
(`SLUICE_WEBHOOK_ALLOW_PRIVATE`).

Checking the name before the request is not enough: DNS can answer differently the
second time (rebinding). So the check happens where the connection is made: the
name is resolved once, every address it resolves to is checked, and the connection
goes to a checked address. TLS still verifies the certificate against the name and
the `Host` header is unchanged, because only the transport's connect step is
replaced. Redirects are not followed (see webhooks.py), so there is no second
destination to check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

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


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the check between resolving and connecting
    (skipped when private addresses are allowed: the connection is made the same way)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not self._allow_private:
            check(host, addresses)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise PrivateAddress("refused: unix sockets are not webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that connects only to public addresses, unless
    `allow_private`.

    httpx takes no network backend, so the connection pool it made is replaced by one
    with the guarded backend and the same limits."""

    def __init__(self, *, limits: httpx.Limits, tls: ssl.SSLContext, allow_private: bool):
        super().__init__(limits=limits, verify=tls, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow_private=allow_private),
        )
