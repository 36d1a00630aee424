"""The MIME message of an email delivery, built with the standard library.

The engine rendered the payload (to, from, reply_to, subject, html, text,
transactional, track, unsubscribe_url, message_id); here it becomes a message:
CSS inlined into the HTML (mail clients drop `<style>` blocks), tracking added when
the step asks for it, a `multipart/alternative` of the text and the HTML, and the
one-click unsubscribe headers of RFC 8058 on marketing mail.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

import css_inline

from sluice.delivery.tracking import Tracker

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
"""Never fetch a stylesheet named in a template: sending must not reach out to URLs
that a template author chose."""


class InvalidMessage(ValueError):
    """The payload cannot become a valid message; sending it again would not help."""


def build_message(
    payload: dict[str, Any], *, date: datetime, tracker: Tracker | None
) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    try:
        message["Message-ID"] = payload["message_id"]
        message["Date"] = format_datetime(date)
        message["From"] = payload["from"]
        message["To"] = payload["to"]
        if payload.get("reply_to"):
            message["Reply-To"] = payload["reply_to"]
        message["Subject"] = " ".join((payload.get("subject") or "").splitlines())
    except (ValueError, IndexError) as error:
        raise InvalidMessage(f"invalid header: {error}") from error
    unsubscribe = payload.get("unsubscribe_url")
    if unsubscribe and not payload.get("transactional"):
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    html = payload.get("html")
    message.set_content(payload.get("text") or "")
    if html:
        html = _INLINER.inline(html)
        if tracker is not None and payload.get("track"):
            keep = (unsubscribe,) if unsubscribe else ()
            html = tracker.add_tracking(html, payload["message_id"], keep=keep)
        message.add_alternative(html, subtype="html")
    return message
