"""What the broadcast pages say about a broadcast (a view of `Sluice.broadcast`): its
audience and time in words, its progress and results as figures, a sentence of where
it stands (the page's live region says it), whether it is still moving (the page asks
again every few seconds while it is) and whether it can still be cancelled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sluice.service import Sluice
from sluice.store.broadcasts import BroadcastStatus
from sluice.ui.render import environment

_when = environment.filters["when"]


def audience_text(view: dict[str, Any], segment_names: dict[str, str]) -> str:
    """`Customers` (the segment's name) or `everyone`, with its tag filters:
    `Customers, with tag vip or beta, without tag trial`."""
    key = view["segment"]
    said = [segment_names.get(key, key) if key else "everyone"]
    if view["inclusive_tags"]:
        said.append("with tag " + " or ".join(view["inclusive_tags"]))
    if view["exclusive_tags"]:
        said.append("without tag " + " or ".join(view["exclusive_tags"]))
    return ", ".join(said)


def when_text(view: dict[str, Any]) -> str:
    """`2026-03-03 09:00 UTC`; `09:00 in each visitor's zone on 2026-03-03`; or, for a
    draft, `not scheduled` (with its local time, when it has one)."""
    local, send_at = view["local_time"], view["send_at"]
    if send_at is None:
        return f"not scheduled (at {local} in each visitor's zone)" if local else "not scheduled"
    if local:
        return f"{local} in each visitor's zone on {datetime.fromisoformat(send_at).date()}"
    return _when(send_at)


def moving(view: dict[str, Any]) -> bool:
    """Whether its numbers still change on their own: being queued, or emails of it
    waiting for their hour or local time."""
    status = view["status"]
    waiting = status == BroadcastStatus.SENT and view["stats"]["pending"] > 0
    return status in (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING) or waiting


def cancellable(view: dict[str, Any]) -> bool:
    """Whether Cancel can stop something: anything not sent yet, or a sent one whose
    emails wait for their hour or local time (store/broadcasts.py, `cancel`)."""
    return view["status"] == BroadcastStatus.DRAFT or moving(view)


def figures(view: dict[str, Any], audience: dict[str, Any]) -> dict[str, int]:
    """The numbers of the progress and results cards, by name (`data-stat`). `sent`
    counts those kept in the outbox too (no SMTP server): they left the queue."""
    stats = view["stats"]
    return {
        "audience": audience["members"],
        "queued": stats["queued"],
        "sent": stats["sent"] + stats["outbox"],
        "outbox": stats["outbox"],
        "pending": stats["pending"],
        "failed": stats["failed"],
        "skipped": stats["skipped"],
        "skipped_unsubscribed": stats["skipped_unsubscribed"],
        "skipped_suppressed": stats["skipped_suppressed"],
        "failed_to_render": stats["failed_to_render"],
        "opened": stats["opened"],
        "clicked": stats["clicked"],
        "unsubscribed": stats["unsubscribed"],
    }


def sentence(view: dict[str, Any], numbers: dict[str, int], now: datetime) -> str:
    """Where the broadcast stands, in one sentence."""
    queued, sent, pending = numbers["queued"], numbers["sent"], numbers["pending"]
    match view["status"]:
        case BroadcastStatus.DRAFT:
            return "A draft: nothing is sent until it is sent or scheduled."
        case BroadcastStatus.SCHEDULED if view["local_time"] or _due(view) > now:
            return f"Scheduled for {when_text(view)}: nothing is queued yet."
        case BroadcastStatus.SCHEDULED:
            return "Sending now: the worker starts queueing it in a moment."
        case BroadcastStatus.SENDING:
            return (
                f"Sending: {queued:,} queued so far, of an audience of "
                f"{numbers['audience']:,}; {sent:,} sent."
            )
        case BroadcastStatus.SENT:
            waiting = f", {pending:,} waiting for their time" if pending else ""
            return f"Sent: {queued:,} queued, {sent:,} sent{waiting}."
    return f"Cancelled: {sent:,} sent before, {numbers['skipped']:,} not sent."


def _due(view: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(view["send_at"])


def progress(sluice: Sluice, view: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows of the broadcast's progress, as its script gets it
    (`/ui/broadcasts/{id}/progress`)."""
    audience = sluice.broadcast_audience(
        view["segment"], view["inclusive_tags"], view["exclusive_tags"]
    )
    numbers = figures(view, audience)
    return {
        "status": view["status"],
        "moving": moving(view),
        "cancellable": cancellable(view),
        "sentence": sentence(view, numbers, sluice.clock.now()),
        "figures": numbers,
        "last_error": view["last_error"],
    }
