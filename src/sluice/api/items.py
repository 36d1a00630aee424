"""The items of Bento's requests, checked one at a time, and Bento's views of ours.

Each checker returns what the library takes (`SubscriberImport`, a command, a
`TransactionalEmail`) or raises `ItemError` naming the fields at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, parseaddr
from typing import TYPE_CHECKING, Any

from sluice.addresses import MAX_EMAIL, AddressError, mailbox, visitor_email
from sluice.api.batch import ItemError
from sluice.api.bodies import nul_paths
from sluice.api.schemas import BentoBroadcast
from sluice.audience import Change, EmailChange, SubscriberImport, TransactionalEmail
from sluice.definitions.durations import check_instant_in_range, parse_instant
from sluice.records import FlowStatus
from sluice.store.broadcasts import NewBroadcast
from sluice.store.ingest import IncomingEvent
from sluice.store.registry import MAX_NAME

if TYPE_CHECKING:
    from sluice.service import Sluice

PLAIN_COMMANDS = ("add_tag", "remove_tag", "add_field", "remove_field", "subscribe", "unsubscribe")
COMMANDS = (*PLAIN_COMMANDS, "add_tag_via_event", "change_email")


def _object(item: Any, what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ItemError(("", f"must be an object with {what}"))
    return item


def _no_nul(value: Any, loc: str) -> None:
    paths = nul_paths(value, loc)
    if paths:
        raise ItemError(*((p, "text may not contain a NUL character") for p in paths))


def email_of(item: dict[str, Any], loc: str) -> str:
    value = item.get(loc) if isinstance(item, dict) else None
    return _email(value, loc)


def _email(value: Any, loc: str) -> str:
    if value is None:
        raise ItemError((loc, "Field required"))
    if not isinstance(value, str):
        raise ItemError((loc, "must be a string"))
    try:
        return visitor_email(value)
    except AddressError as error:
        raise ItemError((loc, str(error))) from None


def name_of(value: Any, loc: str) -> str:
    """A tag name or field key: a non-empty string of at most 200 characters."""
    if value is None:
        raise ItemError((loc, "Field required"))
    if not isinstance(value, str) or not value.strip():
        raise ItemError((loc, "must be a non-empty string"))
    value = value.strip()
    if len(value) > MAX_NAME:
        raise ItemError((loc, f"longer than {MAX_NAME} characters"))
    _no_nul(value, loc)
    return value


def _tag_list(value: Any, loc: str) -> tuple[str, ...]:
    """Tags as Bento sends them, `"a,b"`, or as a list."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise ItemError((loc, 'must be a string of comma-separated tags ("a,b") or a list'))
    tags = []
    for index, tag in enumerate(value):
        if not isinstance(tag, str):
            raise ItemError((f"{loc}[{index}]", "must be a string"))
        if tag.strip():
            tags.append(name_of(tag, loc))
    return tuple(tags)


# -- requests --------------------------------------------------------------------------


def bento_event(item: Any) -> Any:
    """Bento clients send `details: null`; read it as no details."""
    if isinstance(item, dict) and item.get("details", {}) is None:
        return {k: v for k, v in item.items() if k != "details"}
    return item


def subscriber_import(item: Any) -> SubscriberImport:
    row = _object(item, "email")
    email = _email(row.get("email"), "email")
    fields = {k: v for k, v in row.items() if k not in ("email", "tags", "remove_tags")}
    nested = fields.get("fields")
    if isinstance(nested, dict):
        del fields["fields"]
        fields.update(nested)
    for key in fields:
        if not key or len(key) > MAX_NAME:
            raise ItemError((key, f"a field key must have 1 to {MAX_NAME} characters"))
    _no_nul(fields, "")
    return SubscriberImport(
        email=email,
        fields=fields,
        tags=_tag_list(row.get("tags"), "tags"),
        remove_tags=_tag_list(row.get("remove_tags"), "remove_tags"),
    )


def command(item: Any) -> Change | IncomingEvent | EmailChange:
    row = _object(item, "command and email")
    name = row.get("command")
    if name not in COMMANDS:
        raise ItemError(("command", f"unknown command {name!r}; one of {', '.join(COMMANDS)}"))
    email = _email(row.get("email"), "email")
    query = row.get("query")
    match name:
        case "add_tag_via_event":
            tag = name_of(query, "query")
            return IncomingEvent(type="$tag", email=email, details={"tag": tag}, source="api")
        case "change_email":
            return EmailChange(old=email, new=_email(query, "query"))
        case "add_tag" | "remove_tag":
            return Change(command=name, email=email, name=name_of(query, "query"))
        case "add_field":
            if not isinstance(query, dict):
                raise ItemError(("query", "must be an object {key, value}"))
            if "value" not in query:
                raise ItemError(("query.value", "Field required"))
            _no_nul(query.get("value"), "query.value")
            key = name_of(query.get("key"), "query.key")
            return Change(command=name, email=email, name=key, value=query["value"])
        case "remove_field":
            key = query.get("key") if isinstance(query, dict) else query
            return Change(command=name, email=email, name=name_of(key, "query"))
        case _:
            return Change(command=name, email=email)


