"""What saving an edit of a flow does to its live sessions: the report shown before
saving (the API's preview, `apply --dry-run`, the editors).

SPEC §2.7 says what the engine does with a session when its flow changes
(`engine/runner.py`, `_Run._migrate`): a session at step S continues at S, else at the
first later step of its version that still exists, else completes; a session waiting
on a `wait` or `wait_for` that kept its id and kind re-computes its wake-up time from
when the wait began (`state.wait.began_at`); one waiting on a step that is gone or
changed kind leaves it at once and runs on from where it continues. A flow that is on
makes its sessions due when it is saved (`store/flows.py`, `save_flow`), so all of this
happens at once; a flow that is off does it when turned on.

This module predicts that without moving anything, with set-based SQL: sessions are
counted by (version, step), and the wake-up times of a changed wait by comparing
`began_at` with one threshold per group (per time zone for `at` waits, per distinct
value of the field for `until_field`), so the cost does not grow with Python work per
session. The report (its shape is in docs/api.md, "Impact of an edit"):

- `moves`: sessions at a step id that no longer exists, and where they continue;
- `removed`: steps of the current version that the edit removes;
- `waits`: sessions whose wait ends differently: how many wake at once, how many later
  (earliest/latest new wake-up), and the emails and webhooks those waking at once then
  send (the new tree walked from where they continue to the next wait, `wait_for` or
  end; steps past an `if`, `split` or a webhook's `on_failure` are marked `maybe`);
- `branches`: `if`, `split` and `wait_for` steps that changed, with the sessions that
  are in or before them;
- `sends_at_once`: `{sessions, emails, webhooks}`, the sessions that will send
  something at once and the emails and webhooks they send (at most, with `maybe`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.definitions.durations import format_duration
from sluice.definitions.model import (
    EmailAction,
    FlowDefinition,
    IfAction,
    SplitAction,
    Step,
    WaitAction,
    WaitForAction,
    WebhookAction,
    child_lists,
    iter_steps,
)
from sluice.engine.timing import next_time_of_day, visitor_zone, wake_time
from sluice.engine.tree import FlowTree
from sluice.records import UNFINISHED, SessionStatus
from sluice.store import flows as flow_store
from sluice.store.flows import Catalog
from sluice.store.schema import sessions, visitors

_UNFINISHED = [s.value for s in UNFINISHED]
_RUNNABLE = [SessionStatus.ACTIVE.value, SessionStatus.WAITING.value]
_WAITS = ("wait", "wait_for")
_BRANCHING = ("if", "split", "wait_for")


@dataclass(frozen=True)
class _Group:
    """Unfinished sessions of one version at one step, in one state."""

    version: int
    step: str | None
    status: str
    begun: bool
    sessions: int
    subscribed: int


def empty() -> dict[str, Any]:
    """The impact of an edit that touches no session (or of a new flow)."""
    return {
        "moves": [],
        "removed": [],
        "waits": [],
        "branches": [],
        "sends_at_once": {"sessions": 0, "emails": 0, "webhooks": 0},
        "summary": [],
        "warning": None,
    }


def preview(
    conn: Connection,
    catalog: Catalog,
    flow: FlowDefinition,
    *,
    now: datetime,
    default_timezone: str,
) -> dict[str, Any]:
    """`{"blast_radius", "impact"}` of saving `flow` at `now`, reading the sessions once."""
    groups = _groups(conn, flow.key)
    return {
        "blast_radius": _blast_radius(conn, catalog, flow, groups),
        "impact": impact(
            conn, catalog, flow, now=now, default_timezone=default_timezone, groups=groups
        ),
    }


def _blast_radius(
    conn: Connection, catalog: Catalog, flow: FlowDefinition, groups: list[_Group]
) -> list[dict[str, Any]]:
    """For every step where unfinished sessions are now: how many, and where they would
    continue under `flow` (SPEC §2.7): `[{"step", "sessions", "continues_at"}]`."""
    new_tree = FlowTree(flow)
    places: dict[tuple, int] = defaultdict(int)
    for group in groups:
        old_tree = catalog.flow(conn, flow.key, group.version).tree
        places[(group.step, new_tree.continue_at(old_tree, group.step))] += group.sessions
    return [
        {"step": step, "sessions": count, "continues_at": target}
        for (step, target), count in sorted(places.items(), key=lambda p: str(p[0]))
    ]


def impact(
    conn: Connection,
    catalog: Catalog,
    flow: FlowDefinition,
    *,
    now: datetime,
    default_timezone: str,
    groups: list[_Group] | None = None,
) -> dict[str, Any]:
    """The full report of what saving `flow` does to the flow's unfinished sessions at
    `now` (module docstring; shape in docs/api.md). A new flow has none: `empty()`.
    `groups`: the sessions as `_groups` counts them, when already read."""
    try:
        current = flow_store.get_flow(conn, flow.key)
    except flow_store.UnknownFlow:
        return empty()
    new_tree = FlowTree(flow)
    current_tree = catalog.flow(conn, flow.key, current.version).tree
    report = empty()
    groups = _groups(conn, flow.key) if groups is None else groups
    trees = {g.version: catalog.flow(conn, flow.key, g.version).tree for g in groups}

    moves: dict[tuple, int] = defaultdict(int)
    at_step: dict[str, int] = defaultdict(int)
    for group in groups:
        target = new_tree.continue_at(trees[group.version], group.step)
        if target != group.step:
            moves[(group.step, target)] += group.sessions
        at_step[group.step] += group.sessions
    report["moves"] = [
        {"step": step, "sessions": count, "continues_at": target}
        for (step, target), count in sorted(moves.items(), key=lambda p: str(p[0]))
    ]
    report["removed"] = [
        {"step": step_id, "kind": current_tree.step(step_id).kind, "sessions": at_step[step_id]}
        for step_id in current_tree.ids_in_order()
        if step_id not in new_tree
    ]

    waits = _Waits(
        conn, flow, new_tree, current_tree.definition, now=now, default_timezone=default_timezone
    )
    for group in groups:
        if group.status == SessionStatus.WAITING and group.begun:
            entry = waits.of(group, trees[group.version])
            if entry is not None:
                report["waits"].append(entry)
    report["branches"] = _branches(flow, new_tree, current_tree, groups, trees)

    totals = report["sends_at_once"]
    for entry in report["waits"]:
        if entry["then_sends"] and entry["wake_now"]:
            totals["sessions"] += entry["wake_now"]
        for send in entry["then_sends"]:
            totals[f"{send['kind']}s"] += send["sessions"]
    report["summary"], report["warning"] = sentences(report)
    return report


def _groups(conn: Connection, key: str) -> list[_Group]:
    subscribed = sa.func.sum(sa.case((visitors.c.unsubscribed_at.is_(None), 1), else_=0))
    rows = conn.execute(
        sa.select(
            sessions.c.flow_version,
            sessions.c.step,
            sessions.c.status,
            sessions.c.step_begun,
            sa.func.count(),
            subscribed,
        )
        .select_from(sessions.outerjoin(visitors, visitors.c.id == sessions.c.visitor_id))
        .where(sessions.c.flow_key == key, sessions.c.status.in_(_UNFINISHED))
        .group_by(
            sessions.c.flow_version, sessions.c.step, sessions.c.status, sessions.c.step_begun
        )
    ).all()
    return [
        _Group(v, step, status, bool(begun), n, int(s or 0))
        for v, step, status, begun, n, s in rows
    ]


# -- waits ------------------------------------------------------------------------------


@dataclass
class _Wakes:
    """When the sessions of one group wake under the new definition."""

    now: int = 0
    now_subscribed: int = 0
    later: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None

    def add_later(self, count: int, first: datetime, last: datetime) -> None:
        if count <= 0:
            return
        self.later += count
        self.earliest = first if self.earliest is None else min(self.earliest, first)
        self.latest = last if self.latest is None else max(self.latest, last)


class _Waits:
    """The `waits` entries: one per (version, step) of sessions waiting there whose wait
    ends differently under the new definition."""

    def __init__(
        self,
        conn: Connection,
        flow: FlowDefinition,
        tree: FlowTree,
        current: FlowDefinition,
        *,
        now: datetime,
        default_timezone: str,
    ):
        self.conn, self.flow, self.tree, self.now = conn, flow, tree, now
        self.default_timezone = default_timezone
        self.timezone_changed = current.timezone != flow.timezone

    def of(self, group: _Group, old_tree: FlowTree) -> dict[str, Any] | None:
        if group.step is None or group.step not in old_tree:
            return None
        old = old_tree.step(group.step)
        target = self.tree.continue_at(old_tree, group.step)
        if target is None:
            return None  # the sessions complete (listed in `moves`); nothing is sent
        if target != group.step or self.tree.step(target).kind != old.kind:
            # The engine leaves the wait at once and runs from `target` (_leave_wait).
            change = (
                "removed"
                if target != group.step
                else f"became a {self.tree.step(target).kind} step"
            )
            wakes = _Wakes(now=group.sessions, now_subscribed=group.subscribed)
            return self._entry(group, old, None, change, wakes, continues_at=target)
        if old.kind not in _WAITS:
            return None  # an email or webhook waiting for its delivery: unchanged
        new = self.tree.step(target)
        if not self._recomputes(old, new):
            return None
        wakes = self._wakes(group, new)
        if wakes.now + wakes.later == 0:
            return None
        continues_at = (
            self.tree.enter(new.action.on_timeout, new.id)
            if new.kind == "wait_for"
            else self.tree.next_after(new.id)
        )
        return self._entry(group, old, new, "changed", wakes, continues_at=continues_at)

    def _recomputes(self, old: Step, new: Step) -> bool:
        """Whether the wake-up time of sessions waiting at `new` can differ from now."""
        if old.kind == "wait_for":
            return old.action.timeout != new.action.timeout
        if old.action != new.action:
            return True
        # An unchanged time-of-day wait still moves when the flow's time zone changes.
        return new.action.at is not None and self.timezone_changed

    # How the engine re-computes (runner._rewait → timing.wake_time), per form, in SQL.

    def _wakes(self, group: _Group, new: Step) -> _Wakes:
        began = sessions.c.state[("wait", "began_at")].as_string()
        if self.conn.dialect.name == "postgresql":
            # Compared as text (below), in byte order whatever the database's collation.
            began = began.collate("C")
        where = [
            sessions.c.flow_key == self.flow.key,
            sessions.c.flow_version == group.version,
            sessions.c.step == group.step,
            sessions.c.status == SessionStatus.WAITING,
            sessions.c.step_begun.is_(True),
            # A session whose wait has already ended wakes anyway, edit or not.
            sessions.c.wake_at > self.now,
        ]
        action = new.action
        if isinstance(action, WaitForAction):
            return self._by_duration(began, where, action.timeout)
        if action.for_ is not None:
            return self._by_duration(began, where, action.for_)
        if action.until is not None:
            return self._until(began, where, action.until)
        if action.at is not None:
            return self._at(began, where, action)
        return self._until_field(where, action)

    def _count(self, where, *columns, group_by=()) -> list:
        query = (
            sa.select(*columns)
            .select_from(sessions.outerjoin(visitors, visitors.c.id == sessions.c.visitor_id))
            .where(*where)
        )
        if group_by:
            query = query.group_by(*group_by)
        return self.conn.execute(query).all()

    def _by_duration(self, began, where, duration: timedelta) -> _Wakes:
        """Wake-up = began + duration: at once when began ≤ now − duration. `began_at`
        is ISO 8601 in UTC as the engine writes it, so text order is time order."""
        threshold = (self.now - duration).isoformat()
        due = began <= threshold
        subscribed = visitors.c.unsubscribed_at.is_(None)
        (row,) = self._count(
            where,
            sa.func.sum(sa.case((due, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(due, subscribed), 1), else_=0)),
            sa.func.count(),
            sa.func.min(sa.case((~due, began))),
            sa.func.max(began),
        )
        now, now_subscribed, total, first_later, last = row
        wakes = _Wakes(now=int(now or 0), now_subscribed=int(now_subscribed or 0))
        if first_later is not None:
            wakes.add_later(
                total - wakes.now,
                datetime.fromisoformat(first_later) + duration,
                datetime.fromisoformat(last) + duration,
            )
        return wakes

    def _until(self, began, where, until: datetime) -> _Wakes:
        subscribed = visitors.c.unsubscribed_at.is_(None)
        (row,) = self._count(where, sa.func.count(), sa.func.sum(sa.case((subscribed, 1), else_=0)))
        total, total_subscribed = int(row[0] or 0), int(row[1] or 0)
        if until <= self.now:
            return _Wakes(now=total, now_subscribed=total_subscribed)
        wakes = _Wakes()
        wakes.add_later(total, until, until)
        return wakes

    def _at(self, began, where, action: WaitAction) -> _Wakes:
        """Wake-up = the first `at` after began in the visitor's zone: at once when an
        `at` came between began and now, i.e. when began < the last `at` ≤ now in that
        zone; the others all wake at the next `at` after now. One threshold per zone
        named in visitors' `timezone` fields."""
        named = visitors.c.fields["timezone"].as_string()
        zones = {
            name: visitor_zone({"timezone": name}, self.flow.timezone, self.default_timezone).zone
            for (name,) in self._count(where, named, group_by=[named])
        }
        if not zones:
            return _Wakes()
        thresholds = {
            name: _last_time_of_day(self.now, action, z).isoformat() for name, z in zones.items()
        }
        default = visitor_zone({}, self.flow.timezone, self.default_timezone).zone
        threshold = sa.case(
            *[(named == name, value) for name, value in thresholds.items() if name is not None],
            else_=_last_time_of_day(self.now, action, default).isoformat(),
        )
        due = began < threshold
        subscribed = visitors.c.unsubscribed_at.is_(None)
        wakes = _Wakes()
        for name, now, now_subscribed, total in self._count(
            where,
            named,
            sa.func.sum(sa.case((due, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(due, subscribed), 1), else_=0)),
            sa.func.count(),
            group_by=[named],
        ):
            wakes.now += int(now or 0)
            wakes.now_subscribed += int(now_subscribed or 0)
            following = next_time_of_day(self.now, action, zones[name])
            wakes.add_later(total - int(now or 0), following, following)
        return wakes

    def _field_json(self, name: str):
        """A visitor's field as its JSON value, read as the engine reads the fields: the
        value's JSON text, parsed in Python. SQLAlchemy's index on SQLite
        (`json_quote(json_extract(…))`) prints a number from a double with 15 digits,
        which rounds it, and makes 1.7976931348623157e308 (the largest double) a number
        no JSON reader takes; `->` gives the text as stored."""
        if self.conn.dialect.name != "sqlite":
            return visitors.c.fields[name]
        path = f'$."{name}"'  # the path SQLAlchemy's index writes
        return sa.type_coerce(visitors.c.fields.op("->")(sa.literal(path)), sa.JSON)

    def _until_field(self, where, action: WaitAction) -> _Wakes:
        """Wake-up = the visitor's date field + offset (a missing, unreadable or passed
        date ends the wait at once). Read per distinct value of the field, not per
        session; `began_at` does not matter to whether it is at once (began ≤ now)."""
        value = self._field_json(action.until_field)
        subscribed = visitors.c.unsubscribed_at.is_(None)
        zone = visitor_zone({}, self.flow.timezone, self.default_timezone)
        wakes = _Wakes()
        for raw, total, total_subscribed in self._count(
            where,
            value,
            sa.func.count(),
            sa.func.sum(sa.case((subscribed, 1), else_=0)),
            group_by=[value],
        ):
            fields = {} if raw is None else {action.until_field: raw}
            at = wake_time(action, began_at=self.now, fields=fields, zone=zone).at
            if at <= self.now:
                wakes.now += total
                wakes.now_subscribed += int(total_subscribed or 0)
            else:
                wakes.add_later(total, at, at)
        return wakes

    def _entry(
        self,
        group: _Group,
        old: Step,
        new: Step | None,
        change: str,
        wakes: _Wakes,
        *,
        continues_at: str | None,
    ) -> dict[str, Any]:
        sends = _sends_from(self.tree, continues_at) if wakes.now else []
        return {
            "step": old.id,
            "kind": old.kind,
            "version": group.version,
            "sessions": wakes.now + wakes.later,
            "change": change,
            "old": describe_wait(old),
            "new": describe_wait(new) if new is not None else None,
            "wake_now": wakes.now,
            "wake_later": wakes.later,
            "earliest": _iso(wakes.earliest),
            "latest": _iso(wakes.latest),
            "continues_at": continues_at,
            "then_sends": [
                {
                    "step": step.id,
                    "kind": step.kind,
                    "summary": _summary(step),
                    "maybe": not certain,
                    # Marketing email skips unsubscribed visitors (SPEC §2.2).
                    "sessions": wakes.now
                    if step.kind == "webhook" or step.action.transactional
                    else wakes.now_subscribed,
                }
                for step, certain in sends
            ],
        }


