"""Reading a flow's steps (SPEC §2.2) into `Step`s, recording every problem on the way.

Each step gets its explicit id or one derived from its position, with the nested lists
named as `model.child_lists` names them: `steps.2.then.0`, `steps.4.split.1.steps.0`,
`steps.3.webhook.on_failure.0`, `steps.1.on_timeout.0`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from sluice.addresses import AddressError, mailbox
from sluice.definitions.durations import (
    WEEKDAYS,
    check_instant_in_range,
    format_duration,
    parse_instant,
)
from sluice.definitions.limits import MAX_DURATION, MAX_STEPS
from sluice.definitions.liquid import Template
from sluice.definitions.model import (
    Action,
    EmailAction,
    ExitAction,
    FieldAction,
    IfAction,
    RetryPolicy,
    SplitAction,
    SplitBranch,
    StartFlowAction,
    Step,
    SubscriptionAction,
    TagAction,
    TrackAction,
    WaitAction,
    WaitForAction,
    WebhookAction,
)
from sluice.definitions.problems import (
    UNREADABLE,
    Checker,
    Reader,
    UnreadableValue,
    read_keys,
    unknown_key_message,
)
from sluice.definitions.values import item_loc, key_loc

ACTIONS = (
    "email",
    "webhook",
    "tag",
    "field",
    "subscribe",
    "unsubscribe",
    "wait",
    "wait_for",
    "if",
    "split",
    "start_flow",
    "track",
    "exit",
)
BRANCHES = {"if": ("then", "else"), "wait_for": ("then", "on_timeout")}
"""The keys beside an action that hold nested steps."""

_STEP_KEYS = ("id", *ACTIONS, "then", "else", "on_timeout")
_EMAIL_KEYS = ("subject", "html", "text", "template", "from", "reply_to", "to")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_WAIT_MODES = ("for", "until", "at", "until_field")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Characters no header value may hold (RFC 9110 §5.5; a tab may)."""


