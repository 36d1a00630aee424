"""Email addresses: the one form by which a visitor is found, and the mailboxes of a
message (`from`, `reply_to`, `to`) checked and made ready for SMTP.

A domain is kept in its ASCII form: a Unicode domain (`bücher.example`) becomes its
IDNA form (`xn--bcher-kva.example`, UTS #46 mapping, IDNA 2008, by the `idna`
package), so both spellings are one visitor and one SMTP recipient. Local parts must
be ASCII: Sluice does not use SMTPUTF8 (RFC 6531), which many servers refuse.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import formataddr, unquote

import idna

MAX_EMAIL = 320
"""Longest mailbox accepted (RFC 3696 errata: 64 for the local part, 255 the domain)."""
MAX_VISITOR_EMAIL = 254
"""Longest visitor address: what fits an SMTP path (RFC 5321 §4.5.3.1.3, 256 with <>)."""
MAX_LOCAL_PART = 64
"""RFC 5321 §4.5.3.1.1."""
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
"""RFC 5322 §3.2.3 dot-atom: no leading, trailing or doubled dot, no quoting."""
_LINE_BREAK = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
"""What `str.splitlines` breaks at: a header value holding one could add headers."""
_NAMED = re.compile(r"^(?P<name>.*)<(?P<address>[^<>]*)>$", re.DOTALL)


class AddressError(ValueError):
    """An address that cannot be used; the message says why, for the one who wrote it."""


def ascii_domain(domain: str) -> str:
    """`domain` lower-cased, in its IDNA ASCII form if it has non-ASCII characters.

    Raises `AddressError` for a domain that has no IDNA form."""
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise AddressError(f"the domain {domain!r} is not a valid domain name ({error})") from None


def visitor_email(value: str) -> str:
    """A visitor's address as stored: stripped, the domain in its ASCII form.

    The one check of "is this an address Sluice can send to", used wherever a
    visitor's address comes in (events, Bento items and imports, `change_email`,
    `batch/emails` recipients, the CLI). The local part keeps its case (it is the
    recipient's to decide). Raises `AddressError` unless the value is
    `local@domain.tld` where `local` is an RFC 5322 dot-atom of ASCII characters of
    at most 64, the domain has at least two labels and is a valid IDNA 2008 name
    (UTS #46; labels of letters, digits and inner hyphens, at most 63 characters, a
    valid `xn--` form; no trailing dot), and the whole is at most 254 characters."""
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if at and not local.isascii():
        raise AddressError(
            f"{value[:100]!r}: the part before @ must be ASCII (SMTPUTF8 is not used)"
        )
    if not at or not _DOT_ATOM.match(local) or "." not in domain or domain.endswith("."):
        raise AddressError(f"not an email address: {value[:100]!r}")
    if len(local) > MAX_LOCAL_PART:
        raise AddressError(f"the part before @ is longer than {MAX_LOCAL_PART} characters")
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise AddressError(
            f"the domain {domain[:100]!r} is not a valid domain name ({error})"
        ) from None
    value = f"{local}@{domain}"
    if len(value) > MAX_VISITOR_EMAIL:
        raise AddressError(f"longer than {MAX_VISITOR_EMAIL} characters")
    return value


def stored_email(email: str) -> str:
    """`visitor_email` for an address already checked, or one that never was (a
    look-up): an address whose domain has no IDNA form is only stripped. Never raises."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    try:
        return f"{local}@{ascii_domain(domain)}" if at else email
    except AddressError:
        return email


def email_key(email: str) -> str:
    """The form by which a visitor is found (the unique `visitors.email_key`): the
    address stripped and lower-cased, the domain in its ASCII form; the same for
    `Anna@Bücher.example` and `anna@xn--bcher-kva.example`.

    Never raises: it also reads look-ups (a search, an API query), and an address
    whose domain has no IDNA form is only lower-cased, which finds no visitor."""
    return stored_email(email).lower()


@dataclass(frozen=True)
class Mailbox:
    """One mailbox of a message: `address` for the SMTP envelope, `header` for the
    From/To/Reply-To header (display name quoted or RFC 2047-encoded as needed)."""

    address: str
    header: str


@functools.lru_cache(maxsize=1024)  # the same senders, over and over: parsed once
def mailbox(value: str) -> Mailbox:
    """Read `Name <local@domain>` or `local@domain` as one mailbox.

    The display name is taken as written, up to the final `<…>`: names rendered from
    data (`Doe, Jr.`) are rarely quoted, and a comma in an unquoted name would
    otherwise split it into two addresses. The address itself is parsed by
    `email.headerregistry.Address`. Raises `AddressError` for a line break anywhere
    (it would let the value add headers), an empty value, more than one address, a
    non-ASCII local part or a domain without an IDNA form."""
    if _LINE_BREAK.search(value):
        raise AddressError(f"contains a line break: {value[:100]!r}")
    value = value.strip()
    if not value:
        raise AddressError("no address given")
    named = _NAMED.match(value)
    name, spec = (named["name"].strip(), named["address"].strip()) if named else ("", value)
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = unquote(name)
    if not spec.rpartition("@")[0].isascii():
        raise AddressError(f"{spec!r}: the part before @ must be ASCII (SMTPUTF8 is not used)")
    try:
        parsed = Address(addr_spec=spec)
    except (ValueError, IndexError, AttributeError, HeaderParseError):  # the parser raises all
        raise AddressError(f"not an email address: {value[:100]!r}") from None
    if not parsed.username or not parsed.domain:
        raise AddressError(f"not an email address: {value[:100]!r}")
    address = f"{Address(username=parsed.username).addr_spec}@{ascii_domain(parsed.domain)}"
    if len(address) > MAX_EMAIL:
        raise AddressError(f"longer than {MAX_EMAIL} characters")
    try:
        return Mailbox(address, formataddr((name, address), charset="utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, which no encoding can carry
        raise AddressError(f"the name is not valid Unicode: {name[:100]!r}") from None


def message_id_domain(mail_from: str) -> str:
    """The right-hand side of the Message-IDs Sluice makes: the ASCII domain of the
    `SLUICE_MAIL_FROM` mailbox (checked when the settings are read)."""
    return mailbox(mail_from).address.rpartition("@")[2]