def _last_time_of_day(now: datetime, wait: WaitAction, zone) -> datetime:
    """The last moment at or before `now` when the wall clock in `zone` read `wait.at`
    on an allowed weekday (the mirror of timing.next_time_of_day)."""
    local = now.astimezone(zone)
    for days in range(8):
        day = local.date() - timedelta(days=days)
        if wait.on is not None and day.weekday() not in wait.on:
            continue
        candidate = datetime.combine(day, wait.at, tzinfo=zone).astimezone(UTC)
        if candidate <= now:
            return candidate
    raise AssertionError("a weekday always comes within eight days")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


# -- what sessions send once they move on ----------------------------------------------------


def _sends_from(tree: FlowTree, start: str | None) -> list[tuple[Step, bool]]:
    """The email and webhook steps a session runs at once from `start` (included), up to
    the next `wait`, `wait_for`, `exit` or the end: `[(step, certain)]` in document
    order. Past an `if` or `split`, both ways are walked and what follows is uncertain;
    so is a webhook's `on_failure` branch."""
    found: dict[str, bool] = {}
    seen: set[tuple[str, bool]] = set()

    def walk(step_id: str | None, certain: bool) -> None:
        while step_id is not None and (step_id, certain) not in seen:
            seen.add((step_id, certain))
            step = tree.step(step_id)
            if step.kind in _WAITS or step.kind == "exit":
                return
            if step.kind in ("email", "webhook"):
                found[step_id] = found.get(step_id, False) or certain
            if step.kind in ("if", "split"):
                for _, branch in child_lists(step):
                    walk(tree.enter(branch, step_id), False)
                return
            if isinstance(step.action, WebhookAction) and step.action.on_failure:
                walk(tree.enter(step.action.on_failure, step_id), False)
            step_id = tree.next_after(step_id)

    walk(start, True)
    order = tree.ids_in_order()
    return [(tree.step(s), found[s]) for s in sorted(found, key=order.index)]


