"""Open and click tracking: the signed links put into an email at send time, and the
reading of them when they come back (`api/tracking.py`).

A tracking token names the email by its Message-ID (and, for a click, the URL to go
to) and is signed with the signing key, so a tampered token is refused and the click
endpoint can never be used to redirect anywhere else (no open redirect).

Only `http(s)` links in `href` attributes of the HTML part are rewritten; the
one-click unsubscribe link is left alone (it is signed already and is not a click
to count), and so are `mailto:`, `tel:` and in-page anchors. The text part is left
as it is.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from sluice import links

OPEN, CLICK = "open", "click"

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Tracker:
    public_url: str
    key: bytes

    def open_url(self, message_id: str) -> str:
        token = links.sign(self.key, {"a": OPEN, "m": message_id})
        return f"{self.public_url.rstrip('/')}/o/{token}"

    def click_url(self, message_id: str, url: str) -> str:
        token = links.sign(self.key, {"a": CLICK, "m": message_id, "u": url})
        return f"{self.public_url.rstrip('/')}/c/{token}"

    def add_tracking(self, body: str, message_id: str, *, keep: tuple[str, ...] = ()) -> str:
        """The HTML with its links sent through the click endpoint and an open pixel
        at the end of the body. URLs in `keep` are left as they are."""

        def rewrite(match: re.Match) -> str:
            url = html.unescape(match[3]).strip()
            if not url.lower().startswith(("http://", "https://")) or url in keep:
                return match[0]
            tracked = html.escape(self.click_url(message_id, url), quote=True)
            return f"{match[1]}{match[2]}{tracked}{match[2]}"

        body = _HREF.sub(rewrite, body)
        pixel = (
            f'<img src="{html.escape(self.open_url(message_id))}" width="1" height="1" '
            'alt="" style="display:block;border:0;width:1px;height:1px">'
        )
        ends = list(_BODY_END.finditer(body))
        if ends:
            at = ends[-1].start()
            return body[:at] + pixel + body[at:]
        return body + pixel

    def read(self, token: str, action: str) -> dict[str, Any] | None:
        """The contents of a tracking token for `action`, or None if it is not one
        (tampered, unsigned, or made for something else)."""
        payload = links.verify(self.key, token)
        if payload is None or payload.get("a") != action or not isinstance(payload.get("m"), str):
            return None
        if action == CLICK:
            url = payload.get("u")
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                return None
        return payload
