"""Why did a visitor get a flow, or one step of it — or why not? An answer built only
from stored facts: the visitor's sessions of the flow and their timelines, the latest
event the flow's trigger refused (store/refusals.py), and the visitor's events of the
trigger's types. Used by the API (`GET /api/visitors/{email}/explain`), the CLI
(`sluice visitors explain`) and the profile's "Why not?" page.

Verdicts (`Explanation.verdict`), in the order they are looked for:

- with a step, the newest session that reached it decides: `received` (sent,
  delivered, or for other steps passed), `email_skipped` (unsubscribed, suppressed),
  `failed` (why), `waiting` (the delivery is under way);
- the trigger's latest refusal, when it is newer than the newest session:
  `condition_false` (with the values the `if` read), `entry_rule` (which rule, and
  the session that blocked it), `flow_off` (off when the event came), `budget`;
- the newest session: `goal_exit` (left on a goal before the step), `branch_other_way`
  (an `if`, `split` or `wait_for` above the step took the other branch, with the
  values), `waiting` (until when), `in_progress`, `failed`, `stopped`, `exited` (an
  `exit` step), `received` (no step asked: the session completed), `elsewhere` (it
  completed without passing the step);
- no session and no refusal: `never_triggered` (no event of the trigger's types, or
  only ones from before the flow existed; for a `date` trigger, why its day has not
  come: no field, not a date, when it comes next, or passed before it was scheduled).

Bounded for a visitor with any history: the newest `SESSIONS` sessions of the flow are
looked at, and every query is per visitor (an index on `visitor_id` first).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.model import Step, child_lists, same_json
from sluice.engine import dates
from sluice.engine.work import FlowVersion
from sluice.narration import relative, url_host, value, when
from sluice.records import FlowStatus, Session, SessionStatus
from sluice.store import dates as date_store
from sluice.store import flows as flow_store
from sluice.store import refusals as refusal_store
from sluice.store.flows import Catalog
from sluice.store.schema import deliveries, due_checks, events, sessions, timeline

SESSIONS = 20
"""How many of the visitor's newest sessions of the flow are searched for the step."""


class Verdict(enum.StrEnum):
    RECEIVED = "received"
    NEVER_TRIGGERED = "never_triggered"
    CONDITION_FALSE = "condition_false"
    ENTRY_RULE = "entry_rule"
    FLOW_OFF = "flow_off"
    BUDGET = "budget"
    GOAL_EXIT = "goal_exit"
    BRANCH_OTHER_WAY = "branch_other_way"
    EMAIL_SKIPPED = "email_skipped"
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    STOPPED = "stopped"
    EXITED = "exited"
    ELSEWHERE = "elsewhere"


class UnknownStep(LookupError):
    """No version of the flow has a step with that id."""


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    """A path of the web UI."""


@dataclass(frozen=True)
class Explanation:
    email: str
    flow: str
    step: str | None
    verdict: Verdict
    sentence: str
    facts: dict[str, Any]
    """JSON: `visitor`, `flow`, `step`, and what the verdict rests on (`session`,
    `refusal`, `entry`, `trigger_events`)."""
    links: list[Link] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "flow": self.flow,
            "step": self.step,
            "verdict": self.verdict.value,
            "sentence": self.sentence,
            "facts": self.facts,
            "links": [{"label": link.label, "href": link.href} for link in self.links],
        }


