"""The audience operations behind Bento's data endpoints: subscriber imports, plain
commands, look-ups, the tag and field registries, and transactional emails.

Each operation is one transaction. Imports change visitors without recording events,
so they never start or wake sessions. Plain commands record an event only for a change
that a flow's trigger names (`tag_added`, `field_changed`: SPEC §7 Triggers), its
origin event; `add_tag_via_event` records a `$tag`. Both go through the same
ingestion as every other event.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sluice.addresses import message_id_domain
from sluice.definitions.liquid import Template, TemplateError
from sluice.definitions.model import iter_steps
from sluice.engine import triggers
from sluice.engine.messages import plain_text
from sluice.engine.work import FlowVersion
from sluice.records import DeliveryState
from sluice.store import flows as flow_store
from sluice.store import imports, outbox, registry, upkeep
from sluice.store import segments as segment_store
from sluice.store import visitors as visitor_store
from sluice.store.imports import Change, SubscriberImport
from sluice.store.ingest import IncomingEvent, Maker, changes_made, flow_states, ingest

if TYPE_CHECKING:
    from sluice.service import Sluice

__all__ = ["Audience", "Change", "EmailChange", "SubscriberImport", "TransactionalEmail"]

MAX_RENDERED_EMAIL = 1024 * 1024


@dataclass(frozen=True)
class EmailChange:
    """`change_email`: the visitor at `old` gets the address `new`."""

    old: str
    new: str


@dataclass(frozen=True, kw_only=True)
class TransactionalEmail:
    """One email of `batch/emails`; subject and body are Liquid templates rendered
    with `personalizations` (and `visitor` and `now`)."""

    to: str
    from_: str | None
    subject: str
    html: str
    transactional: bool = True
    personalizations: dict[str, Any] | None = None


Command = Change | IncomingEvent | EmailChange


class Audience:
    def __init__(self, app: Sluice):
        self.app = app

    # -- imports and commands -----------------------------------------------------

    def import_subscribers(
        self, rows: Sequence[SubscriberImport], *, start_flows: bool = False
    ) -> int:
        """Merge the rows into the visitors. An import starts no flow (SPEC §3.3) unless
        it asks to (`start_flows`): then its changes start the flows whose trigger names
        them, as a plain command's do."""
        now = self.app.clock.now()
        catalog = self.app.catalog
        started = []
        with self.app.db.write() as conn:
            flows = flow_states(conn, catalog) if start_flows else []
            keep_views = triggers.reads_changes(flows)
            changed = imports.import_subscribers(conn, rows, now, keep_views=keep_views)
            if start_flows:
                made = [(Maker(v.email, "import"), c) for v in changed for c in v.changes]
                started = changes_made(conn, catalog, made, now, flows=flows)
            started += upkeep.after_changes(
                conn,
                catalog,
                now,
                changed=changed,
                source="import",
                start_flows=start_flows,
                flows=flows if start_flows else None,
            )
        if started:
            self.app.wake_workers()
        return len(rows)

    def run_commands(self, commands: Sequence[tuple[int, Command]]) -> dict[int, str]:
        """Apply the commands in order, in one transaction. Returns why each command
        that could not be applied was not, by its index."""
        now = self.app.clock.now()
        errors: dict[int, str] = {}
        started: list[int] = []
        catalog = self.app.catalog
        with self.app.db.write() as conn:
            flows = flow_states(conn, catalog)
            keep_views = triggers.reads_changes(flows)
            for run in _runs(commands):
                first = run[0][1]
                if isinstance(first, EmailChange):
                    for index, change in run:
                        why = imports.change_email(conn, change.old, change.new, now)
                        if why:
                            errors[index] = why
                elif isinstance(first, IncomingEvent):
                    events = [c for _, c in run]
                    started += ingest(conn, catalog, events, now, flows=flows).sessions_started
                    registry.register_tags(conn, (e.details["tag"] for e in events), now)
                else:
                    changes = [c for _, c in run]
                    changed = imports.apply_changes(conn, changes, now, keep_views=keep_views)
                    made = [(Maker(v.email, "api"), c) for v in changed for c in v.changes]
                    started += changes_made(conn, catalog, made, now, flows=flows)
                    started += upkeep.after_changes(
                        conn, catalog, now, changed=changed, flows=flows
                    )
        if started:
            self.app.wake_workers()
        return errors

    # -- visitors -----------------------------------------------------------------

    def subscriber(self, *, email: str | None = None, uuid: str | None = None):
        """The visitor with this email or uuid, with the registry ids of its tags;
        None when there is none. Tags never registered (added by a flow step before
        flow steps registered theirs) are registered now, so that every tag has an id."""
        with self.app.db.read() as conn:
            row = visitor_store.find(conn, email) if email else imports.find_by_uuid(conn, uuid)
            if row is None:
                return None
            ids = {r.name: r.id for r in registry.list_tags(conn, row.tags)}
        if any(tag not in ids for tag in row.tags):
            with self.app.db.write() as conn:
                registry.register_tags(conn, row.tags, self.app.clock.now())
                ids = {r.name: r.id for r in registry.list_tags(conn, row.tags)}
        return row, [str(ids[t]) for t in row.tags if t in ids]

    def create_subscriber(self, email: str) -> bool:
        """Create the visitor unless it exists (no event, no flows); True if created.
        A new visitor enters the segments that hold for one with nothing yet (recorded,
        starting no flow, as an import's)."""
        now = self.app.clock.now()
        with self.app.db.write() as conn:
            created = imports.create_visitor(conn, email, now)
            if created:
                [visitor] = visitor_store.upsert(conn, [email], now).values()
                visitor.new = True
                upkeep.after_changes(
                    conn, self.app.catalog, now, changed=[visitor], start_flows=False
                )
            return created

    # -- registries ---------------------------------------------------------------

    def tags(self) -> list[Any]:
        with self.app.db.read() as conn:
            return registry.list_tags(conn)

    def create_tag(self, name: str) -> tuple[Any, bool]:
        return self._register(registry.register_tags, registry.list_tags, name)

    def site_stats(self) -> dict[str, int]:
        """Bento's `stats/site`: `{user_count, subscriber_count, unsubscriber_count}`,
        every visitor counted once (one pass over the visitors)."""
        with self.app.db.read() as conn:
            return visitor_store.counts(conn)

    def segment_stats(self, key: str) -> dict[str, int]:
        """`site_stats` of a segment's members; raises UnknownSegment."""
        with self.app.db.read() as conn:
            segment_store.get_segment(conn, key)
            return segment_store.member_counts(conn, key)

    def delete_tag(self, tag_id: int, name: str) -> int | None:
        """Delete a tag from the registry and from every visitor (registry.delete_tag):
        the number of visitors who had it, or None for no such tag. Taking a tag away
        starts no flow and wakes no session: no trigger names it. The segments whose
        rules name the tag are decided again (their exits recorded, starting nothing)."""
        now = self.app.clock.now()
        with self.app.db.write() as conn:
            taken = registry.delete_tag(conn, tag_id, name)
            for segment in self.app.catalog.segments(conn).values():
                if taken and name in segment.tag_names:
                    for moves in segment_store.rebuild(conn, segment, now):
                        upkeep.record_moves(conn, self.app.catalog, moves, now, start_flows=False)
            return taken

    def fields(self) -> list[Any]:
        with self.app.db.read() as conn:
            return registry.list_fields(conn)

    def create_field(self, key: str) -> tuple[Any, bool]:
        return self._register(registry.register_fields, registry.list_fields, key)

    def _register(self, register, listing, name: str) -> tuple[Any, bool]:
        with self.app.db.write() as conn:
            created = register(conn, [name], self.app.clock.now())
            return listing(conn, [name])[0], name in created

    def workflows(self) -> list[dict[str, Any]]:
        """Every flow with the subjects of its email steps."""
        with self.app.db.read() as conn:
            templates = flow_store.current_templates(conn)
            return [
                {
                    "flow": row,
                    "emails": _email_steps(
                        self.app.catalog.flow(conn, row.key, row.version), templates
                    ),
                }
                for row in flow_store.list_flows(conn)
            ]

    # -- transactional email ------------------------------------------------------

    def send_emails(self, emails: Sequence[tuple[int, TransactionalEmail]]) -> dict[int, str]:
        """Render and store the emails as deliveries; returns why each one that was
        not stored was not, by its index.

        Rendering holds no transaction: a template may take a while (up to the limits
        of docs/definitions.md), and on SQLite a write transaction keeps every other
        writer, a single event too, waiting. So the recipients are created in one short
        transaction, the emails rendered, and stored in another, which checks again
        that no recipient was erased or unsubscribed meanwhile."""
        now = self.app.clock.now()
        settings = self.app.settings
        state = DeliveryState.PENDING if settings.smtp_url else DeliveryState.OUTBOX
        domain = message_id_domain(settings.mail_from)
        errors: dict[int, str] = {}
        with self.app.db.write() as conn:
            erased = outbox.erased_addresses(conn, (e.to for _, e in emails))
            people = visitor_store.upsert(
                conn, (e.to for _, e in emails if e.to not in erased), now
            )
        rendered = []
        for index, email in emails:
            visitor = people.get(visitor_store.email_key(email.to))
            why = _refusal(email, visitor, erased)
            if why:
                errors[index] = why
                continue
            try:
                payload = _render(email, visitor, settings.mail_from, now)
            except TemplateError as error:
                errors[index] = str(error)
                continue
            payload["message_id"] = f"<api.{uuidlib.uuid4().hex}@{domain}>"
            rendered.append((index, email, visitor.id, payload))
        if not rendered:
            return errors
        with self.app.db.write() as conn:
            erased = outbox.erased_addresses(conn, (e.to for _, e, _, _ in rendered))
            current = visitor_store.load_by_ids(conn, [v for _, _, v, _ in rendered], lock=False)
            ready = []
            for index, email, visitor_id, payload in rendered:
                why = _refusal(email, current.get(visitor_id), erased)
                if why:
                    errors[index] = why
                else:
                    ready.append((visitor_id, payload))
            outbox.add_emails(conn, ready, state=state, now=now)
        return errors


