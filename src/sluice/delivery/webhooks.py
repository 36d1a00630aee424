"""Calling webhooks: signed HTTP requests with httpx.

Every request is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with the `standardwebhooks` library; the `webhook-id` is the
delivery's idempotency id, the same on every attempt. A 2xx answer is success, 410
Gone a final failure, and anything else (another status, a timeout, a connection
error, an answer that is not HTTP) is retried. Redirects are not followed: a 3xx is
an answer like any other non-2xx, so a redirect cannot lead past the address check
(ssrf.py). Of each answer only the first 1 KiB is read, for the timeline.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from sluice.clock import Clock, SystemClock
from sluice.definitions.model import RetryPolicy
from sluice.delivery.sender import Attempt, TimelineKinds, Verdict
from sluice.delivery.ssrf import GuardedTransport, PrivateAddress
from sluice.store.deliveries import Delivery

EXCERPT_BYTES = 1024
POOL_CONNECTIONS = 4
"""Connections per httpx client. httpcore's connection pool does work that grows with
the square of its connections on every request, so the attempts in flight are spread
over several small clients instead of one large one."""
MAX_TIMEOUT = 60.0
"""A step's `timeout` is capped here, so an attempt always ends well within the
dispatcher's lease."""
SECRET_PREFIX = "whsec_"


def standard_secret(secret: str) -> str:
    """The signing secret in the Standard Webhooks form, `whsec_` and base64, which is
    what receivers give their verifying library. A secret already in that form is
    used as it is; any other string is taken as the key's bytes."""
    if secret.startswith(SECRET_PREFIX):
        return secret
    return SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


class WebhookSender:
    kind = "webhook"
    timeline = TimelineKinds(
        sent="webhook_delivered",
        attempt_failed="webhook_attempt_failed",
        failed="webhook_failed",
    )

    def __init__(
        self,
        secret: str,
        *,
        allow_private: bool = False,
        connections: int = 500,
        signing_clock: Clock | None = None,
    ):
        self.signer = Webhook(standard_secret(secret))
        self.allow_private, self.connections = allow_private, connections
        self.signing_clock = signing_clock or SystemClock()
        """The signature's timestamp is the real time of sending, whatever the
        dispatcher's clock says: receivers check it against their own clock to refuse
        replays (the reference library allows five minutes either way)."""
        self._clients: list[httpx.AsyncClient] = []
        self._turn = itertools.count()

    def first_delay(self, delivery: Delivery) -> timedelta:
        backoff = delivery.payload.get("backoff")
        return RetryPolicy().backoff if backoff is None else timedelta(seconds=backoff)

    async def attempt(self, delivery: Delivery, now: datetime) -> Attempt:
        request = delivery.payload
        body, content_type = _encode(request.get("body"))
        headers = httpx.Headers(
            {"user-agent": "Sluice", "content-type": content_type, "accept-encoding": "identity"}
        )
        headers.update(request.get("headers") or {})
        headers.update(self._signature(delivery.idempotency_id, body))
        timeout = min(float(request.get("timeout") or 10.0), MAX_TIMEOUT)
        attempt = delivery.attempts + 1
        try:
            async with asyncio.timeout(timeout):
                async with self.client().stream(
                    request.get("method", "POST"),
                    request["url"],
                    content=body,
                    headers=headers,
                    timeout=timeout,
                ) as response:
                    excerpt = await _excerpt(response)
        except PrivateAddress as error:
            return Attempt(Verdict.FAILED, error=str(error))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            return Attempt(Verdict.FAILED, error=f"invalid URL {request['url']!r}: {error}")
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(Verdict.RETRY, error=f"no answer within {timeout:g}s")
        except (httpx.HTTPError, OSError) as error:
            return Attempt(Verdict.RETRY, error=f"{type(error).__name__}: {error}".rstrip(": "))
        data = {"status": response.status_code, "response": excerpt}
        if response.is_success:
            return Attempt(Verdict.SENT, {**data, "attempt": attempt})
        reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code == 410:
            return Attempt(Verdict.FAILED, data, error=reason)
        if response.is_redirect:
            reason += " (redirects are not followed)"
        return Attempt(Verdict.RETRY, data, error=reason)

    def _signature(self, webhook_id: str, body: bytes) -> dict[str, str]:
        when = self.signing_clock.now()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": self.signer.sign(webhook_id, when, body.decode()),
        }

    def client(self) -> httpx.AsyncClient:
        """The next of the HTTP clients, which are made on first use in the running
        event loop."""
        if not self._clients:
            tls = httpx.create_ssl_context()
            limits = httpx.Limits(
                max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS
            )
            self._clients = [
                httpx.AsyncClient(
                    transport=GuardedTransport(
                        limits=limits, tls=tls, allow_private=self.allow_private
                    ),
                    follow_redirects=False,
                    trust_env=False,
                )
                for _ in range(max(1, math.ceil(self.connections / POOL_CONNECTIONS)))
            ]
        return self._clients[next(self._turn) % len(self._clients)]

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()


def _encode(body: Any) -> tuple[bytes, str]:
    """A string body is sent as it is; anything else as JSON."""
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return orjson.dumps(body), "application/json"


async def _excerpt(response: httpx.Response) -> str:
    """The first 1 KiB of the answer; the rest is never read."""
    received = bytearray()
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= EXCERPT_BYTES:
            break
    return bytes(received[:EXCERPT_BYTES]).decode("utf-8", "replace")