def explain(
    conn: Connection,
    catalog: Catalog,
    visitor,
    flow_key: str,
    step_id: str | None,
    now: datetime,
) -> Explanation:
    """Explain for the visitor row `visitor` (store/visitors.find) and the flow; raises
    UnknownFlow, or UnknownStep when no version of the flow has the step `step_id`."""
    row = flow_store.get_flow(conn, flow_key)
    flow = catalog.flow(conn, flow_key, row.version)
    # A step removed since is explained from the newest version that had it: sessions
    # may have run it, or still be at it.
    step_flow = flow if step_id is None else _newest_with(conn, catalog, row, step_id)
    if step_flow is None:
        raise UnknownStep(f"flow '{flow_key}' has no step '{step_id}'")
    step = step_flow.tree.step(step_id) if step_id is not None else None
    facts: dict[str, Any] = {
        "visitor": {"email": visitor.email, "subscribed": visitor.unsubscribed_at is None},
        "flow": {
            "key": row.key,
            "name": row.name,
            "status": row.status.value,
            "version": row.version,
            "off_since": _iso(row.off_since),
            "trigger": list(flow.definition.trigger.events),
            "trigger_says": flow.definition.trigger.describe(),
        },
        "step": None
        if step is None
        else {"id": step.id, "kind": step.kind, "version": step_flow.version},
    }
    answer = _Answer(visitor.email, flow_key, step_id, facts, now)
    found = _sessions(conn, visitor.id, flow_key)
    if step is not None:
        reached = _step_outcome(conn, answer, found, step)
        if reached is not None:
            return reached
    refusal = refusal_store.latest(conn, visitor.id, flow_key)
    newest = found[0] if found else None
    if refusal and newest and refusal["event"]["id"] < newest.origin_event_id:
        refusal = None  # a session started since: the refusal is no longer the answer
    if refusal and (newest is None or step is None):
        return answer.give(*_refused(conn, answer, refusal))
    if newest is None:
        return _never_triggered(conn, answer, visitor, row, flow.definition.trigger)
    explanation = _from_session(conn, answer, newest, step_flow.definition.steps, step)
    if refusal is None:
        return explanation
    # Asked about a step, the newest session answers; a later event that started no
    # session is worth saying too.
    _, later = _refused(conn, answer, refusal)
    return answer.give(explanation.verdict, f"{explanation.sentence} {later}")


class _Answer:
    """What every verdict shares; `give` makes the Explanation."""

    def __init__(self, email, flow_key, step_id, facts, now):
        self.email, self.flow, self.step = email, flow_key, step_id
        self.facts, self.now = facts, now
        self.links: list[Link] = []

    def session(self, session: Session) -> str:
        self.facts["session"] = _session_facts(session)
        self.links.append(Link(f"Session #{session.id}", f"/sessions/{session.id}"))
        return f"session #{session.id}"

    def give(self, verdict: Verdict, sentence: str) -> Explanation:
        links = list(dict.fromkeys(self.links))  # a session may be named twice
        return Explanation(self.email, self.flow, self.step, verdict, sentence, self.facts, links)


# -- the step reached ------------------------------------------------------------------

_OUTCOMES = {
    "email_sent": Verdict.RECEIVED,
    "webhook_delivered": Verdict.RECEIVED,
    "email_skipped": Verdict.EMAIL_SKIPPED,
    "email_failed": Verdict.FAILED,
    "webhook_failed": Verdict.FAILED,
}


def _step_outcome(conn, answer: _Answer, found: list[Session], step: Step):
    """The verdict of the newest session that reached the step; None if none did."""
    if not found:
        return None
    by_id = {s.id: s for s in found}
    entries = conn.execute(
        sa.select(timeline.c.session_id, timeline.c.at, timeline.c.kind, timeline.c.data)
        .where(
            timeline.c.session_id.in_(by_id),
            timeline.c.step == step.id,
            timeline.c.kind.in_(["step", *_OUTCOMES]),  # `step`: the step began
        )
        .order_by(timeline.c.id.desc())
    ).all()
    if not entries:
        return None
    session = by_id[entries[0].session_id]
    mine = [e for e in entries if e.session_id == session.id]
    named = answer.session(session)
    outcome = next((e for e in mine if e.kind in _OUTCOMES), None)
    if outcome is not None:
        answer.facts["entry"] = _entry_facts(outcome)
        when = _when(outcome.at)
        match outcome.kind:
            case "email_sent":
                subject = _data(outcome).get("subject")
                about = f" “{subject}”" if subject else ""
                sentence = f"They got it: {named} sent the email{about} on {when}."
            case "webhook_delivered":
                sentence = f"They got it: {named} delivered the webhook on {when}."
            case "email_skipped":
                reason = _data(outcome).get("reason", "")
                sentence = f"The email was skipped on {when} ({named}): {_skip_reason(reason)}."
            case _:
                error = _data(outcome).get("error") or _data(outcome).get("reason") or "no reason"
                sentence = f"Delivery failed for good on {when} ({named}): {error}."
        return answer.give(_OUTCOMES[outcome.kind], sentence)
    began = mine[-1]
    if session.step == step.id and session.status == SessionStatus.FAILED:
        return _failed(conn, answer, session, named)
    if session.step == step.id and session.status in (SessionStatus.WAITING, SessionStatus.ACTIVE):
        doing = "it is there"
        if step.kind in ("email", "webhook"):
            doing = f"it is waiting {_delivery(conn, answer, session)}"
        elif session.wake_at:
            doing += f" until {_when(session.wake_at)} ({relative(session.wake_at, answer.now)})"
        verdict = (
            Verdict.WAITING if session.status == SessionStatus.WAITING else Verdict.IN_PROGRESS
        )
        return answer.give(
            verdict, f"{named.capitalize()} reached the step on {_when(began.at)}; {doing}."
        )
    return answer.give(Verdict.RECEIVED, f"They got it: {named} ran the step on {_when(began.at)}.")