def transactional_email(item: Any) -> TransactionalEmail:
    row = _object(item, "to, subject and html_body")
    _no_nul(row, "")
    sender = row.get("from")
    if sender is not None and (not isinstance(sender, str) or len(sender) > MAX_EMAIL):
        raise ItemError(("from", f"must be a string of at most {MAX_EMAIL} characters"))
    if sender:
        try:
            mailbox(sender)
        except AddressError as error:
            raise ItemError(("from", str(error))) from None
    texts = {}
    for key in ("subject", "html_body"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ItemError((key, "Field required" if value is None else "must be a string"))
        texts[key] = value
    transactional = row.get("transactional", False)
    if not isinstance(transactional, bool):
        raise ItemError(("transactional", "must be true or false"))
    personalizations = row.get("personalizations")
    if personalizations is not None and not isinstance(personalizations, dict):
        raise ItemError(("personalizations", "must be an object"))
    return TransactionalEmail(
        to=_email(row.get("to"), "to"),
        from_=sender.strip() if sender else None,
        subject=texts["subject"],
        html=texts["html_body"],
        transactional=transactional,
        personalizations=personalizations,
    )


# -- views -----------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def subscriber_view(row, tag_ids: list[str]) -> dict[str, Any]:
    return {
        "data": {
            "id": str(row.id),
            "type": "visitors",
            "attributes": {
                "uuid": row.uuid,
                "email": row.email,
                "fields": row.fields,
                "cached_tag_ids": tag_ids,
                "tags": row.tags,
                "unsubscribed_at": _iso(row.unsubscribed_at),
            },
        }
    }


def tag_view(row) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "type": "tags",
        "attributes": {"name": row.name, "created_at": _iso(row.created_at), "discarded_at": None},
    }


def field_view(row) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "type": "visitors-fields",
        "attributes": {
            "name": row.name,
            "key": row.key,
            "created_at": _iso(row.created_at),
            "whitelisted": None,
        },
    }


def workflow_view(workflow: dict[str, Any], sluice: Sluice) -> dict[str, Any]:
    flow = workflow["flow"]
    stats = {s["step"]: s for s in sluice.flow_stats(flow.key)["steps"]}
    return {
        "id": flow.key,
        "type": "workflows",
        "attributes": {
            "name": flow.name,
            "status": "live" if flow.status == FlowStatus.ON else "draft",
            "created_at": _iso(flow.created_at),
            "email_templates": [
                {
                    "id": number,
                    "subject": email["subject"],
                    "stats": {
                        "step": email["step"],
                        **{
                            k: stats.get(email["step"], {}).get(k, 0)
                            for k in ("sent", "opened", "clicked")
                        },
                    },
                }
                for number, email in enumerate(workflow["emails"], start=1)
            ],
        },
    }


# -- broadcasts ------------------------------------------------------------------------


MAX_FILTER_TAGS = 100
"""Tags in one of a broadcast's filters, as the native API allows."""


@dataclass(frozen=True)
class BentoBroadcastItem:
    """One item of `batch/broadcasts`: the broadcast, and when it goes (`approved`
    ones only; the others are drafts)."""

    broadcast: NewBroadcast
    send: bool
    send_at: datetime | None


def bento_broadcast(item: Any) -> BentoBroadcastItem:
    """Bento's broadcast as Sluice's: `content` is the HTML (`markdown` content is sent
    as the text part, unconverted), `from` a mailbox, the comma-separated tag lists as
    lists, `segment_id` a segment key, `batch_size_per_hour` a rate."""
    _no_nul(_object(item, "name, subject and content"), "")
    given = BentoBroadcast.model_validate(item)
    part = "text" if given.type == "markdown" else "html"
    email: dict[str, Any] = {"subject": given.subject, part: given.content}
    if given.from_ is not None:
        sender = formataddr((given.from_.name or "", given.from_.email))
        try:
            mailbox(sender)
        except AddressError as error:
            raise ItemError(("from", str(error))) from None
        email["from"] = sender
    send_at = None
    if given.send_at:
        try:
            send_at = parse_instant(given.send_at)
            check_instant_in_range(send_at)
        except ValueError as error:
            raise ItemError(("send_at", str(error))) from None
    tags = {}
    for loc in ("inclusive_tags", "exclusive_tags"):
        tags[loc] = list(_tag_list(getattr(given, loc), loc))
        if len(tags[loc]) > MAX_FILTER_TAGS:
            raise ItemError((loc, f"at most {MAX_FILTER_TAGS} tags"))
    return BentoBroadcastItem(
        NewBroadcast(
            name=given.name,
            email=email,
            segment_key=given.segment_id,
            inclusive_tags=tags["inclusive_tags"],
            exclusive_tags=tags["exclusive_tags"],
            per_hour=given.batch_size_per_hour or None,
        ),
        send=given.approved,
        send_at=send_at,
    )


def broadcast_view(found: dict[str, Any]) -> dict[str, Any]:
    """A broadcast as Bento's `fetch/broadcasts` lists one."""
    email = found["email"]
    sender = parseaddr(email.get("from") or "")
    return {
        "id": str(found["id"]),
        "type": "broadcasts",
        "attributes": {
            "name": found["name"],
            "subject": email.get("subject"),
            "content": email.get("html") or email.get("text"),
            "type": "html" if email.get("html") else "plain",
            "from": {"name": sender[0], "email": sender[1]},
            "inclusive_tags": ",".join(found["inclusive_tags"]),
            "exclusive_tags": ",".join(found["exclusive_tags"]),
            "segment_id": found["segment"],
            "batch_size_per_hour": found["per_hour"],
            "created_at": found["created_at"],
            "status": found["status"],
        },
    }
