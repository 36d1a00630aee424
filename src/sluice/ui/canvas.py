"""The flow canvas: a flow version's step tree as boxes, each with a one-line summary
of what the step does, and its branches side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.definitions import model
from sluice.definitions.durations import format_duration

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Branch:
    label: str
    boxes: list[Box]


@dataclass(frozen=True)
class Box:
    id: str
    kind: str
    summary: str
    branches: list[Branch] = field(default_factory=list)


def boxes(steps: tuple[model.Step, ...]) -> list[Box]:
    return [Box(step.id, step.kind, summary(step), _branches(step)) for step in steps]


def _branches(step: model.Step) -> list[Branch]:
    """The step's branches, each outcome shown even when it only carries on."""
    action = step.action
    match action:
        case model.IfAction():
            named = [("then", action.then), ("else", action.else_)]
        case model.WaitForAction() if action.then is not None or action.on_timeout is not None:
            named = [(f"on {action.event}", action.then), ("on timeout", action.on_timeout)]
        case model.SplitAction():
            named = list(zip(_shares(action), (b.steps for b in action.branches), strict=True))
        case model.WebhookAction() if action.on_failure is not None:
            named = [("delivered", ()), ("on failure", action.on_failure)]
        case _:
            named = []
    return [Branch(label, boxes(children or ())) for label, children in named]


_BRANCH_NAMES = {
    "then": "then",
    "else": "else",
    "on_timeout": "on timeout",
    "webhook.on_failure": "on failure",
}


def labels(steps: tuple[model.Step, ...], where: str = "", path: str = "steps") -> list:
    """Every step as `(id, label)`, depth first, for a list people pick a step from: a
    step named by its id, one without an id by where it stands (`step 2 → then → step
    1`, counted from 1), each followed by its kind and summary (`· tag: +vip`)."""
    out = []
    for i, step in enumerate(steps):
        named = step.id != f"{path}.{i}"  # an id derived from the position is a path
        place = step.id if named else f"{where}step {i + 1}"
        kind, said = step.kind.replace("_", " "), summary(step)
        text = said if said.startswith(kind) else f"{kind}: {said}"  # not "wait: wait 1d"
        out.append((step.id, f"{place} · {text if len(text) <= 60 else text[:59] + '…'}"))
        for name, children in model.child_lists(step):
            # split.I.steps: branch I + 1
            branch = _BRANCH_NAMES.get(name) or f"branch {int(name.split('.')[1]) + 1}"
            out += labels(children, f"{place} → {branch} → ", f"{path}.{i}.{name}")
    return out


def _shares(split: model.SplitAction) -> list[str]:
    """Each branch's share of the sessions (`62%`): weights are relative (SPEC §2.2),
    so 80 and 50 are 62% and 38%."""
    total = sum(b.weight for b in split.branches)
    return [f"{round(100 * b.weight / total) if total else 0}%" for b in split.branches]


def summary(step: model.Step) -> str:
    """What the step does, in a few words."""
    action = step.action
    match action:
        case model.EmailAction():
            if action.subject is not None:
                return action.subject.source
            return f"template {action.template}" if action.template else "email"
        case model.WebhookAction():
            return f"{action.method} {action.url.source}"
        case model.TagAction():
            changes = [f"+{t.source}" for t in action.add] + [f"−{t.source}" for t in action.remove]
            return " ".join(changes)
        case model.FieldAction():
            parts = [f"set {', '.join(action.set)}"] if action.set else []
            parts += [f"remove {', '.join(action.remove)}"] if action.remove else []
            return "; ".join(parts)
        case model.SubscriptionAction():
            return "subscribe" if action.subscribe else "unsubscribe"
        case model.WaitAction():
            return _wait(action)
        case model.WaitForAction():
            return f"{action.event}, up to {format_duration(action.timeout)}"
        case model.IfAction():
            return action.condition.source
        case model.SplitAction():
            return " / ".join(_shares(action))
        case model.StartFlowAction():
            return f"start {action.flow}"
        case model.TrackAction():
            return f"track {action.type.source}"
        case model.ExitAction():
            return f"exit: {action.reason}" if action.reason else "exit"
    return step.kind


def _wait(action: model.WaitAction) -> str:
    if action.for_ is not None:
        return f"wait {format_duration(action.for_)}"
    if action.until is not None:
        return f"until {action.until.isoformat()}"
    if action.at is not None:
        days = ""
        if action.on is not None:
            days = " on " + ", ".join(_WEEKDAYS[d] for d in sorted(action.on))
        return f"until {action.at.strftime('%H:%M')}{days}"
    if not action.offset:
        return f"until {action.until_field}"
    offset = format_duration(action.offset)
    return f"until {action.until_field} {'' if offset.startswith('-') else '+'}{offset}"