def _skip_reason(reason: str) -> str:
    if reason == "unsubscribed":
        return "they were unsubscribed, and the email is not transactional"
    if reason == "address erased":
        return "the address is suppressed (a visitor with it was erased)"
    return reason


# -- refusals --------------------------------------------------------------------------


def _refused(conn, answer: _Answer, refusal: dict[str, Any]) -> tuple[Verdict, str]:
    """The verdict and sentence of the trigger's latest refusal."""
    answer.facts["refusal"] = refusal
    data, when = refusal["data"], _when(datetime.fromisoformat(refusal["at"]))
    came = f"Their latest {refusal['event']['type']} event ({when}) started no session"
    match refusal["reason"]:
        case "condition_false":
            values = _values(data["values"])
            error = f"; it failed: {data['error']}" if data.get("error") else ""
            read = f" ({values})" if values else ""
            condition = f"the trigger's condition `{data['condition']}`"
            sentence = f"{came}: {condition} was false{read}{error}."
            verdict = Verdict.CONDITION_FALSE
        case "entry_rule":
            blocker = data["session"]
            answer.links.append(Link(f"Session #{blocker}", f"/sessions/{blocker}"))
            rule = _entry_rule(data["rule"], blocker, _status(conn, blocker))
            verdict, sentence = Verdict.ENTRY_RULE, f"{came}: the entry rule {rule}."
        case "flow_off":
            verdict, sentence = Verdict.FLOW_OFF, f"{came}: the flow was off when it came."
        case _:
            verdict, sentence = Verdict.BUDGET, f"{came}: the {data['reason']}."
    if refusal["refusals"] > 1:
        sentence += f" The flow refused {refusal['refusals']} of their events in all."
    return verdict, sentence


def _entry_rule(rule: str, blocker: int, status: SessionStatus | None) -> str:
    """How the rule refused them, told by what the blocking session is now (None:
    it is gone, erased with its visitor's data)."""
    session = f"session #{blocker}" + (f", {status.value}" if status else "")
    if rule == "once":
        return f"`once` allows one session per visitor, and they already entered once ({session})"
    if rule == "one_at_a_time":
        if status is None or not status.finished:
            return (
                "`one_at_a_time` allows one session at a time, and they are already in the "
                f"flow ({session})"
            )
        return (
            "`one_at_a_time` allows one session at a time, and they were still in the flow "
            f"then (session #{blocker}, {status.value} since)"
        )
    return f"the cooldown allows no new session so soon after {session}"


def _status(conn, session_id: int) -> SessionStatus | None:
    status = conn.execute(
        sa.select(sessions.c.status).where(sessions.c.id == session_id)
    ).scalar_one_or_none()
    return None if status is None else SessionStatus(status)


# -- the newest session ----------------------------------------------------------------