def _refusal(email: TransactionalEmail, visitor, erased: set[str]) -> str | None:
    """Why `email` is not sent to `visitor` (None when it is): erased, or unsubscribed
    from a marketing email."""
    if email.to in erased or visitor is None:
        return "to: the address was erased; it is never emailed again"
    if not email.transactional and visitor.unsubscribed_at is not None:
        return "to: the visitor unsubscribed (send it as transactional?)"
    return None


def _runs(commands: Sequence[tuple[int, Command]]) -> list[list[tuple[int, Command]]]:
    """Consecutive commands of the same sort, in order."""
    runs: list[list[tuple[int, Command]]] = []
    for item in commands:
        if runs and type(runs[-1][0][1]) is type(item[1]):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _render(email: TransactionalEmail, visitor, mail_from: str, now: datetime) -> dict[str, Any]:
    context = dict(email.personalizations or {})
    context["visitor"] = visitor.view()
    context["now"] = now.isoformat()
    subject = _part("subject", email.subject, context).strip()
    html = _part("html_body", email.html, context, html=True)
    if len(subject) + 2 * len(html) > MAX_RENDERED_EMAIL:
        raise TemplateError("html_body: the rendered email is larger than 1 MiB")
    return {
        "to": visitor.email,
        "from": email.from_ or mail_from,
        "reply_to": None,
        "subject": subject,
        "html": html,
        "text": plain_text(html),
        "transactional": email.transactional,
        "track": False,
        "unsubscribe_url": None,
    }


def _part(name: str, source: str, context: dict[str, Any], *, html: bool = False) -> str:
    try:
        return Template.compile(source, html=html).render(context)
    except TemplateError as error:
        raise TemplateError(f"{name}: {error}") from None


def _email_steps(flow: FlowVersion, templates: dict[str, dict]) -> list[dict[str, Any]]:
    """The email steps of a flow version, in order, with their subjects as written."""
    found = []
    for step in iter_steps(flow.definition.steps):
        if step.kind != "email":
            continue
        action = step.action
        stored = templates.get(action.template, {}) if action.template else {}
        subject = action.subject.source if action.subject else stored.get("subject", "")
        found.append({"step": step.id, "subject": subject})
    return found