class StepReader:
    """Reads the step lists of one flow; step ids must be unique across all of them."""

    def __init__(
        self,
        check: Checker,
        *,
        flow_key: str | None,
        known_flows: Collection[str],
        known_templates: Collection[str],
    ):
        self.check = check
        self.flow_key = flow_key
        self.known_flows = known_flows
        self.known_templates = known_templates
        self._ids: set[str] = set()
        self._count = 0
        """Steps read so far, nested ones included."""

    def steps(
        self, value: Any, loc: str, path: str, *, non_empty: bool = False
    ) -> tuple[Step, ...]:
        """The steps of the list at `loc`; `path` is its dotted form for derived ids."""
        items = self.check.sequence(value, loc, non_empty=non_empty) or []
        steps = []
        for i, raw in enumerate(items):
            self._count += 1
            if self._count > MAX_STEPS:
                # Said once, where the limit is passed; the rest is not read (bounded work).
                if self._count == MAX_STEPS + 1:
                    self.check.add(item_loc(loc, i), f"more than {MAX_STEPS} steps in the flow")
                break
            steps.append(self.step(raw, item_loc(loc, i), f"{path}.{i}"))
        return tuple(step for step in steps if step is not None)

    def step(self, raw: Any, loc: str, path: str) -> Step | None:
        if not isinstance(raw, dict):
            self.check.add(loc, "expected a step: a mapping with one action")
            return None
        step_id = self._id(raw, loc) or path
        kind = self._kind(raw, loc)
        if kind is None:
            return None
        try:
            action = self._action(kind, raw, loc, path)
        except UnreadableValue as error:
            self.check.add(error.loc, error.msg)
            return None
        except UNREADABLE as error:  # from a reader called outside `read_keys`
            self.check.add(key_loc(loc, kind), UnreadableValue(loc, error).msg)
            return None
        return Step(id=step_id, kind=kind, action=action, loc=loc)

    def _id(self, raw: dict, loc: str) -> str | None:
        if "id" not in raw:
            return None
        id_loc = key_loc(loc, "id")
        step_id = self.check.slug(raw["id"], id_loc, "id")
        if step_id in self._ids:
            self.check.add(id_loc, f"duplicate id '{step_id}'")
        if step_id is not None:
            self._ids.add(step_id)
        return step_id

    def _kind(self, raw: dict, loc: str) -> str | None:
        """The step's one action key; a missing or second action, or a key that does
        not belong beside it, is a problem."""
        actions = [key for key in raw if key in ACTIONS]
        if not actions:
            self.check.add(loc, f"missing action: one of {', '.join(ACTIONS)}")
        elif len(actions) > 1:
            self.check.add(loc, f"a step has one action, found {', '.join(actions)}")
        kind = actions[0] if len(actions) == 1 else None
        allowed = ("id", kind, *BRANCHES.get(kind, ())) if kind else _STEP_KEYS
        for key in raw:
            if key not in allowed:
                self.check.add(key_loc(loc, key), _misplaced_key_message(key))
        return kind

    def _action(self, kind: str, raw: dict, loc: str, path: str) -> Action:
        value, at = raw[kind], key_loc(loc, kind)
        match kind:
            case "email":
                return self._email(value, at)
            case "webhook":
                return self._webhook(value, at, f"{path}.webhook.on_failure")
            case "tag":
                return self._tag(value, at)
            case "field":
                return self._field(value, at)
            case "subscribe" | "unsubscribe":
                if value is not True:
                    self.check.add(at, "expected true")
                return SubscriptionAction(subscribe=kind == "subscribe")
            case "wait":
                return self._wait(value, at)
            case "wait_for":
                return self._wait_for(raw, loc, path)
            case "if":
                condition = self.check.condition(value, at)
                return IfAction(condition=condition, **self._branches(raw, loc, path, kind))
            case "split":
                return self._split(value, at, f"{path}.split")
            case "start_flow":
                return self._start_flow(value, at)
            case "track":
                return self._track(value, at)
            case _:  # "exit"
                return self._exit(value, at)

    def _branches(self, raw: dict, loc: str, path: str, kind: str) -> dict[str, tuple[Step, ...]]:
        return read_keys(
            raw,
            loc,
            {name: partial(self.steps, path=f"{path}.{name}") for name in BRANCHES[kind]},
        )

    def _email(self, value: Any, loc: str) -> EmailAction:
        raw = self.check.mapping(value, loc, optional=(*_EMAIL_KEYS, "transactional", "track"))
        if raw is None:
            return EmailAction()
        if "template" not in raw:
            if "subject" not in raw:
                self.check.add(key_loc(loc, "subject"), "missing required key 'subject'")
            if "html" not in raw and "text" not in raw:
                self.check.add(loc, "expected 'html' or 'text' (or a 'template')")
        readers: dict[str, Reader] = dict.fromkeys(_EMAIL_KEYS, self.check.template)
        readers |= dict.fromkeys(("from", "reply_to", "to"), self._address)
        readers |= {
            "html": partial(self.check.template, html=True),
            "template": self._template_ref,
            "transactional": self.check.boolean,
            "track": self.check.boolean,
        }
        return EmailAction(**read_keys(raw, loc, readers))

    def _address(self, value: Any, loc: str) -> Template | None:
        """A mailbox template; one without Liquid must already be a mailbox that can
        be sent to (`addresses.mailbox`), or every send of the step would fail."""
        address = self.check.template(value, loc)
        if address is not None and address.is_literal:
            try:
                mailbox(address.source)
            except AddressError as error:
                self.check.add(loc, str(error))
        return address

    def _template_ref(self, value: Any, loc: str) -> str | None:
        name = self.check.string(value, loc)
        if name is not None and name not in self.known_templates:
            self.check.add(loc, f"unknown template '{name}'")
        return name

    def _webhook(self, value: Any, loc: str, failure_path: str) -> WebhookAction:
        optional = ("method", "headers", "body", "timeout", "retries", "on_failure")
        raw = self.check.mapping(value, loc, required=("url",), optional=optional) or {}
        readers = {
            "url": self._url,
            "method": self._method,
            "headers": self._headers,
            "body": self.check.templated,
            "timeout": self.check.duration,
            "retries": self._retries,
            "on_failure": partial(self.steps, path=failure_path),
        }
        return WebhookAction(**read_keys(raw, loc, readers, required=("url",)))

    def _url(self, value: Any, loc: str) -> Template | None:
        url = self.check.template(value, loc)
        if url is not None and url.is_literal:
            try:
                parts = urlsplit(value)
            except ValueError as error:  # `http://[::1`: "Invalid IPv6 URL"
                self.check.add(loc, f"expected an http:// or https:// URL ({error})")
                return url
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.check.add(loc, "expected an http:// or https:// URL")
        return url

    def _method(self, value: Any, loc: str) -> str | None:
        method = value.upper() if isinstance(value, str) else value
        return self.check.choice(method, loc, _METHODS)

    def _headers(self, value: Any, loc: str) -> dict[str, Template | None]:
        if not isinstance(value, dict):
            self.check.add(loc, "expected a mapping of header names to values")
            return {}
        headers = {}
        for name, header in value.items():
            if isinstance(name, str) and _HEADER_NAME.fullmatch(name):
                headers[name] = self.check.template(header, key_loc(loc, name))
                literal = headers[name] is not None and headers[name].is_literal
                if literal and _CONTROL.search(header):
                    self.check.add(
                        key_loc(loc, name),
                        "a header value may not hold a control character (a line break, "
                        "a NUL…): it would end the header or the request",
                    )
            else:
                self.check.add(key_loc(loc, name), f"invalid header name {name!r}")
        return headers

    def _retries(self, value: Any, loc: str) -> RetryPolicy:
        """`retries: N` attempts, or `{attempts: N, backoff: 30s}`."""
        attempts = partial(self.check.integer, minimum=1)
        if isinstance(value, dict):
            raw = self.check.mapping(value, loc, optional=("attempts", "backoff")) or {}
            readers = {"attempts": attempts, "backoff": self.check.duration}
            policy = RetryPolicy(**read_keys(raw, loc, readers))
        else:
            policy = RetryPolicy(attempts=attempts(value, loc))
        if policy.attempts and policy.backoff:
            self._check_longest_delay(policy, loc)
        return policy

    def _check_longest_delay(self, policy: RetryPolicy, loc: str) -> None:
        """The delay doubles after each attempt (`RetryPolicy.backoff`): the last one,
        backoff × 2^(attempts − 2), must stay within `MAX_DURATION` too."""
        doublings = min(policy.attempts, 100) - 2  # 2^98 × 1s is far past the limit
        if doublings < 1:
            return
        longest = int(policy.backoff.total_seconds()) * 2**doublings
        if longest > MAX_DURATION.total_seconds():
            self.check.add(
                loc,
                f"{policy.attempts} attempts with a backoff of {format_duration(policy.backoff)}"
                " (doubled after each attempt) would wait more than "
                f"{format_duration(MAX_DURATION)} (10 years) before the last one: use fewer "
                "attempts or a shorter backoff",
            )

    def _tag(self, value: Any, loc: str) -> TagAction:
        raw = self._changes(value, loc, ("add", "remove"))
        readers = {"add": self.check.templates, "remove": self.check.templates}
        return TagAction(**read_keys(raw, loc, readers))

    def _field(self, value: Any, loc: str) -> FieldAction:
        raw = self._changes(value, loc, ("set", "remove"))
        return FieldAction(**read_keys(raw, loc, {"set": self._set, "remove": self.check.strings}))

    def _changes(self, value: Any, loc: str, keys: tuple[str, str]) -> dict:
        """The mapping of a `tag` or `field` step, which needs at least one of `keys`."""
        raw = self.check.mapping(value, loc, optional=keys)
        if raw is not None and not raw.keys() & set(keys):
            self.check.add(loc, f"expected '{keys[0]}' or '{keys[1]}'")
        return raw or {}

    def _set(self, value: Any, loc: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.check.add(loc, "expected a mapping of field names to values")
            return {}
        return {
            name: self.check.templated(field, key_loc(loc, name))
            for name, field in value.items()
            if self.check.string(name, key_loc(loc, name)) is not None
        }

    def _wait(self, value: Any, loc: str) -> WaitAction:
        """`wait: 2d`, or a mapping with exactly one of `for`, `until`, `at`, `until_field`."""
        if not isinstance(value, dict):
            return WaitAction(for_=self.check.duration(value, loc))
        raw = self.check.mapping(value, loc, optional=(*_WAIT_MODES, "on", "offset")) or {}
        modes = [mode for mode in _WAIT_MODES if mode in raw]
        if len(modes) != 1:
            found = f", found {', '.join(modes)}" if modes else ""
            self.check.add(loc, f"expected exactly one of {', '.join(_WAIT_MODES)}{found}")
        for extra, mode in (("on", "at"), ("offset", "until_field")):
            if extra in raw and mode not in raw:
                self.check.add(key_loc(loc, extra), f"'{extra}' only goes with '{mode}'")
        readers = {
            "for": self.check.duration,
            "until": self._instant,
            "at": self.check.time_of_day,
            "on": self._weekdays,
            "until_field": self.check.string,
            "offset": partial(self.check.duration, signed=True),
        }
        return WaitAction(**read_keys(raw, loc, readers))

    def _instant(self, value: Any, loc: str):
        try:
            instant = parse_instant(value)
            check_instant_in_range(instant)
            return instant
        except ValueError as err:
            self.check.add(loc, str(err))
            return None

    def _weekdays(self, value: Any, loc: str) -> frozenset[int]:
        days = set()
        for i, name in enumerate(self.check.sequence(value, loc, non_empty=True) or []):
            day = name.lower() if isinstance(name, str) else name
            if day in WEEKDAYS:
                days.add(WEEKDAYS.index(day))
            else:
                self.check.add(
                    item_loc(loc, i), f"invalid weekday {name!r} (use {', '.join(WEEKDAYS)})"
                )
        return frozenset(days)

    def _wait_for(self, raw: dict, loc: str, path: str) -> WaitForAction:
        at = key_loc(loc, "wait_for")
        spec = self.check.mapping(
            raw["wait_for"], at, required=("event", "timeout"), optional=("if",)
        )
        readers = {
            "event": self.check.string,
            "if": self.check.condition,
            "timeout": self.check.duration,
        }
        fields = read_keys(spec or {}, at, readers, required=("event", "timeout"))
        return WaitForAction(**fields, **self._branches(raw, loc, path, "wait_for"))

    def _split(self, value: Any, loc: str, path: str) -> SplitAction:
        items = self.check.sequence(value, loc, non_empty=True) or []
        branches = [
            self._split_branch(item, item_loc(loc, i), f"{path}.{i}.steps")
            for i, item in enumerate(items)
        ]
        weights = [branch.weight for branch in branches]
        if weights and None not in weights and not any(weights):
            self.check.add(loc, "at least one branch needs a weight above 0")
        return SplitAction(branches=tuple(branches))

    def _split_branch(self, value: Any, loc: str, steps_path: str) -> SplitBranch:
        raw = self.check.mapping(value, loc, required=("weight", "steps")) or {}
        readers = {
            "weight": partial(self.check.integer, minimum=0),  # 0: a paused variant
            "steps": partial(self.steps, path=steps_path),
        }
        return SplitBranch(**read_keys(raw, loc, readers, required=("weight",)))

    def _start_flow(self, value: Any, loc: str) -> StartFlowAction:
        key = self.check.string(value, loc)
        if key is not None and key != self.flow_key and key not in self.known_flows:
            self.check.add(loc, f"unknown flow '{key}'")
        return StartFlowAction(flow=key)

    def _track(self, value: Any, loc: str) -> TrackAction:
        raw = self.check.mapping(value, loc, required=("type",), optional=("details",)) or {}
        readers = {"type": self.check.template, "details": self._details}
        return TrackAction(**read_keys(raw, loc, readers, required=("type",)))

    def _details(self, value: Any, loc: str):
        if not isinstance(value, dict):
            self.check.add(loc, "expected a mapping")
            return None
        return self.check.templated(value, loc)

    def _exit(self, value: Any, loc: str) -> ExitAction:
        """`exit: true`, or `exit: {reason: ...}`."""
        if value is True:
            return ExitAction()
        if not isinstance(value, dict):
            self.check.add(loc, "expected true or a mapping with a 'reason'")
            return ExitAction()
        raw = self.check.mapping(value, loc, optional=("reason",)) or {}
        return ExitAction(**read_keys(raw, loc, {"reason": self.check.string}))


def _misplaced_key_message(key: object) -> str:
    hosts = [kind for kind, keys in BRANCHES.items() if key in keys]
    if hosts:
        return f"'{key}' only goes with {' or '.join(repr(h) for h in hosts)}"
    return unknown_key_message(key, _STEP_KEYS)