def _from_session(conn, answer: _Answer, session: Session, steps, step: Step | None):
    named = answer.session(session)
    paused = answer.facts["flow"]["status"] == FlowStatus.OFF and not session.status.finished
    status = session.status
    entries = []
    if step is not None or status in (SessionStatus.EXITED, SessionStatus.FAILED):
        entries = conn.execute(
            sa.select(timeline.c.at, timeline.c.step, timeline.c.kind, timeline.c.data)
            .where(timeline.c.session_id == session.id)
            .order_by(timeline.c.id)
        ).all()
    goal = next((e for e in entries if e.kind == "goal"), None)
    if status == SessionStatus.EXITED and goal is not None:
        answer.facts["entry"] = _entry_facts(goal)
        event = _data(goal).get("event", {}).get("type", "an event")
        before = " before reaching the step" if step else ""
        return answer.give(
            Verdict.GOAL_EXIT,
            f"{named.capitalize()} exited on its goal{before}: a {event} event came on "
            f"{_when(goal.at)}, while it was at step {session.step}.",
        )
    if step is not None:
        turn = _branch_taken(entries, _ancestors(steps, step.id))
        if turn is not None:
            answer.facts["entry"] = _entry_facts(turn[0])
            return answer.give(Verdict.BRANCH_OTHER_WAY, f"{named.capitalize()} {turn[1]}.")
    where = f"at step {session.step}" if session.step else "at its start"
    on_hold = " The flow is off, so it is paused." if paused else ""
    at = f"has not reached the step yet: it is {where}" if step else f"is {where}"
    match status:
        case SessionStatus.WAITING:
            until = []
            if session.waiting_for:
                until.append(f"for a {session.waiting_for} event")
            if session.wake_at:
                told = relative(session.wake_at, answer.now)
                until.append(f"until {_when(session.wake_at)} ({told})")
            detail = " ".join(until) or _delivery(conn, answer, session)
            return answer.give(
                Verdict.WAITING, f"{named.capitalize()} {at}, waiting {detail}.{on_hold}"
            )
        case SessionStatus.ACTIVE:
            return answer.give(
                Verdict.IN_PROGRESS, f"{named.capitalize()} {at}, running now.{on_hold}"
            )
        case SessionStatus.STOPPED:
            return answer.give(
                Verdict.STOPPED,
                f"{named.capitalize()} was stopped for this visitor {where}.",
            )
        case SessionStatus.FAILED:
            return _failed(conn, answer, session, named, entries)
        case SessionStatus.EXITED:
            exited = next((e for e in reversed(entries) if e.kind == "exited"), None)
            reason = _data(exited).get("reason", "an exit step") if exited else "an exit step"
            return answer.give(
                Verdict.EXITED,
                f"{named.capitalize()} exited ({reason}) on {_when(session.finished_at)} "
                f"at step {session.step}.",
            )
    if step is None:
        return answer.give(
            Verdict.RECEIVED,
            f"They got it: {named} started on {_when(session.started_at)} and completed on "
            f"{_when(session.finished_at)}.",
        )
    return answer.give(
        Verdict.ELSEWHERE,
        f"{named.capitalize()} completed on {_when(session.finished_at)} without passing "
        "the step (it went another way, or the step was added after it passed that point).",
    )


def _delivery(conn, answer: _Answer, session: Session) -> str:
    """`for its webhook to HOST, which is failing: ERROR (attempt 2 of 8); next attempt
    at …`: how the delivery the session waits for is doing, read from its row (which
    goes into the facts as `delivery`)."""
    wanted = (session.state or {}).get("delivery", {}).get("id")
    row = None
    if wanted is not None:
        row = conn.execute(
            sa.select(
                deliveries.c.kind,
                deliveries.c.state,
                deliveries.c.attempts,
                deliveries.c.max_attempts,
                deliveries.c.next_attempt_at,
                deliveries.c.last_error,
                deliveries.c.payload,
            ).where(deliveries.c.idempotency_id == wanted)
        ).first()
    if row is None:
        return "for a delivery to finish"
    answer.facts["delivery"] = {
        "kind": row.kind,
        "state": row.state,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_error": row.last_error,
    }
    payload = row.payload if isinstance(row.payload, dict) else {}
    if row.kind == "webhook":
        url = payload.get("url")
        what = f"its webhook to {url_host(url)}" if isinstance(url, str) else "its webhook"
    else:
        subject = payload.get("subject")
        what = f"its email “{subject}”" if subject else "its email"
    if not (row.attempts and row.last_error):
        return f"for {what} to be delivered"
    failing = (
        f"for {what}, which is failing: {row.last_error} "
        f"(attempt {row.attempts} of {row.max_attempts})"
    )
    if row.next_attempt_at is not None and row.state == "pending":
        at = row.next_attempt_at
        failing += f"; next attempt at {_when(at)} ({relative(at, answer.now)})"
    return failing


