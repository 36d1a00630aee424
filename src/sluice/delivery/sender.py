"""The contract between the dispatcher and its senders.

A sender makes one attempt at one delivery and says what came of it; it never
touches the database and never decides about retries. The dispatcher turns the
answer into a retry or a final outcome (using the attempt count and the delivery's
`max_attempts`) and records it. Senders are handed to the dispatcher, so tests and
benchmarks can point them at real servers on loopback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sluice.store.deliveries import Delivery


class Verdict(enum.Enum):
    SENT = "sent"
    """Delivered: SMTP accepted the message, or the endpoint answered 2xx."""
    RETRY = "retry"
    """Failed for now (4xx from SMTP, a connection error, a timeout, a 5xx answer …);
    another attempt follows unless this was the last one."""
    FAILED = "failed"
    """Failed for good at once (5xx from SMTP, 410 Gone, a refused address …)."""
    SKIPPED = "skipped"
    """Not sent, on purpose (marketing mail to a visitor who has unsubscribed)."""


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to."""

    verdict: Verdict
    data: dict[str, Any] = field(default_factory=dict)
    """What the timeline shows of this attempt (status, the start of the answer …)."""
    error: str | None = None
    """One line for people: why the attempt failed."""


@dataclass(frozen=True)
class TimelineKinds:
    """The timeline entries a kind of delivery writes."""

    sent: str
    attempt_failed: str
    failed: str
    skipped: str | None = None


class Sender(Protocol):
    kind: str
    """The `deliveries.kind` it sends (`email`, `webhook`)."""
    timeline: TimelineKinds

    def destination(self, delivery: Delivery) -> str:
        """Where the attempt goes (an SMTP server, a webhook's host): answers from one
        destination are compared with each other to tell when it is queueing."""
        ...

    def first_delay(self, delivery: Delivery) -> timedelta:
        """The wait before the second attempt; each next one doubles."""
        ...

    async def attempt(self, delivery: Delivery, now: datetime) -> Attempt:
        """One attempt. Must not raise for a failure of the other side; an exception is
        taken as a bug and the attempt as failed for now."""
        ...

    async def aclose(self) -> None:
        """Close connections; the sender may be used again afterwards."""
        ...
