"""Sending email over SMTP (`SLUICE_SMTP_URL`) with aiosmtplib.

`smtp://user:pass@host:port` upgrades with STARTTLS when the server offers it;
`smtps://…` speaks TLS from the start. Answers are classified as SMTP means them:
4xx is temporary (retried), 5xx permanent (a final failure carrying the server's
answer); a connection that cannot be made or is lost, and a timeout, are retried.

Connections are kept open and reused for the next message (up to `connections` at
once), since opening one (TCP, EHLO, STARTTLS, AUTH) costs far more than sending a
message over it. A connection that failed in any way is closed, never reused; an idle
one that the server closed meanwhile is replaced without counting as an attempt.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import aiosmtplib

from sluice.delivery import network, retry
from sluice.delivery.email import Envelope, InvalidMessage, build_message
from sluice.delivery.sender import Attempt, TimelineKinds, Verdict
from sluice.delivery.tracking import Tracker
from sluice.store.deliveries import Delivery

IDLE_SECONDS = 30.0
"""A pooled connection idle for longer is closed rather than reused."""


@dataclass(frozen=True, kw_only=True)
class SmtpServer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """`smtp://[user:pass@]host[:port]` (port 25) or `smtps://…` (port 465)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"SLUICE_SMTP_URL must be smtp://host:port or smtps://…, not {url!r}")
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit_tls,
        )


class SmtpSender:
    kind = "email"
    timeline = TimelineKinds(
        sent="email_sent",
        attempt_failed="email_attempt_failed",
        failed="email_failed",
        skipped="email_skipped",
    )

    def __init__(
        self,
        server: SmtpServer,
        *,
        tracker: Tracker | None,
        connections: int = 20,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ):
        self.server, self.tracker = server, tracker
        self.connections, self.timeout, self.tls_context = connections, timeout, tls_context
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._slots = asyncio.Semaphore(connections)

    def destination(self, delivery: Delivery) -> str:
        return "smtp"  # every email goes to the one server

    def first_delay(self, delivery: Delivery) -> timedelta:
        return retry.EMAIL_FIRST_DELAY

    async def attempt(self, delivery: Delivery, now: datetime) -> Attempt:
        payload = delivery.payload
        if not payload.get("transactional") and not delivery.subscribed:
            return Attempt(Verdict.SKIPPED, {"reason": "unsubscribed"})
        try:
            envelope = build_message(payload, date=now, tracker=self.tracker)
        except InvalidMessage as error:
            return Attempt(Verdict.FAILED, error=str(error))
        try:
            await self._send(envelope)
        except aiosmtplib.SMTPRecipientsRefused as error:
            return _answer(error.recipients[0])
        except aiosmtplib.SMTPResponseException as error:
            return _answer(error)
        except aiosmtplib.SMTPNotSupported as error:
            return Attempt(Verdict.FAILED, error=str(error))
        except (aiosmtplib.SMTPException, OSError) as error:
            return Attempt(Verdict.RETRY, error=_describe(error, self.server, self.timeout))
        return Attempt(
            Verdict.SENT,
            {
                "transport": "smtp",
                "message_id": payload["message_id"],
                "to": payload["to"],
                "subject": payload["subject"],
            },
        )

    async def _send(self, envelope: Envelope) -> None:
        async with self._slots:
            pooled = self._reusable()
            if pooled is not None:
                try:
                    await _transmit(pooled, envelope)
                except aiosmtplib.SMTPServerDisconnected:
                    pooled.close()  # closed while idle: try once on a new connection
                except BaseException:
                    pooled.close()
                    raise
                else:
                    self._idle.append((pooled, time.monotonic()))
                    return
            smtp = aiosmtplib.SMTP(
                hostname=self.server.host,
                port=self.server.port,
                username=self.server.username,
                password=self.server.password,
                use_tls=self.server.implicit_tls,
                start_tls=False if self.server.implicit_tls else None,
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
            try:
                await smtp.connect()
                await _transmit(smtp, envelope)
            except BaseException:
                smtp.close()
                raise
            self._idle.append((smtp, time.monotonic()))

    def _reusable(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            smtp, since = self._idle.pop()
            if smtp.is_connected and time.monotonic() - since < IDLE_SECONDS:
                return smtp
            smtp.close()
        return None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            try:
                await smtp.quit(timeout=2)
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
        self._slots = asyncio.Semaphore(self.connections)


class SendFailed(Exception):
    """A message sent at once (`send_now`) was not accepted; the message says why."""


async def send_now(server: SmtpServer, envelope: Envelope, *, timeout: float = 30.0) -> None:
    """Send one message on a connection of its own, now, without retries: a test send
    (`POST /api/emails/test`), whose sender waits for the outcome. Raises SendFailed
    with the server's answer or what went wrong on the way, in the words of the
    delivery timeline."""
    smtp = aiosmtplib.SMTP(
        hostname=server.host,
        port=server.port,
        username=server.username,
        password=server.password,
        use_tls=server.implicit_tls,
        start_tls=False if server.implicit_tls else None,
        timeout=timeout,
    )
    try:
        await smtp.connect()
        await _transmit(smtp, envelope)
        await smtp.quit()
    except aiosmtplib.SMTPRecipientsRefused as error:
        raise SendFailed(_answer(error.recipients[0]).error) from None
    except aiosmtplib.SMTPResponseException as error:
        raise SendFailed(_answer(error).error) from None
    except (aiosmtplib.SMTPException, OSError) as error:
        raise SendFailed(_describe(error, server, timeout)) from None
    finally:
        if smtp.is_connected:
            smtp.close()


async def _transmit(smtp: aiosmtplib.SMTP, envelope: Envelope) -> None:
    await smtp.sendmail(envelope.sender, [envelope.recipient], envelope.data)


def _answer(error: aiosmtplib.SMTPResponseException) -> Attempt:
    """A refusal from the server: 5xx is permanent, anything else is retried."""
    answer = f"{error.code} {error.message}".strip().replace("\x00", "\ufffd")
    verdict = Verdict.FAILED if 500 <= error.code < 600 else Verdict.RETRY
    return Attempt(verdict, {"status": error.code}, error=answer)


def _describe(error: Exception, server: SmtpServer, timeout: float) -> str:
    """One line for the timeline, naming the server: "SMTP server HOST:PORT: could not
    resolve HOST", "…: cannot connect to HOST:PORT: Connection refused", "…: closed the
    connection", "…: sent no greeting within 30s" …"""
    cause = error.__cause__ if isinstance(error, aiosmtplib.SMTPConnectError) else error
    host, port = server.host, server.port
    if isinstance(error, aiosmtplib.SMTPConnectTimeoutError):
        if isinstance(cause, aiosmtplib.SMTPReadTimeoutError):
            why = "sent no greeting"
        else:
            why = f"timed out connecting to {host}:{port}"
        detail = f"{why} within {timeout:g}s"
    elif isinstance(error, aiosmtplib.SMTPTimeoutError):
        detail = f"no answer within {timeout:g}s"
    elif isinstance(cause, aiosmtplib.SMTPServerDisconnected) and "EOF" in str(cause):
        detail = "closed the connection"
    elif isinstance(cause, aiosmtplib.SMTPServerDisconnected | ConnectionResetError):
        detail = "lost the connection"  # reset, or broken
    elif isinstance(cause, OSError):
        detail = network.describe(cause, host, port)
    else:
        detail = str(error) or type(error).__name__
    return f"SMTP server {host}:{port}: {detail}"