def _summary(step: Step) -> str:
    action = step.action
    if isinstance(action, EmailAction):
        if action.subject is not None:
            return f"email “{action.subject.source}”"
        return f"email from template {action.template}"
    return f"{action.method} {action.url.source}"


def describe_wait(step: Step) -> str:
    """A wait or wait_for's timing in words: `2d`, `until 2026-12-24T09:00:00+00:00`,
    `at 09:30 on mon, tue`, `until_field trial_ends_at − 3d`, `completed_setup, timeout 3d`."""
    action = step.action
    if isinstance(action, WaitForAction):
        return f"{action.event}, timeout {format_duration(action.timeout)}"
    if not isinstance(action, WaitAction):
        return f"{step.kind} step"
    if action.for_ is not None:
        return format_duration(action.for_)
    if action.until is not None:
        return f"until {action.until.isoformat()}"
    if action.at is not None:
        days = ""
        if action.on is not None:
            names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            days = " on " + ", ".join(names[d] for d in sorted(action.on))
        return f"at {action.at.strftime('%H:%M')}{days}"
    offset = ""
    if action.offset:
        sign = "-" if action.offset < timedelta(0) else "+"
        offset = f" {sign} {format_duration(abs(action.offset))}"
    return f"until_field {action.until_field}{offset}"


