"""Calling webhooks: signed HTTP requests with aiohttp.

Every request is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with the `standardwebhooks` library; the `webhook-id` is the
delivery's idempotency id, the same on every attempt. A 2xx answer is success, 410
Gone a final failure, and anything else (another status, a timeout, a connection
error, an answer that is not HTTP) is retried. Redirects are not followed: a 3xx is
an answer like any other non-2xx, so a redirect cannot lead past the address check
(ssrf.py). Of each answer only the first 1 KiB is read, for the timeline.

aiohttp rather than httpx: at hundreds of webhooks a second the HTTP client is most
of a worker's CPU, and aiohttp spends about a twentieth of httpx's time per request
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook
from yarl import URL

from sluice.clock import Clock, SystemClock
from sluice.definitions.model import RetryPolicy
from sluice.delivery import network, ssrf
from sluice.delivery.sender import Attempt, TimelineKinds, Verdict
from sluice.store.deliveries import Delivery

EXCERPT_BYTES = 1024
REDIRECTS = {301, 302, 303, 307, 308}
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
        tls_context: ssl.SSLContext | None = None,
    ):
        self.signer = Webhook(standard_secret(secret))
        self.allow_private, self.connections = allow_private, connections
        self.tls_context = tls_context
        """Whom https endpoints must be certified by; the system's trusted authorities
        unless given."""
        self.signing_clock = signing_clock or SystemClock()
        """The signature's timestamp is the real time of sending, whatever the
        dispatcher's clock says: receivers check it against their own clock to refuse
        replays (the reference library allows five minutes either way)."""
        self._session: aiohttp.ClientSession | None = None

    def destination(self, delivery: Delivery) -> str:
        return urlsplit(str(delivery.payload.get("url", ""))).netloc.lower()

    def first_delay(self, delivery: Delivery) -> timedelta:
        backoff = delivery.payload.get("backoff")
        return RetryPolicy().backoff if backoff is None else timedelta(seconds=backoff)

    async def attempt(self, delivery: Delivery, now: datetime) -> Attempt:
        request = delivery.payload
        body, content_type = _encode(request.get("body"))
        headers = CIMultiDict(
            {"user-agent": "Sluice", "content-type": content_type, "accept-encoding": "identity"}
        )
        headers.update({str(k): str(v) for k, v in (request.get("headers") or {}).items()})
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # rendered from a template: no retry can help
                return Attempt(Verdict.FAILED, error=f"header {name} contains a line break")
        headers.update(self._signature(delivery.idempotency_id, body))
        timeout = min(float(request.get("timeout") or 10.0), MAX_TIMEOUT)
        attempt = delivery.attempts + 1
        progress: dict[str, bool] = {}  # "connected" once a connection is made (_tracing)
        try:
            url = _parse(request["url"])
            if not self.allow_private and url.host:
                ssrf.check_literal(url.host)
            async with asyncio.timeout(timeout):
                async with self.session().request(
                    request.get("method", "POST"),
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    trace_request_ctx=progress,
                ) as response:
                    excerpt = await _excerpt(response)
        except ssrf.PrivateAddress as error:
            return Attempt(Verdict.FAILED, error=str(error))
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as error:
            why = getattr(error, "description", None) or "not an absolute http:// or https:// URL"
            return Attempt(Verdict.FAILED, error=f"invalid URL {request['url']!r}: {why}")
        except TimeoutError:
            if not progress.get("connected"):
                where = f"{url.host}:{url.port}"
                return Attempt(
                    Verdict.RETRY, error=f"timed out connecting to {where} ({timeout:g}s)"
                )
            return Attempt(Verdict.RETRY, error=f"no answer within {timeout:g}s")
        except (aiohttp.ClientError, OSError) as error:
            return Attempt(Verdict.RETRY, error=_connection_error(error, url))
        except ValueError as error:  # e.g. a header with a line break: no retry can help
            return Attempt(Verdict.FAILED, error=f"invalid request: {error}")
        data = {"status": response.status, "response": excerpt}
        if 200 <= response.status < 300:
            return Attempt(Verdict.SENT, {**data, "attempt": attempt})
        reason = f"HTTP {response.status} {response.reason or ''}".strip()
        if response.status == 410:
            return Attempt(Verdict.FAILED, data, error=reason)
        if response.status in REDIRECTS:
            reason += " (redirects are not followed)"
        return Attempt(Verdict.RETRY, data, error=reason)

    def _signature(self, webhook_id: str, body: bytes) -> dict[str, str]:
        when = self.signing_clock.now()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": self.signer.sign(webhook_id, when, body.decode()),
        }

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session, made on first use in the running event loop. It keeps no
        cookies: a receiver's cookies must not follow other visitors' webhooks."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=ssrf.connector(
                    allow_private=self.allow_private, limit=self.connections, tls=self.tls_context
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trace_configs=[_tracing()],
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _tracing() -> aiohttp.TraceConfig:
    """Notes in a request's `trace_request_ctx` when it has a connection, so that a
    timeout tells "timed out connecting" from "no answer"."""

    async def connected(session, context, params) -> None:
        context.trace_request_ctx["connected"] = True

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(connected)
    trace.on_connection_reuseconn.append(connected)
    return trace


def _parse(url: str) -> URL:
    try:
        return URL(url)
    except ValueError as error:
        raise aiohttp.InvalidURL(url, str(error).removeprefix(f"{url} - ")) from error


def _encode(body: Any) -> tuple[bytes, str]:
    """A string body is sent as it is; anything else as JSON."""
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return orjson.dumps(body), "application/json"


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    """The first 1 KiB of the answer; the rest is never read. Bytes that are not UTF-8
    text, and NUL (which PostgreSQL cannot store in JSON), become U+FFFD."""
    received = bytearray()
    while len(received) < EXCERPT_BYTES:
        chunk = await response.content.read(EXCERPT_BYTES - len(received))
        if not chunk:
            break
        received += chunk
    return bytes(received).decode("utf-8", "replace").replace("\x00", "\ufffd")


def _connection_error(error: Exception, url: URL) -> str:
    """One line for the timeline: what went wrong on the way to an answer."""
    where = f"{url.host}:{url.port}"
    if isinstance(error, aiohttp.ClientResponseError):  # the answer was not HTTP
        return f"not an HTTP answer: {str(error.message).splitlines()[0].rstrip(':')}"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return network.describe(error.certificate_error, error.host, error.port)
    if isinstance(error, aiohttp.ClientConnectorError):
        return network.describe(error.os_error, error.host, error.port)
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection without answering"
    if isinstance(error, OSError) and error.errno:
        return network.describe(error, url.host or "", url.port)
    return f"{type(error).__name__}: {error}".rstrip(": ")
