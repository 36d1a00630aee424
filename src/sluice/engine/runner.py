"""The engine: given a claimed session and everything it needs, decide what happens.

`advance()` walks one session as far as it can go now: it migrates it to the flow's
current version, applies what happened while it was paused, looks at the events that
arrived (goals first meet the session in the order they were accepted), ends waits
whose time has come, and runs steps until one must wait or the session finishes. It
returns a `Transition`; nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import copy
import random
from datetime import datetime, timedelta
from typing import Any

from sluice.definitions.liquid import TemplateError
from sluice.definitions.model import (
    ExitAction,
    FieldAction,
    IfAction,
    SplitAction,
    StartFlowAction,
    Step,
    SubscriptionAction,
    TagAction,
    TrackAction,
    WaitAction,
    WaitForAction,
)
from sluice.engine import messages
from sluice.engine.context import template_context, visitor_view
from sluice.engine.timing import visitor_zone, wake_time
from sluice.engine.work import (
    EngineConfig,
    NewEvent,
    StepFailed,
    Transition,
    VisitorChange,
    Work,
)
from sluice.records import RECORDED_EVENTS, Event, Session, SessionStatus, TimelineEntry

ACTIVE, WAITING = SessionStatus.ACTIVE, SessionStatus.WAITING
_ABSENT = object()


def advance(work: Work, config: EngineConfig, rng: random.Random | None = None) -> Transition:
    return _Run(work, config, rng or random.Random()).run()


def failure(session: Session, now: datetime, error: str) -> Transition:
    """The transition of a session that could not be advanced (its step raised
    something unexpected, its data could not be loaded or its result not saved): it
    fails at its step as it was read, whatever the attempt changed dropped, with
    `error` in its timeline. Built from the row alone, so that a session whose state
    the engine cannot read still fails rather than holding up its batch."""
    state = session.state
    if isinstance(state, dict):
        state = {name: value for name, value in state.items() if name != "wait"}
    return Transition(
        session_id=session.id,
        revision=session.revision,
        visitor_id=session.visitor_id,
        flow_key=session.flow_key,
        status=SessionStatus.FAILED,
        step=session.step,
        step_begun=False,  # a retry runs the step again
        state=state,
        flow_version=session.flow_version,
        event_cursor=session.event_cursor,
        waiting_for=None,
        wake_at=None,
        due_at=None,
        finished_at=now,
        timeline=[TimelineEntry(at=now, step=session.step, kind="failed", data={"error": error})],
        origin_event_id=session.origin_event_id,
        depth=session.depth,
    )


class _Run:
    def __init__(self, work: Work, config: EngineConfig, rng: random.Random):
        session = work.session
        self.work, self.config, self.rng, self.now = work, config, rng, work.now
        self.flow = work.session_flow
        self.status = session.status
        self.step_id = session.step
        self.begun = session.step_begun
        self.state: dict[str, Any] = copy.deepcopy(session.state)
        self.cursor = session.event_cursor
        self.waiting_for = session.waiting_for
        self.wake_at = session.wake_at
        self.finished_at: datetime | None = None
        self.fields = dict(work.visitor.fields)
        self.tags = list(work.visitor.tags)
        self.subscribed = work.visitor.subscribed
        self.out = Transition(
            session_id=session.id,
            revision=session.revision,
            visitor_id=session.visitor_id,
            flow_key=session.flow_key,
            status=self.status,
            step=None,
            step_begun=False,
            state={},
            flow_version=session.flow_version,
            event_cursor=self.cursor,
            waiting_for=None,
            wake_at=None,
            due_at=None,
            finished_at=None,
            origin_event_id=session.origin_event_id,
            root_event_id=work.origin.root_id,
            depth=session.depth,
        )

    # -- the walk ---------------------------------------------------------------

    def run(self) -> Transition:
        try:
            self._migrate()
            self._apply_pause()
            self._consider_events()
            self._end_wait_if_due()
            self._run_steps()
        except StepFailed as error:
            self.fail(str(error))
        return self.transition()

    def _migrate(self) -> None:
        """SPEC §2.7: move to the current version by step id."""
        new = self.work.flow
        if new.version == self.flow.version:
            return
        old, old_step = self.flow, self.step_id
        target = new.tree.continue_at(old.tree, old_step)
        self.flow = new
        self.out.flow_version = new.version
        data = {"from": old.version, "to": new.version, "from_step": old_step, "to_step": target}
        self.log(target, "migrated", data)
        if target is None:
            self._complete()
            return
        same_step = target == old_step and self.begun
        if same_step and old.tree.step(old_step).kind == new.tree.step(target).kind:
            self._rewait(new.tree.step(target))
        else:
            self._leave_wait(target)

    def _rewait(self, step: Step) -> None:
        """A wait that kept its id re-computes its end from when it began."""
        wait = self.state.get("wait", {})
        began = datetime.fromisoformat(wait["began_at"]) if "began_at" in wait else self.now
        match step.action:
            case WaitAction():
                self.wake_at = self._wait_end(step.action, began).at
            case WaitForAction(event=event, timeout=timeout):
                self.waiting_for, self.wake_at = event, began + timeout

    def _apply_pause(self) -> None:
        paused_since = self.work.session.paused_since
        if paused_since is None:
            return
        extend = self.flow.definition.on_resume == "extend"
        if extend and self.status == WAITING and self.wake_at is not None:
            self.wake_at += max(self.now - paused_since, timedelta(0))
            self.log(self.step_id, "wait_extended", {"until": self.wake_at.isoformat()})

    def _consider_events(self) -> None:
        for event in self.work.new_events:
            if self.finished:
                return
            self.cursor = max(self.cursor, event.id)
            if self._goal_reached(event):
                return
            if self._awaited(event):
                self.log(self.step_id, "event_received", {"event": event.view()})
                self.state["last_event"] = event.view()
                action = self.flow.wait_for(self.step_id)
                self._leave_wait(self.flow.tree.enter(action.then, self.step_id))
                self._run_steps()

    def _goal_reached(self, event: Event) -> bool:
        for rule in self.flow.definition.exit_rules:
            if rule.event != event.type:
                continue
            if rule.condition:
                result = self._condition(rule.condition, event=event.view())
                if result.error:
                    self.log(self.step_id, "condition_error", {"error": result.error})
                if not result.value:
                    continue
            self.log(self.step_id, "goal", {"event": event.view()})
            self._exit("goal")
            return True
        return False

    def _awaited(self, event: Event) -> bool:
        if not (self.status == WAITING and self.begun and self.waiting_for == event.type):
            return False
        if event.id <= self.state.get("wait", {}).get("after_event_id", 0):
            return False
        action = self.flow.wait_for(self.step_id)
        if action.condition is None:
            return True
        result = self._condition(action.condition, event=event.view())
        if result.error:
            self.log(self.step_id, "condition_error", {"error": result.error})
        return result.value

    def _end_wait_if_due(self) -> None:
        if self.status != WAITING or not self.begun:
            return
        step = self.flow.tree.step(self.step_id)
        if step.kind in ("email", "webhook"):
            self._end_delivery_wait(step)
        elif self.wake_at is not None and self.wake_at <= self.now:
            if step.kind == "wait_for":
                self.log(step.id, "wait_timed_out", {})
                self._leave_wait(self.flow.tree.enter(step.action.on_timeout, step.id))
            else:
                self.log(step.id, "wait_ended", {})
                self._leave_wait(self.flow.tree.next_after(step.id))

    def _end_delivery_wait(self, step: Step) -> None:
        delivery = self.state.get("delivery", {})
        outcome = delivery.get("outcome")
        if outcome is None:
            return
        del self.state["delivery"]
        if outcome == "failed" and step.kind == "webhook":
            if step.action.on_failure is None:
                raise StepFailed(f"webhook failed: {delivery.get('error', 'gave up')}")
            self._leave_wait(self.flow.tree.enter(step.action.on_failure, step.id))
        else:
            self._leave_wait(self.flow.tree.next_after(step.id))

    def _run_steps(self) -> None:
        budget = self.config.max_steps_per_run
        while self.status == ACTIVE and not self.begun and budget > 0:
            if self.step_id is None:
                self._complete()
                return
            budget -= 1
            step = self.flow.tree.step(self.step_id)
            self.log(step.id, "step", {"kind": step.kind})
            try:
                self._run_step(step)
            except TemplateError as error:
                raise StepFailed(f"{step.loc}: {error}") from error

    def _run_step(self, step: Step) -> None:
        tree = self.flow.tree
        match step.action:
            case TagAction() as action:
                self._change_tags(step, action)
            case FieldAction() as action:
                self._change_fields(step, action)
            case SubscriptionAction(subscribe=subscribe):
                self.subscribed = subscribe
                self.out.visitor_changes.append(
                    VisitorChange(op="subscribe" if subscribe else "unsubscribe")
                )
                self.log(step.id, "subscription_changed", {"subscribed": subscribe})
            case WaitAction() as action:
                self._begin_wait(step, action)
                return
            case WaitForAction() as action:
                self._begin_wait_for(step, action)
                return
            case IfAction() as action:
                result = self._condition(action.condition)
                data = {"condition": action.condition.source, "result": result.value}
                data["values"] = result.reads
                if result.error:
                    data["error"] = result.error
                self.log(step.id, "branch", data)
                self._goto(tree.enter(action.then if result.value else action.else_, step.id))
                return
            case SplitAction() as action:
                self._split(step, action)
                return
            case StartFlowAction(flow=flow):
                self.out.start_flows.append((flow, step.id))
            case TrackAction() as action:
                self._track(step, action)
            case ExitAction(reason=reason):
                self._exit(reason or "exit step")
                return
            case _:
                self._deliver(step)
                return
        self._goto(tree.next_after(step.id))

    # -- steps ----------------------------------------------------------------

    def _change_tags(self, step: Step, action: TagAction) -> None:
        context = self.context()
        added = [t for t in (tpl.render(context).strip() for tpl in action.add) if t]
        removed = [t for t in (tpl.render(context).strip() for tpl in action.remove) if t]
        # Every change goes to the store (it applies them to the row as it is then);
        # the timeline tells what changed on the visitor this run read: a tag they had
        # is not "added", one they did not have not "removed".
        changed: dict[str, list[str]] = {"added": [], "removed": []}
        for tag in added:
            if tag not in self.tags:
                self.tags.append(tag)
                changed["added"].append(tag)
            self.out.visitor_changes.append(VisitorChange(op="tag_add", name=tag, step=step.id))
        for tag in removed:
            if tag in self.tags:
                self.tags.remove(tag)
                changed["removed"].append(tag)
            self.out.visitor_changes.append(VisitorChange(op="tag_remove", name=tag, step=step.id))
        self.log(step.id, "tags_changed", changed)

    def _change_fields(self, step: Step, action: FieldAction) -> None:
        context = self.context()
        values = {name: value.render(context) for name, value in action.set.items()}
        for name, value in values.items():
            self.fields[name] = value
            self.out.visitor_changes.append(
                VisitorChange(op="field_set", name=name, value=value, step=step.id)
            )
        removed = []
        for name in action.remove:
            if self.fields.pop(name, _ABSENT) is not _ABSENT:
                removed.append(name)  # as for tags: only a field they had is removed
            self.out.visitor_changes.append(
                VisitorChange(op="field_remove", name=name, step=step.id)
            )
        self.log(step.id, "fields_changed", {"set": values, "removed": removed})

    def _begin_wait(self, step: Step, action: WaitAction) -> None:
        wake = self._wait_end(action, self.now)
        if wake.at <= self.now:
            data = {"reason": wake.note} if wake.note else {}
            self.log(step.id, "wait_ended", data)
            self._goto(self.flow.tree.next_after(step.id))
            return
        self._block(wake_at=wake.at)
        data = {"until": wake.at.isoformat()}
        if wake.zone is not None:
            data["timezone"] = wake.zone.zone.key
            if wake.zone.note:
                data["timezone_note"] = wake.zone.note
        self.log(step.id, "waiting", data)

    def _wait_end(self, action: WaitAction, began_at: datetime):
        zone = visitor_zone(
            self.fields, self.flow.definition.timezone, self.config.default_timezone
        )
        return wake_time(action, began_at=began_at, fields=self.fields, zone=zone)

    def _begin_wait_for(self, step: Step, action: WaitForAction) -> None:
        until = self.now + action.timeout
        self._block(wake_at=until, waiting_for=action.event)
        self.state["wait"]["after_event_id"] = self.work.latest_event_id
        self.log(step.id, "waiting", {"event": action.event, "until": until.isoformat()})

    def _split(self, step: Step, action: SplitAction) -> None:
        splits = self.state.setdefault("splits", {})
        if step.id not in splits:
            # Only branches with a weight above 0 can be chosen: weight 0 pauses a variant.
            live = [i for i, branch in enumerate(action.branches) if branch.weight > 0]
            weights = [action.branches[i].weight for i in live]
            splits[step.id] = self.rng.choices(live, weights=weights)[0]
        chosen = splits[step.id]
        branch = action.branches[chosen]
        self.log(step.id, "split", {"branch": chosen, "weight": branch.weight})
        self._goto(self.flow.tree.enter(branch.steps, step.id))

    def _track(self, step: Step, action: TrackAction) -> None:
        depth = self.work.session.depth + 1
        context = self.context()
        event_type = action.type.render(context).strip()
        if depth > self.config.max_event_depth:
            limit = self.config.max_event_depth
            data = {"type": event_type, "reason": f"event chain depth limit ({limit}) reached"}
            self.log(step.id, "track_skipped", data)
            return
        if event_type in RECORDED_EVENTS:
            raise StepFailed(
                f"{step.loc}.track.type: {event_type} is recorded by Sluice, never tracked"
            )
        details = action.details.render(context) if action.details else {}
        if not isinstance(details, dict):
            raise StepFailed(f"{step.loc}.details: must render to an object")
        entry = len(self.out.timeline)
        self.out.events.append(NewEvent(type=event_type, details=details, depth=depth, entry=entry))
        self.log(step.id, "event_tracked", {"type": event_type, "details": details})

    def _deliver(self, step: Step) -> None:
        if step.kind == "email":
            delivery, skipped = messages.email(self, step)
            if skipped:
                self.log(step.id, "email_skipped", {"reason": skipped})
                self._goto(self.flow.tree.next_after(step.id))
                return
        else:
            delivery = messages.webhook(self, step)
        self.out.deliveries.append(delivery)
        if delivery.state == "outbox":
            data = {"transport": "outbox", "message_id": delivery.idempotency_id}
            data["to"], data["subject"] = delivery.payload["to"], delivery.payload["subject"]
            self.log(step.id, "email_sent", data)
            self._goto(self.flow.tree.next_after(step.id))
            return
        self._block(wake_at=None)
        self.state["delivery"] = {"id": delivery.idempotency_id}

    # -- moving -----------------------------------------------------------------

    def _block(self, *, wake_at: datetime | None, waiting_for: str | None = None) -> None:
        self.status, self.begun = WAITING, True
        self.wake_at, self.waiting_for = wake_at, waiting_for
        self.state["wait"] = {"began_at": self.now.isoformat()}

    def _leave_wait(self, next_id: str | None) -> None:
        self.state.pop("wait", None)
        self.status, self.wake_at, self.waiting_for = ACTIVE, None, None
        self._goto(next_id)

    def _goto(self, step_id: str | None) -> None:
        self.begun = False
        if step_id is None:
            self._complete()
        else:
            self.step_id = step_id

    def _complete(self) -> None:
        self._finish(SessionStatus.COMPLETED)
        self.log(self.step_id, "completed", {})

    def _exit(self, reason: str) -> None:
        self._finish(SessionStatus.EXITED)
        self.log(self.step_id, "exited", {"reason": reason})

    def fail(self, error: str) -> None:
        self._finish(SessionStatus.FAILED)
        self.begun = False  # a retry runs the step again
        self.log(self.step_id, "failed", {"error": error})

    def _finish(self, status: SessionStatus) -> None:
        self.status, self.finished_at = status, self.now
        self.wake_at = self.waiting_for = None
        self.state.pop("wait", None)

    @property
    def finished(self) -> bool:
        return self.status.finished

    # -- helpers ----------------------------------------------------------------

    def log(self, step: str | None, kind: str, data: dict[str, Any]) -> None:
        self.out.timeline.append(TimelineEntry(at=self.now, step=step, kind=kind, data=data))

    def context(self, *, event: dict | None = None, **extra) -> dict[str, Any]:
        work = self.work
        visitor = visitor_view(
            email=work.visitor.email,
            uuid=work.visitor.uuid,
            fields=self.fields,
            tags=self.tags,
            subscribed=self.subscribed,
            created_at=work.visitor.created_at,
            segments=work.visitor.segments,
        )
        return template_context(
            visitor=visitor,
            origin=work.origin.view(),
            event=event,
            last_event=self.state.get("last_event"),
            flow={"key": self.flow.key, "name": work.flow_name, "version": self.flow.version},
            session={"id": work.session.id, "started_at": work.session.started_at.isoformat()},
            now=self.now,
            **extra,
        )

    def _condition(self, condition, *, event: dict | None = None):
        return condition.evaluate(self.context(event=event))

    def transition(self) -> Transition:
        out = self.out
        out.status, out.step, out.step_begun = self.status, self.step_id, self.begun
        out.state, out.event_cursor = self.state, self.cursor
        out.waiting_for, out.wake_at, out.finished_at = (
            self.waiting_for,
            self.wake_at,
            self.finished_at,
        )
        out.due_at = self._due_at()
        return out

    def _due_at(self) -> datetime | None:
        if self.status == ACTIVE:
            return self.now  # out of step budget: carry on at the next claim
        if self.status == WAITING:
            return self.wake_at
        return None