# -- branches ----------------------------------------------------------------------------


def _branches(
    flow: FlowDefinition,
    new_tree: FlowTree,
    current_tree: FlowTree,
    groups: list[_Group],
    trees: dict[int, FlowTree],
) -> list[dict[str, Any]]:
    """Changed `if`, `split` and `wait_for` steps, with the runnable sessions in them or
    before them (that will reach them), and what changed in words."""
    changed = []
    for step in iter_steps(flow.steps):
        if step.kind not in _BRANCHING:
            continue
        old = current_tree.step(step.id) if step.id in current_tree else None
        words = _branch_change(current_tree.definition.source, old, flow.source, step)
        if words:
            changed.append((step, words))
    if not changed:
        return []
    positions: dict[str, int] = defaultdict(int)
    for group in groups:
        if group.status in _RUNNABLE:
            target = new_tree.continue_at(trees[group.version], group.step)
            if target is not None:
                positions[target] += group.sessions
    reach = {position: _ahead(new_tree, position) for position in positions}
    report = []
    for step, words in changed:
        inside = {s.id for _, branch in child_lists(step) for s in iter_steps(branch)}
        count = sum(
            n
            for position, n in positions.items()
            if position in inside or step.id in reach[position]
        )
        report.append({"step": step.id, "kind": step.kind, "sessions": count, "change": words})
    return report


