"""Sluice as a library: the operations the CLI and the HTTP API offer, each one
transaction over the store. Interfaces stay thin by calling these."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice import impact, views
from sluice.clock import Clock, SystemClock
from sluice.credentials import Credentials
from sluice.definitions.durations import check_instant_in_range
from sluice.definitions.model import FlowDefinition, Trigger
from sluice.definitions.parse import (
    EMAIL_LOC,
    load_documents,
    validate_documents,
    validate_email,
)
from sluice.definitions.problems import DefinitionError, Problem
from sluice.definitions.segments import validate_segment
from sluice.definitions.source import document_texts
from sluice.edge import restore_note
from sluice.engine import triggers
from sluice.engine.work import EngineConfig
from sluice.explain import Explanation, explain
from sluice.links import email_hash
from sluice.records import UNFINISHED, FlowStatus, SessionStatus
from sluice.settings import Settings
from sluice.stats import flow_stats
from sluice.store import dates, imports, outbox, registry, upkeep, visitor_search
from sluice.store import deliveries as delivery_store
from sluice.store import drafts as draft_store
from sluice.store import due as due_store
from sluice.store import flows as flow_store
from sluice.store import refusals as refusal_store
from sluice.store import segments as segment_store
from sluice.store import sessions as session_store
from sluice.store import visitors as visitor_store
from sluice.store.db import Database
from sluice.store.flows import Catalog
from sluice.store.imports import Change
from sluice.store.ingest import (
    IncomingEvent,
    IngestResult,
    Maker,
    changes_made,
    flow_states,
    ingest,
    record,
)
from sluice.store.schema import (
    broadcast_engagements,
    deliveries,
    events,
    sessions,
    suppressions,
    timeline,
    visitors,
)

if TYPE_CHECKING:
    # Imported where used: the audience, delivery and worker modules bring html2text,
    # aiohttp, psycopg and Prometheus, which short-lived `sluice` commands never need.
    from sluice.audience import Audience
    from sluice.delivery.dispatcher import Dispatcher
    from sluice.delivery.tracking import Tracker
    from sluice.worker.loop import Worker

_UNFINISHED = [s.value for s in UNFINISHED]


class NoHook(LookupError):
    """A flow without an inbound hook: its trigger is not `webhook`."""


PROFILE_EDIT = "$profile_edit"
"""The type of the event that records a person's change of a visitor (`change_visitor`)."""


class _DryRun(Exception):
    """Rolls back a dry run's transaction."""


class VisitorNotFound(LookupError):
    """No visitor has that email."""


class UnknownTemplate(LookupError):
    """No template has that key."""


@dataclass
class ApplyReport:
    """What `flows apply` did or, with --dry-run, would do."""

    templates: dict[str, int | None] = field(default_factory=dict)
    segments: dict[str, int | None] = field(default_factory=dict)
    flows: dict[str, int | None] = field(default_factory=dict)
    """Key → new version, or None when unchanged."""
    blast_radius: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    impact: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Key → what saving it does to its live sessions (impact.py; docs/api.md)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "templates": self.templates,
            "segments": self.segments,
            "flows": self.flows,
            "blast_radius": self.blast_radius,
            "impact": self.impact,
        }