def _failed(conn, answer, session: Session, named: str, entries=None) -> Explanation:
    if entries is None:
        entries = conn.execute(
            sa.select(timeline.c.at, timeline.c.step, timeline.c.kind, timeline.c.data)
            .where(timeline.c.session_id == session.id, timeline.c.kind == "failed")
            .order_by(timeline.c.id)
        ).all()
    failed = next((e for e in reversed(entries) if e.kind == "failed"), None)
    error = _data(failed).get("error", "no reason recorded") if failed else "no reason recorded"
    if failed is not None:
        answer.facts["entry"] = _entry_facts(failed)
    return answer.give(
        Verdict.FAILED,
        f"{named.capitalize()} failed at step {session.step} on {_when(session.finished_at)}: "
        f"{error}.",
    )


def _ancestors(steps, target: str) -> list[tuple[Step, str]]:
    """The steps whose branches hold `target`, outermost first, each with the name of
    the branch (`then`, `else`, `on_timeout`, `split.1.steps`, …) that holds it."""
    for step in steps:
        if step.id == target:
            return []
        for name, children in child_lists(step):
            inner = _ancestors(children, target)
            if inner is not None:
                return [(step, name), *inner]
    return None  # type: ignore[return-value]


def _branch_taken(entries, ancestors) -> tuple[Any, str] | None:
    """The first `if`, `split` or `wait_for` above the step whose timeline entry says
    it went another way, and how to say so."""
    for owner, branch in ancestors or ():
        for e in reversed(entries):
            if e.step != owner.id:
                continue
            if e.kind == "branch":
                went = "then" if _data(e).get("result") else "else"
                if went != branch:
                    values = _values(_data(e).get("values", {}))
                    read = f" ({values})" if values else ""
                    result = "true" if _data(e).get("result") else "false"
                    return e, (
                        f"went {went} at step {owner.id} on {_when(e.at)}: "
                        f"`{_data(e).get('condition')}` was {result}{read}, "
                        f"and the step is on the {branch} side"
                    )
                break
            if e.kind == "split":
                chosen = f"split.{_data(e).get('branch')}.steps"
                if chosen != branch:
                    return e, (
                        f"was sent down branch {_data(e).get('branch')} of the split at step "
                        f"{owner.id} on {_when(e.at)}; the step is on branch "
                        f"{branch.split('.')[1]}"
                    )
                break
            if e.kind in ("wait_timed_out", "wait_ended", "event_received"):
                went = "on_timeout" if e.kind == "wait_timed_out" else "then"
                if went != branch:
                    how = "timed out" if went == "on_timeout" else "ended with the event"
                    return e, (
                        f"went {went} at step {owner.id}: the wait {how} on {_when(e.at)}, "
                        f"and the step is on the {branch} side"
                    )
                break
    return None


# -- no session, no refusal ------------------------------------------------------------


def _never_triggered(conn, answer: _Answer, visitor, row, trigger) -> Explanation:
    """No session and no refusal: the latest event the trigger names (a data change's
    origin event must name its tag or field too: the newest 1,000 are looked at)."""
    matching = sa.select(events.c.id, events.c.type, events.c.details, events.c.accepted_at).where(
        events.c.visitor_id == visitor.id, events.c.type.in_(trigger.events)
    )
    recent = conn.execute(matching.order_by(events.c.id.desc()).limit(1000))
    latest = next((e for e in recent if trigger.matches(e.type, e.details)), None)
    answer.facts["trigger_events"] = {"latest": None}
    if latest is None:
        if trigger.kind == "event":
            never = f"no {' or '.join(trigger.events)} event has come for this visitor"
        elif trigger.kind == "webhook":
            never = f"no call of its hook ({trigger.describe()}) named this visitor"
        elif trigger.kind == "segment":
            never = f"this visitor was never recorded as {trigger.describe()}"
        elif trigger.kind == "date":
            never = _date_to_come(conn, visitor, row.key, trigger)
        elif _has_already(visitor, trigger):
            never = (
                f"they have it ({trigger.describe()}), but not from a change that starts "
                "flows: an import, or a change made before this trigger named it"
            )
        else:
            never = f"this visitor's data never changed as it names ({trigger.describe()})"
        return answer.give(Verdict.NEVER_TRIGGERED, f"Never triggered: {never}.")
    answer.facts["trigger_events"]["latest"] = {
        "id": latest.id,
        "type": latest.type,
        "accepted_at": latest.accepted_at.isoformat(),
    }
    if latest.accepted_at < row.created_at:
        why = f"before the flow was created ({_when(row.created_at)})"
    else:
        why = "before Sluice recorded why a trigger refused an event"
    return answer.give(
        Verdict.NEVER_TRIGGERED,
        f"Never triggered: their latest {latest.type} event came on "
        f"{_when(latest.accepted_at)}, {why}.",
    )