def _ahead(tree: FlowTree, start: str) -> set[str]:
    """Every step a session at `start` can still run, `start` included."""
    found: set[str] = set()
    stack = [start]
    while stack:
        step_id = stack.pop()
        if step_id is None or step_id in found:
            continue
        found.add(step_id)
        stack.append(tree.next_after(step_id))
        stack += [tree.enter(branch, step_id) for _, branch in child_lists(tree.step(step_id))]
    return found


def _branch_change(old_source: dict, old: Step | None, new_source: dict, new: Step) -> str:
    """What changed in a branching step, in words; '' when nothing did."""
    if old is None:
        return f"new {new.kind} step"
    if old.kind != new.kind:
        return f"was a {old.kind} step, now a {new.kind} step"
    parts = []
    match old.action, new.action:
        case IfAction() as a, IfAction() as b:
            if a.condition.source != b.condition.source:
                parts.append(f"condition `{a.condition.source}` → `{b.condition.source}`")
            parts += _lists_changed(old_source, old, new_source, new)
        case SplitAction() as a, SplitAction() as b:
            before = "/".join(str(x.weight) for x in a.branches)
            after = "/".join(str(x.weight) for x in b.branches)
            if before != after:
                parts.append(f"weights {before} → {after}")
            parts += _lists_changed(old_source, old, new_source, new)
        case WaitForAction() as a, WaitForAction() as b:
            if a.event != b.event:
                parts.append(f"waits for `{b.event}` instead of `{a.event}`")
            if a.condition != b.condition:
                source = b.condition.source if b.condition else "none"
                parts.append(f"condition now `{source}`")
            parts += _lists_changed(old_source, old, new_source, new)
    return "; ".join(parts)