class Sluice:
    def __init__(self, settings: Settings, clock: Clock | None = None, *, read_only: bool = False):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            synchronous=settings.sqlite_synchronous,
            read_only=read_only,
        )
        self.catalog = Catalog(default_timezone=settings.timezone)
        self.credentials = Credentials(self.db, settings)
        self._workers: list[Worker] = []

    @cached_property
    def audience(self) -> Audience:
        """Bento's subscriber operations (imports, commands, broadcasts), for the API."""
        from sluice.audience import Audience

        return Audience(self)

    # -- lifecycle --------------------------------------------------------------

    def upgrade(self) -> None:
        self.db.upgrade()

    def secret(self, name: str) -> str:
        """A secret kept in clear (`signing_key`, `webhook_secret`, `site_uuid`,
        `publishable_key`): from the settings, else stored, else generated and stored."""
        return self.credentials.secret(name)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            mail_transport="smtp" if self.settings.smtp_url else "outbox",
            mail_from=self.settings.mail_from,
            default_timezone=self.settings.timezone,
            public_url=self.settings.public_url,
            signing_key=self.secret("signing_key").encode(),
        )

    def worker(self, **options) -> Worker:
        """A worker over this database; it is woken when this process makes work due."""
        from sluice.worker.loop import Worker

        options.setdefault("lease", timedelta(seconds=self.settings.lease_seconds))
        from sluice.store import broadcasts as broadcast_store

        queue_next = partial(
            broadcast_store.queue_next, catalog=self.catalog, config=self.engine_config()
        )
        options.setdefault(
            "due_handlers",
            {
                segment_store.DUE_KIND: partial(upkeep.recheck, catalog=self.catalog),
                broadcast_store.DUE_KIND: queue_next,
                dates.KIND: partial(dates.fire, catalog=self.catalog),
            },
        )
        worker = Worker(self.db, self.catalog, self.clock, self.engine_config(), **options)
        self._workers.append(worker)
        return worker

    def wake_workers(self) -> None:
        """Tell this process's workers that sessions are due now (docs/architecture.md)."""
        for worker in self._workers:
            worker.wake()

    def dispatcher(self, *, senders=None, in_flight: int = 500, **options) -> Dispatcher:
        """The dispatcher of pending deliveries, with the senders the settings call
        for: webhooks always, email when `SLUICE_SMTP_URL` is set."""
        from sluice.delivery.dispatcher import Dispatcher
        from sluice.delivery.smtp import SmtpSender, SmtpServer
        from sluice.delivery.webhooks import WebhookSender

        if senders is None:
            senders = [
                WebhookSender(
                    self.secret("webhook_secret"),
                    allow_private=self.settings.webhook_allow_private,
                    connections=in_flight,
                )
            ]
            if self.settings.smtp_url:
                server = SmtpServer.from_url(self.settings.smtp_url)
                senders.append(SmtpSender(server, tracker=self.tracker()))
        options.setdefault("lease", timedelta(seconds=self.settings.lease_seconds))
        return Dispatcher(self.db, self.clock, senders, in_flight=in_flight, **options)

    def tracker(self) -> Tracker:
        """Signs and reads the open and click links of emails."""
        from sluice.delivery.tracking import Tracker

        return Tracker(self.settings.public_url, self.secret("signing_key").encode())

    def webhook_secret(self) -> str:
        """The webhook signing secret as receivers need it (`whsec_…`)."""
        from sluice.delivery.webhooks import standard_secret

        return standard_secret(self.secret("webhook_secret"))

    def close(self) -> None:
        self.db.dispose()

    # -- definitions ------------------------------------------------------------

    def validate(self, documents: list[tuple[str, dict]]):
        """Validate documents against each other and what is stored; raises DefinitionError."""
        with self.db.read() as conn:
            known_flows = {f.key for f in flow_store.list_flows(conn)}
            known_templates = set(flow_store.current_templates(conn))
            known_segments = set(segment_store.current_documents(conn))
        return validate_documents(
            documents,
            known_flows=known_flows,
            known_templates=known_templates,
            known_segments=known_segments,
        )

    def apply(
        self,
        documents: list[tuple[str, dict]],
        *,
        texts: Sequence[str | None] | None = None,
        note: str | None = None,
        dry_run: bool = False,
        actor: str = "cli",
        also: Callable[[Connection], None] | None = None,
        based_on: Mapping[str, int] | None = None,
    ) -> ApplyReport:
        """Validate `(name, document)` pairs together and save a new version of each
        that changed. `texts[i]` is the author's text of `documents[i]`, kept with its
        version (SPEC §7); None (or no `texts`) for one that came as JSON. `note` goes
        into the audit row of every flow saved. `also` runs in the same transaction,
        after the saves (publishing a draft deletes it there). `based_on`: flow key →
        the version an edit was made to (0: a new flow); if another is current, nothing
        is saved and `VersionConflict` is raised (someone saved in between)."""
        flows, templates, segments = self.validate(documents)
        texts = [None] * len(documents) if texts is None else texts
        text_of = {
            (
                doc.get("kind") if doc.get("kind") in ("template", "segment") else "flow",
                doc.get("key"),
            ): _text_of(doc, text)
            for (_, doc), text in zip(documents, texts, strict=True)
        }
        report = ApplyReport()
        now = self.clock.now()
        try:
            with self.db.write() as conn:
                for template in templates:
                    text = text_of[("template", template.key)]
                    version = flow_store.save_template(conn, template, text=text, now=now)
                    report.templates[template.key] = version
                for segment in segments:
                    text = text_of[("segment", segment.key)]
                    version = segment_store.save_segment(
                        conn, segment, text=text, now=now, actor=actor, note=note
                    )
                    report.segments[segment.key] = version
                    if version is not None and not dry_run:
                        self._rebuild(conn, segment, now)
                for key, version in (based_on or {}).items():
                    flow_store.check_version(conn, key, version)
                for flow in flows:
                    found = self._preview(conn, flow, now)
                    report.blast_radius[flow.key] = found["blast_radius"]
                    report.impact[flow.key] = found["impact"]
                    text = text_of[("flow", flow.key)]
                    before = dates.previous_rule(conn, self.catalog, flow.key)
                    version = flow_store.save_flow(
                        conn, flow, text=text, note=note, now=now, actor=actor
                    )
                    report.flows[flow.key] = version
                    if version and not dry_run:  # a dry run's pass would be rolled back
                        dates.flow_saved(conn, self.catalog, flow, before, now)
                if also is not None:
                    also(conn)
                if dry_run:
                    raise _DryRun  # the report says what saving would do; nothing is kept
        except _DryRun:
            pass
        return report

    def _rebuild(self, conn: Connection, segment, now) -> None:
        """Decide every visitor's membership of a segment whose rules changed. The
        entries and exits are recorded in the histories, but start no flows: a change
        of rules is not something the visitors did (docs/segments.md)."""
        for moves in segment_store.rebuild(conn, segment, now):
            upkeep.record_moves(conn, self.catalog, moves, now, start_flows=False)

    def apply_text(
        self, text: str, name: str, *, note: str | None = None, actor: str = "cli", **options
    ) -> ApplyReport:
        """`apply` the documents of a YAML (or JSON) text, each keeping its own text."""
        documents = load_documents(text, name)
        return self.apply(
            [(name, d) for d in documents],
            texts=document_texts(text),
            note=note,
            actor=actor,
            **options,
        )

    def preview(self, document: dict) -> dict[str, Any]:
        """What saving `document` would do, saving nothing: `{"problems": [],
        "blast_radius", "impact"}` (impact.py). Raises DefinitionError."""
        flows = self.validate([("definition", document)]).flows
        with self.db.read() as conn:
            return {"problems": [], **self._preview(conn, flows[0], self.clock.now())}

    def _preview(self, conn, flow: FlowDefinition, now) -> dict[str, Any]:
        return impact.preview(
            conn, self.catalog, flow, now=now, default_timezone=self.settings.timezone
        )

    # -- segments ---------------------------------------------------------------

    def segments(self) -> list[dict[str, Any]]:
        """`{key, name, version, members, updated_at}` of every segment."""
        with self.db.read() as conn:
            return segment_store.list_segments(conn)

    def segment(self, key: str) -> dict[str, Any]:
        """A segment with its definition, text, member count and audit log (`changes`);
        raises UnknownSegment."""
        with self.db.read() as conn:
            found = segment_store.get_segment(conn, key)
            return found | {"changes": segment_store.list_changes(conn, key)}

    def segment_members(
        self, key: str, *, limit: int, after_id: int | None = None
    ) -> list[dict[str, Any]]:
        """A page of a segment's members (`store.segments.members`); raises
        UnknownSegment."""
        with self.db.read() as conn:
            segment_store.get_segment(conn, key)
            return segment_store.members(conn, key, limit=limit, after_id=after_id)

    def preview_segment(self, document: dict) -> dict[str, Any]:
        """`{"members": N}`: how many visitors a segment document would hold now,
        saving nothing. Raises DefinitionError."""
        segment = validate_segment(document)
        with self.db.read() as conn:
            return {"members": segment_store.preview_count(conn, segment, self.clock.now())}

    # -- broadcasts -------------------------------------------------------------

    def create_broadcast(
        self,
        new,
        *,
        send_at: datetime | None = None,
        send: bool = False,
        actor: str = "cli",
    ) -> dict[str, Any]:
        """Store a broadcast (`store.broadcasts.NewBroadcast`) as a draft, or with
        `send`, scheduled at `send_at` (now when None). Its email must be valid against
        the templates stored, its segment exist. Raises DefinitionError."""
        from sluice.store import broadcasts as broadcast_store

        now = self.clock.now()
        _check_send_at(send_at)
        with self.db.write() as conn:
            self._check_broadcast(conn, new)
            broadcast_id = broadcast_store.create(conn, new, now=now, actor=actor)
            if send:
                broadcast_store.schedule(conn, broadcast_id, send_at or now, now=now)
            found = broadcast_store.get(conn, broadcast_id)
        if send:
            self.wake_workers()
        return found

    def _check_broadcast(self, conn: Connection, new) -> None:
        problems = []
        try:
            validate_email(new.email, known_templates=set(flow_store.current_templates(conn)))
        except DefinitionError as error:
            problems += [
                Problem(p.loc.replace(EMAIL_LOC, "", 1).lstrip(".") or "email", p.msg)
                for p in error.problems
            ]
        if new.segment_key is not None and new.segment_key not in self.catalog.segments(conn):
            problems.append(Problem("segment", f"no segment with key '{new.segment_key}'"))
        if problems:
            raise DefinitionError(problems)

    def check_broadcast(self, new) -> None:
        """Raise DefinitionError with every problem of `new`'s email and segment, as
        `create_broadcast` would, storing nothing."""
        with self.db.read() as conn:
            self._check_broadcast(conn, new)

    def broadcast_audience(
        self, segment_key: str | None, inclusive: list[str] = (), exclusive: list[str] = ()
    ) -> dict[str, Any]:
        """`{members, subscribed, first}` of a broadcast's audience now (a segment's
        members, or every visitor with None, that the tag filters keep): how many, how
        many subscribed, and the email of the first visitor of the segment (None when
        it is empty)."""
        from sluice.store import broadcasts as broadcast_store

        with self.db.read() as conn:
            counts = broadcast_store.audience_counts(conn, segment_key, inclusive, exclusive)
            return counts | {"first": broadcast_store.first_member(conn, segment_key)}

    def broadcasts(self) -> list[dict[str, Any]]:
        from sluice.store import broadcasts as broadcast_store

        with self.db.read() as conn:
            return broadcast_store.list_all(conn)

    def broadcast(self, broadcast_id: int) -> dict[str, Any]:
        """One broadcast with its progress and results; raises UnknownBroadcast."""
        from sluice.store import broadcasts as broadcast_store

        with self.db.read() as conn:
            return broadcast_store.get(conn, broadcast_id)

    def send_broadcast(self, broadcast_id: int, send_at: datetime | None = None) -> dict:
        """Schedule a draft at `send_at` (now when None); raises UnknownBroadcast,
        BroadcastStateError."""
        from sluice.store import broadcasts as broadcast_store

        now = self.clock.now()
        _check_send_at(send_at)
        with self.db.write() as conn:
            broadcast_store.schedule(conn, broadcast_id, send_at or now, now=now)
            found = broadcast_store.get(conn, broadcast_id)
        self.wake_workers()
        return found

    def cancel_broadcast(self, broadcast_id: int) -> dict[str, Any]:
        """Stop a broadcast; its emails not sent yet are skipped. Raises
        UnknownBroadcast, BroadcastStateError."""
        from sluice.store import broadcasts as broadcast_store

        with self.db.write() as conn:
            broadcast_store.cancel(conn, broadcast_id, now=self.clock.now())
            return broadcast_store.get(conn, broadcast_id)

    # -- flows ------------------------------------------------------------------

    def list_flows(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [views.flow_view(conn, f.key, full=False) for f in flow_store.list_flows(conn)]

    def show_flow(self, key: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return views.flow_view(conn, key)

    def set_flow_status(self, key: str, status: FlowStatus, actor: str = "cli") -> dict:
        with self.db.write() as conn:
            flow_store.set_status(conn, key, status, now=self.clock.now(), actor=actor)
            view = views.flow_view(conn, key, full=False)
        self.wake_workers()
        return view

    def flow_changes(self, key: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return flow_store.list_changes(conn, key)

    def flow_version(self, key: str, version: int) -> dict[str, Any]:
        """`{version, source, definition, created_at, note}`; UnknownFlow or
        UnknownVersion."""
        with self.db.read() as conn:
            return flow_store.get_version(conn, key, version)

    def restore(
        self,
        key: str,
        version: int,
        *,
        note: str | None = None,
        dry_run: bool = False,
        actor: str = "cli",
    ) -> ApplyReport:
        """Save version `version`'s text as a new version (SPEC §7), with its blast
        radius as `apply` reports it; its audit note says which version came back, then
        `note` (NoteTooLong when both do not fit in a note). Validated against what is
        stored now: a template it names may be gone."""
        old = self.flow_version(key, version)
        said = restore_note(version, note)
        return self.apply(
            [(f"version {version}", old["definition"])],
            texts=[old["source"]],
            note=said,
            dry_run=dry_run,
            actor=actor,
        )

    # -- drafts -----------------------------------------------------------------

    def flow_document(self, key: str, text: str) -> dict[str, Any]:
        """The one flow document of `text`, validated as a save of flow `key` would be
        (whose key it must keep); raises DefinitionError."""
        documents = load_documents(text, "draft")
        if len(documents) != 1:
            raise DefinitionError(
                [Problem("", f"expected one flow definition, found {len(documents)}")]
            )
        document = documents[0]
        if document.get("kind") == "template":
            raise DefinitionError([Problem("kind", "a template: a flow's draft is a flow")])
        if document.get("key") != key:
            raise DefinitionError([Problem("key", f"must stay '{key}' (a draft keeps its flow)")])
        self.validate([("draft", document)])
        return document

    def draft(self, key: str) -> dict[str, Any]:
        """`{source, document, actor, updated_at}`; UnknownFlow or NoDraft."""
        with self.db.read() as conn:
            flow_store.get_flow(conn, key)
            found = draft_store.get_draft(conn, key)
        return {
            "source": found.source,
            "document": load_documents(found.source, "draft")[0],
            "actor": found.actor,
            "updated_at": found.updated_at.isoformat(),
        }

    def save_draft(self, key: str, text: str, actor: str = "cli") -> dict[str, Any]:
        """Keep `text` as the draft of flow `key` once it validates (DefinitionError,
        nothing stored, when it does not); the flow's version runs on untouched."""
        with self.db.read() as conn:
            flow_store.get_flow(conn, key)
        self.flow_document(key, text)
        with self.db.write() as conn:
            draft_store.put_draft(conn, key, text, actor=actor, now=self.clock.now())
        return self.draft(key)

    def delete_draft(self, key: str) -> None:
        """UnknownFlow or NoDraft when there is nothing to delete."""
        with self.db.write() as conn:
            flow_store.get_flow(conn, key)
            if not draft_store.delete_draft(conn, key):
                raise draft_store.NoDraft(f"flow '{key}' has no draft")

    def publish_draft(
        self, key: str, *, note: str | None = None, actor: str = "cli", based_on: int | None = None
    ) -> ApplyReport:
        """Save the draft of `key` as a new version and delete it, in one transaction
        (a draft that no longer validates raises DefinitionError and stays). With
        `based_on`, raises VersionConflict (and the draft stays) if that version is no
        longer the current one, as `apply` does."""
        text = self.draft(key)["source"]
        document = self.flow_document(key, text)

        def delete_it(conn: Connection) -> None:
            draft_store.delete_draft(conn, key, source=text)  # not one saved meanwhile

        return self.apply(
            [("draft", document)],
            texts=[text],
            note=note,
            actor=actor,
            also=delete_it,
            based_on=None if based_on is None else {key: based_on},
        )

    def flow_stats(self, key: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return flow_stats(conn, self.catalog, key)

    # -- templates --------------------------------------------------------------

    def templates(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return views.template_views(conn)

    def template(self, key: str) -> dict[str, Any]:
        with self.db.read() as conn:
            found = views.template_views(conn, key)
        if not found:
            raise UnknownTemplate(f"unknown template '{key}'")
        return found[0]

    def template_uses(self) -> dict[str, list[dict[str, str]]]:
        """Template key → `[{"flow", "step"}]`: the email steps of current flow
        versions that name it."""
        with self.db.read() as conn:
            return flow_store.template_uses(conn, self.catalog)

    def template_version(self, key: str, version: int) -> str:
        """One stored version's text, as its author wrote it; raises UnknownTemplate."""
        with self.db.read() as conn:
            found = flow_store.template_source(conn, key, version)
        if found is None:
            raise UnknownTemplate(f"template '{key}' has no version {version}")
        return found

    def delete_template(self, key: str) -> None:
        """Delete a template no current flow version uses (store/flows.py
        delete_template); raises UnknownTemplate, or TemplateInUse naming the steps."""
        with self.db.write() as conn:
            if not flow_store.delete_template(conn, self.catalog, key, now=self.clock.now()):
                raise UnknownTemplate(f"unknown template '{key}'")

    def keep_test_email(self, payload: dict[str, Any], *, visitor_id: int | None, actor: str):
        """Keep a test send in the outbox (no SMTP server); its id."""
        with self.db.write() as conn:
            return outbox.add_test_email(
                conn, payload, visitor_id=visitor_id, actor=actor, now=self.clock.now()
            )

    # -- events -----------------------------------------------------------------

    def send(self, incoming: list[IncomingEvent]) -> IngestResult:
        now = self.clock.now()
        with self.db.write() as conn:
            result = ingest(conn, self.catalog, incoming, now)
            registry.register_from_events(conn, incoming, now)
        self.wake_workers()
        return result

    def hook(self, key: str) -> tuple[Trigger, str]:
        """Flow `key`'s `webhook` trigger and its hook's secret (hooks.py); raises
        UnknownFlow, or NoHook when the flow's trigger is of another kind."""
        from sluice import hooks

        with self.db.read() as conn:
            row = flow_store.get_flow(conn, key)
            trigger = self.catalog.flow(conn, key, row.version).definition.trigger
        if trigger.kind != "webhook":
            raise NoHook(f"flow '{key}' has no hook: its trigger is not webhook")
        signing_key = self.secret("signing_key").encode()
        return trigger, hooks.secret(signing_key, key, trigger.hook.secret_version)

    # -- sessions ---------------------------------------------------------------

    def sessions(self, **filters) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return views.session_views(conn, views.list_sessions(conn, **filters))

    def timeline_since(self, session_id: int, after_id: int) -> list[tuple[int, dict[str, Any]]]:
        with self.db.read() as conn:
            return views.timeline_since(conn, session_id, after_id)

    def messages(self, **filters) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return views.list_messages(conn, **filters)

    def latest_activity(self) -> tuple[int, int]:
        with self.db.read() as conn:
            return views.latest_activity(conn)

    def activity_since(self, after_event: int, after_entry: int):
        """Events and timeline entries written after these ids (the activity feed)."""
        with self.db.read() as conn:
            return views.activity_since(conn, after_event, after_entry)

    def session(self, session_id: int) -> dict[str, Any]:
        with self.db.read() as conn:
            return views.session_views(
                conn, [session_store.get(conn, session_id)], with_timeline=True
            )[0]

    def stop_session(self, session_id: int, actor: str = "cli") -> dict[str, Any]:
        return self._act(session_store.stop, session_id, actor)

    def resume_session(self, session_id: int, actor: str = "cli") -> dict[str, Any]:
        return self._act(session_store.resume, session_id, actor)

    def retry_session(self, session_id: int, actor: str = "cli") -> dict[str, Any]:
        return self._act(partial(session_store.retry, catalog=self.catalog), session_id, actor)

    def _act(self, operation, session_id: int, actor: str) -> dict[str, Any]:
        with self.db.write() as conn:
            session = operation(conn, session_id, now=self.clock.now(), actor=actor)
            view = views.session_views(conn, [session], with_timeline=True)[0]
        self.wake_workers()
        return view

    # -- links in emails --------------------------------------------------------

    def unsubscribe_by_link(self, visitor_uuid: str) -> bool:
        """The one-click unsubscribe link: a `$unsubscribe` event for the visitor, through
        the normal ingest path (it can trigger flows). Nothing is recorded for a visitor
        already unsubscribed; False when no visitor has that uuid (erased)."""
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(visitors.c.email, visitors.c.unsubscribed_at).where(
                    visitors.c.uuid == visitor_uuid
                )
            ).first()
        if row is None:
            return False
        if row.unsubscribed_at is None:
            self.send([IncomingEvent(type="$unsubscribe", email=row.email, source="link")])
        return True

    def record_engagement(self, message_id: str, kind: str, data: dict[str, Any]) -> bool:
        """An open or click of an email, on the timeline of the session that sent it."""
        with self.db.write() as conn:
            return delivery_store.engagement(conn, message_id, kind, data, now=self.clock.now())

    # -- visitors ---------------------------------------------------------------

    def _visitor_row(self, conn, email: str):
        row = visitor_store.find(conn, email)
        if row is None:
            raise VisitorNotFound(f"no visitor with email '{email}'")
        return row

    def visitor(self, email: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return views.visitor_view(conn, self._visitor_row(conn, email))

    def find_visitors(
        self, query: str, *, tag: str = "", limit: int, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Visitors the search words `query` (and `tag`) find (`store.visitor_search`, as
        the UI's search), newest first, a page of `limit` below `before_id`: the visitor shape
        without sessions and events, plus the `id` the next page's cursor is made of."""
        with self.db.read() as conn:
            rows = visitor_search.newest_first(
                conn,
                visitor_search.VisitorQuery.parse(query, tag),
                limit=limit,
                before_id=before_id,
            )
        return [views.visitor_summary(row) for row in rows]

    def change_visitor(self, change: Change, actor: str = "cli") -> list[int] | None:
        """A person's change of one visitor (a plain command of Bento's API: add or
        remove a tag, set or remove a field, subscribe or unsubscribe), applied as
        Bento's plain commands are: it starts only the flows whose trigger names the
        change (`tag_added`, `field_changed`: SPEC §7 Triggers), and wakes no session.
        When it changed something, a `$profile_edit` event records it in the visitor's
        history: `{"command", "tag" | "field" (, "value"), "by": actor}`. Returns the
        ids of the sessions the change started, or None when nothing changed; raises
        VisitorNotFound (it never creates one)."""
        now = self.clock.now()
        with self.db.write() as conn:
            row = self._visitor_row(conn, change.email)
            flows = flow_states(conn, self.catalog)
            keep_views = triggers.reads_changes(flows)
            changed = imports.apply_changes(conn, [change], now, keep_views=keep_views)
            if not changed:
                return None
            details: dict[str, Any] = {"command": change.command}
            if change.command in ("add_tag", "remove_tag"):
                details["tag"] = change.name
            elif change.command in ("add_field", "remove_field"):
                details["field"] = change.name
            if change.command == "add_field":
                details["value"] = change.value
            details["by"] = actor
            event = IncomingEvent(type=PROFILE_EDIT, email=row.email, details=details, source="ui")
            record(conn, row.id, event, now)
            maker = Maker(row.email, "ui")
            made = [(maker, c) for c in changed[0].changes]
            started = changes_made(conn, self.catalog, made, now, flows=flows)
            started += upkeep.after_changes(
                conn, self.catalog, now, changed=changed, source="ui", flows=flows
            )
        if started:
            self.wake_workers()
        return started

    def erasure_counts(self, email: str) -> dict[str, int]:
        """What `erase_visitor` would delete: `{events, sessions, unfinished, emails,
        webhooks, fields, tags}` (sessions keep their rows, without timeline or
        visitor; the unfinished ones exit). Raises VisitorNotFound."""
        with self.db.read() as conn:
            row = self._visitor_row(conn, email)
            mine = sessions.c.visitor_id == row.id
            counts = {
                "events": _count(conn, events, events.c.visitor_id == row.id),
                "sessions": _count(conn, sessions, mine),
                "unfinished": _count(conn, sessions, mine, sessions.c.status.in_(_UNFINISHED)),
            }
            for kind, name in (("email", "emails"), ("webhook", "webhooks")):
                counts[name] = _count(
                    conn, deliveries, deliveries.c.visitor_id == row.id, deliveries.c.kind == kind
                )
            return counts | {"fields": len(row.fields), "tags": len(row.tags)}

    def explain(self, email: str, flow: str, step: str | None = None) -> Explanation:
        """Why the visitor got the flow (or its step), or why not (explain.py); raises
        VisitorNotFound, UnknownFlow, or UnknownStep for a step not in the flow."""
        with self.db.read() as conn:
            row = self._visitor_row(conn, email)
            return explain(conn, self.catalog, row, flow, step, self.clock.now())

    def export_visitor(self, email: str) -> dict[str, Any]:
        """Everything stored about the visitor (GDPR access)."""
        with self.db.read() as conn:
            row = self._visitor_row(conn, email)
            profile = views.visitor_view(conn, row, event_limit=1_000_000)
            profile["sessions"] = [self.session(s["id"]) for s in profile["sessions"]]
            profile["messages"] = views.message_views(conn, row.id)
            profile["trigger_refusals"] = refusal_store.of_visitor(conn, row.id)
            return profile

    def erase_visitor(self, email: str, actor: str = "cli") -> dict[str, Any]:
        """GDPR erasure: unfinished sessions exit (`erased`); events, fields, tags,
        timelines, trigger refusals and message contents are deleted; only a hash of the
        address stays, so it is never emailed again by accident."""
        now = self.clock.now()
        with self.db.write() as conn:
            row = self._visitor_row(conn, email)
            unfinished = sessions.c.visitor_id == row.id, sessions.c.status.in_(_UNFINISHED)
            exited = (
                conn.execute(
                    sessions.update()
                    .where(*unfinished)
                    .values(
                        status=SessionStatus.EXITED,
                        finished_at=now,
                        due_at=None,
                        wake_at=None,
                        waiting_for=None,
                        revision=sessions.c.revision + 1,
                        updated_at=now,
                    )
                    .returning(sessions.c.id)
                )
                .scalars()
                .all()
            )
            conn.execute(timeline.delete().where(timeline.c.visitor_id == row.id))
            if exited:
                conn.execute(
                    timeline.insert(),
                    [
                        {
                            "session_id": session_id,
                            "visitor_id": row.id,
                            "at": now,
                            "step": None,
                            "kind": "exited",
                            "data": {"reason": "erased"},
                        }
                        for session_id in exited
                    ],
                )
            conn.execute(events.delete().where(events.c.visitor_id == row.id))
            conn.execute(deliveries.delete().where(deliveries.c.visitor_id == row.id))
            outbox.erase_test_emails(conn, row.id)
            refusal_store.erase(conn, row.id)
            segment_store.forget_visitors(conn, [row.id])
            conn.execute(
                broadcast_engagements.delete().where(broadcast_engagements.c.visitor_id == row.id)
            )
            due_store.forget_visitors(conn, [row.id])
            conn.execute(visitors.delete().where(visitors.c.id == row.id))
            hashed = email_hash(row.email)
            exists = conn.execute(
                sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash == hashed)
            ).first()
            if not exists:
                conn.execute(suppressions.insert().values(email_hash=hashed, created_at=now))
        return {"erased": True, "sessions_exited": len(exited)}


def _check_send_at(send_at: datetime | None) -> None:
    """A broadcast's time must be one a definition could name (before the year 3000);
    DefinitionError otherwise."""
    if send_at is None:
        return
    try:
        check_instant_in_range(send_at)
    except ValueError as error:
        raise DefinitionError([Problem("send_at", str(error))]) from None


def _text_of(document: dict, text: str | None) -> str | None:
    """`text` if it reads as `document`, else None (a dump is stored instead): a
    version's text must always give its definition back, whatever a caller passed."""
    if text is None:
        return None
    try:
        return text if load_documents(text, "text") == [document] else None
    except DefinitionError:
        return None


def _count(conn, table: sa.Table, *conditions) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table).where(*conditions)).scalar()