def _date_to_come(conn, visitor, flow_key: str, trigger) -> str:
    """Why a date trigger has not fired for the visitor: no field, not a date, not
    come yet (its due check says when), or passed before it was scheduled."""
    name, says = trigger.date.field, trigger.describe()
    fields = visitor.fields or {}
    if name not in fields:
        return f"this visitor has no field {name} ({says})"
    day = dates.field_day(fields[name])
    if day is None:
        return f"field {name} holds {value(fields[name])}, which is not a date ({says})"
    due = conn.execute(
        sa.select(due_checks.c.due_at).where(
            due_checks.c.kind == date_store.KIND,
            due_checks.c.key == flow_key,
            due_checks.c.visitor_id == visitor.id,
        )
    ).scalar()
    named = f"the date in field {name} ({day.isoformat()})"
    if due is not None:
        return f"{named} has not come yet; it comes next on {_when(due)}"
    return (
        f"{named} had passed when it was scheduled ({says}), and a date in the past starts nothing"
    )


def _has_already(visitor, trigger) -> bool:
    """Whether the visitor has what a trigger on a data change names: the tag, or the
    field (with its `to` value when one is named)."""
    wanted = dict(trigger.match)
    if trigger.kind == "tag_added":
        return wanted.get("tag") in visitor.tags
    fields = visitor.fields or {}
    if wanted.get("field") not in fields:
        return False
    return "to" not in wanted or same_json(fields[wanted["field"]], wanted["to"])


# -- helpers ---------------------------------------------------------------------------


def _sessions(conn, visitor_id: int, flow_key: str) -> list[Session]:
    rows = conn.execute(
        sa.select(sessions)
        .where(sessions.c.visitor_id == visitor_id, sessions.c.flow_key == flow_key)
        .order_by(sessions.c.id.desc())
        .limit(SESSIONS)
    )
    return [Session.from_row(r) for r in rows]


def _session_facts(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "status": s.status.value,
        "step": s.step,
        "flow_version": s.flow_version,
        "started_at": _iso(s.started_at),
        "finished_at": _iso(s.finished_at),
        # A stopped session keeps them for its resume; it waits for nothing meanwhile.
        "wake_at": _iso(s.wake_at) if s.status == SessionStatus.WAITING else None,
        "waiting_for": s.waiting_for if s.status == SessionStatus.WAITING else None,
    }


def _entry_facts(e) -> dict[str, Any]:
    return {"at": e.at.isoformat(), "kind": e.kind, "data": e.data}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when(value: datetime | None) -> str:
    return "—" if value is None else when(value)


def _values(reads: dict[str, Any]) -> str:
    """`a = 1, b = "x"`: the values a condition read, by path (JSONB keeps no order)."""
    return ", ".join(f"{path} = {value(v)}" for path, v in sorted(reads.items()))


def _data(entry) -> dict[str, Any]:
    """A timeline entry's data, `{}` when it is not an object: entries are read as
    stored, and an answer must not fail on one of an unexpected shape."""
    return entry.data if isinstance(entry.data, dict) else {}


def _newest_with(conn: Connection, catalog: Catalog, row, step_id: str) -> FlowVersion | None:
    """The newest version of the flow `row` that has the step `step_id`, else None."""
    for version in range(row.version, 0, -1):
        flow = catalog.flow(conn, row.key, version)
        if step_id in flow.tree:
            return flow
    return None