_SPLIT_BRANCH = re.compile(r"split\.(\d+)\.steps")
_LOC_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def _lists_changed(old_source: dict, old: Step, new_source: dict, new: Step) -> list[str]:
    """Which branches of a step were added, removed or changed, comparing the steps as
    written (a `Step` also holds its position, which moves with any edit above it)."""
    before, after = _raw_branches(old_source, old), _raw_branches(new_source, new)
    words = []
    for name in dict.fromkeys([*before, *after]):
        label = (
            f"branch {int(m.group(1)) + 1}" if (m := _SPLIT_BRANCH.fullmatch(name)) else f"'{name}'"
        )
        if name not in before:
            words.append(f"{label} added")
        elif name not in after:
            words.append(f"{label} removed")
        elif before[name] != after[name]:
            words.append(f"{label} steps changed")
    return words


def _raw_branches(source: dict, step: Step) -> dict[str, Any]:
    """The step lists of a step as written, named as `model.child_lists` names them."""
    raw: Any = source
    for key, index in _LOC_PART.findall(step.loc):
        raw = raw[key] if key else raw[int(index)]
    match step.action:
        case SplitAction():
            return {f"split.{i}.steps": b.get("steps") for i, b in enumerate(raw["split"])}
        case WebhookAction():
            failure = raw["webhook"].get("on_failure")
            return {} if failure is None else {"webhook.on_failure": failure}
        case IfAction():
            return {"then": raw.get("then"), "else": raw.get("else")}
    return {name: raw[name] for name in ("then", "on_timeout") if raw.get(name) is not None}


