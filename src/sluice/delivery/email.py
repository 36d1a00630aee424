"""The MIME message of an email delivery, built with the standard library.

The engine rendered the payload (to, from, reply_to, subject, html, text,
transactional, track, unsubscribe_url, message_id); here it becomes a message:
CSS inlined into the HTML (mail clients drop `<style>` blocks), tracking added when
the step asks for it, a `multipart/alternative` of the text and the HTML, and the
one-click unsubscribe headers of RFC 8058 on marketing mail.

The message is built with `email.mime` and the `compat32` policy: the modern
`EmailMessage` parses and refolds every header it is given, which made building a
message cost several times more than sending it. So the headers are made safe here
instead: line breaks removed from text, an address with a line break refused,
addresses read by `addresses.mailbox` (display names quoted, domains in IDNA form),
non-ASCII text encoded (RFC 2047), and the parts are quoted-printable, so the whole
message is 7-bit ASCII.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime
from typing import Any

import css_inline

from sluice.addresses import AddressError, mailbox
from sluice.definitions.limits import html_depth_problem
from sluice.delivery.tracking import Tracker

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
"""Never fetch a stylesheet named in a template: sending must not reach out to URLs
that a template author chose."""
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP
_WIRE = compat32.clone(linesep="\r\n", max_line_length=998)
"""Headers are folded only where SMTP requires it (998 characters), so that a long
`List-Unsubscribe` URL stays on its header's line, where every client reads it."""


class InvalidMessage(ValueError):
    """The payload cannot become a valid message; sending it again would not help."""


@dataclass(frozen=True)
class Envelope:
    """A message ready for SMTP: the envelope addresses and the bytes to send."""

    sender: str
    recipient: str
    data: bytes


def build_message(payload: dict[str, Any], *, date: datetime, tracker: Tracker | None) -> Envelope:
    sender, from_header = _address(payload.get("from"), "from")
    recipient, to_header = _address(payload.get("to"), "to")
    html, text = payload.get("html"), payload.get("text") or ""
    if html:
        message = MIMEMultipart("alternative")
        message.attach(MIMEText(text, "plain", _UTF8))
        message.attach(MIMEText(_html(payload, html, tracker), "html", _UTF8))
    else:
        message = MIMEText(text, "plain", _UTF8)
    message["Message-ID"] = _one_line(payload["message_id"])
    message["Date"] = format_datetime(date)
    message["From"] = from_header
    message["To"] = to_header
    if payload.get("reply_to"):
        message["Reply-To"] = _address(payload["reply_to"], "reply_to")[1]
    message["Subject"] = _text(payload.get("subject") or "")
    unsubscribe = payload.get("unsubscribe_url")
    if unsubscribe and not payload.get("transactional"):
        message["List-Unsubscribe"] = f"<{_one_line(unsubscribe)}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return Envelope(sender, recipient, message.as_bytes(policy=_WIRE))


def inline_css(html: str) -> str:
    """The HTML with its `<style>` rules moved into `style` attributes, as it is sent
    (and as previews show it). Raises InvalidMessage for HTML nested deeper than
    `limits.MAX_HTML_DEPTH`, which the inliner would crash the process on (rendering
    refuses it first; this guards deliveries stored before that check)."""
    if too_deep := html_depth_problem(html):
        raise InvalidMessage(f"html: {too_deep}")
    return _INLINER.inline(html)


def _html(payload: dict[str, Any], html: str, tracker: Tracker | None) -> str:
    html = inline_css(html)
    if tracker is not None and payload.get("track"):
        keep = (payload["unsubscribe_url"],) if payload.get("unsubscribe_url") else ()
        html = tracker.add_tracking(html, payload["message_id"], keep=keep)
    return html


def _one_line(value: str) -> str:
    """No line breaks in a header: they would let a value add headers of its own."""
    return " ".join(str(value).split())


def _text(value: str) -> str:
    value = _one_line(value)
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(value: str | None, name: str) -> tuple[str, str]:
    """The bare address (for the SMTP envelope) and the header form of one mailbox."""
    try:
        found = mailbox(value or "")
    except AddressError as error:
        raise InvalidMessage(f"{name}: {error}") from None
    return found.address, found.header