# -- in words --------------------------------------------------------------------------------


def sentences(report: dict[str, Any], *, moves: bool = True) -> tuple[list[str], str | None]:
    """The report in sentences, as every interface shows it (the editors, the builder,
    `flows apply --dry-run`): `(summary, warning)`; the warning is the question to
    confirm before saving, None when saving sends nothing at once. `moves=False` leaves
    out the moves, for a reader that lists the blast radius already."""
    lines = []
    for entry in report["waits"]:
        where = f"waiting at {entry['step']} ({_wait_change(entry)})"
        line = f"{_n(entry['sessions'])} {where}: "
        parts = []
        if entry["wake_now"]:
            woken = f"{entry['wake_now']} {_verb(entry['wake_now'], 'wake')} at once"
            if entry["then_sends"]:
                sends = ", ".join(_send(send) for send in entry["then_sends"])
                woken += f" and {_verb(entry['wake_now'], 'send')} {sends}"
            parts.append(woken)
        if entry["wake_later"]:
            later = f"{entry['wake_later']} {_verb(entry['wake_later'], 'wake')} later"
            if entry["earliest"] == entry["latest"]:
                later += f", at {_when(entry['earliest'])}"
            else:
                later += f", from {_when(entry['earliest'])} to {_when(entry['latest'])}"
            parts.append(later)
        lines.append(line + "; ".join(parts) + ".")
    for move in report["moves"] if moves else []:
        target = f"continue at {move['continues_at']}" if move["continues_at"] else "complete"
        lines.append(f"{_n(move['sessions'])} at {move['step']} (removed) {target}.")
    for branch in report["branches"]:
        lines.append(
            f"{branch['kind']} {branch['step']} changed ({branch['change']}): "
            f"{_n(branch['sessions'])} in or before it."
        )
    if not lines and moves:
        lines.append("No live session is affected by this edit.")
    sends = report["sends_at_once"]
    warning = None
    if sends["sessions"]:
        warning = (
            f"Saving wakes {_n(sends['sessions'])} at once, which then "
            f"{_verb(sends['sessions'], 'send')} "
            f"{_plural(sends['emails'], 'email')} and {_plural(sends['webhooks'], 'webhook')}"
            " right away."
        )
    return lines, warning


def _wait_change(entry: dict[str, Any]) -> str:
    if entry["new"] is None:
        return f"{entry['old']}, {entry['change']}"
    return f"{entry['old']} → {entry['new']}"


def _send(send: dict[str, Any]) -> str:
    maybe = ", maybe" if send["maybe"] else ""
    return f"{send['summary']} ({send['step']}: {send['sessions']}{maybe})"


def _verb(count: int, verb: str) -> str:
    """`verb` agreeing with `count` things: 1 wakes, 2 wake."""
    return f"{verb}s" if count == 1 else verb


def _n(sessions: int) -> str:
    return _plural(sessions, "session")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _when(iso: str | None) -> str:
    return "" if iso is None else datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
